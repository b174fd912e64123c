// A sweep: several runs of one experiment that differ in a few parameters, each trained
// in its own folder DIR/<run>/ and compared in DIR/sweep.csv, as a program embedding ewe
// makes it. The points come from a grid (sweep_grid: every value of each parameter with
// every value of the others) or a configurations file (read_sweep_points: one point per
// line, `key=value ... [name=NAME]`). SweepFolder owns DIR while the sweep uses it: it
// locks it, refuses what a previous sweep left there unless told to resume (the settings
// recorded in DIR/sweep_settings.csv must match; SweepRefused names both values) or to
// overwrite (only the sweep's and its runs' files are deleted), trains the runs one
// after another or several at a time (each on its own thread, its messages in
// DIR/<run>/train.log) under one Ctrl-C guard (ewe/train/interrupt.hpp), and writes
// DIR/sweep.csv (time_steps_in_trainer, ewe/train/step_timing.hpp, times a few steps of a
// model for the estimate of a sweep's time). What a run trains, and how a run is scored,
// is the program's.
#pragma once

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/files.hpp"
#include "ewe/io/run_lock.hpp"
#include "ewe/train/interrupt.hpp"
#include "ewe/train/run_folder.hpp"
#include "ewe/train/run_jobs.hpp"

namespace ewe {

// A sweep that may not go on in its folder: a previous sweep is there and neither resume
// nor overwrite was asked, or a resume would change a recorded setting.
class EWE_VISIBLE SweepRefused : public Error {
public:
    using Error::Error;
};

// One swept parameter: its key in a configurations file ("latent"), the placeholder and
// an example of its value in messages ("N", "2"), the check that turns a number read for
// it into its value (or throws ewe::Error naming `where` and the text found), and its
// value when a line of the file leaves it out (none: the key is required).
struct SweepParameter {
    std::string key, placeholder, example;
    std::function<double(double value, const std::string& where, const std::string& text)> check;
    std::optional<double> default_value;
};

// One run of a sweep: its name (its folder's), a value of each parameter (in the order of
// the parameters) and where it was given ("--latent/--width", FILE:LINE) for messages.
struct SweepPoint {
    std::string name;
    std::vector<double> values;
    std::string origin;
};

// A point's default name: each key followed by its value ("%g"), joined by '_':
// "latent2_width0.5".
inline std::string sweep_point_name(const std::vector<SweepParameter>& parameters, const std::vector<double>& values) {
    std::string name;
    for (std::size_t p = 0; p < parameters.size(); ++p) {
        char value[32];
        std::snprintf(value, sizeof value, "%g", values[p]);
        name += (p ? "_" : "") + parameters[p].key + value;
    }
    return name;
}

// A name that can be a folder: letters, digits, '_', '-' and '.', and not "." or "..".
inline bool valid_sweep_point_name(const std::string& name) {
    return !name.empty() && name != "." && name != ".." && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

// Refuses two points with the same values or the same name, naming where both were given.
inline void check_unique_sweep_points(const std::vector<SweepParameter>& parameters,
                                      const std::vector<SweepPoint>& points) {
    for (std::size_t i = 0; i < points.size(); ++i)
        for (std::size_t j = 0; j < i; ++j) {
            const std::string also = points[i].origin == points[j].origin ? "" : " (also " + points[j].origin + ")";
            if (points[i].values == points[j].values) {
                std::string values;
                for (std::size_t p = 0; p < parameters.size(); ++p)
                    values += " " + parameters[p].key + " " + format_number(points[i].values[p]);
                fail(points[i].origin, ": duplicated configuration", values, also);
            }
            if (points[i].name == points[j].name)
                fail(points[i].origin, ": duplicated run name '", points[i].name, "'", also);
        }
}

// Every value of the first parameter with every value of the second, and so on (the last
// parameter varies fastest); values[p] are the values of parameters[p], given by the
// argument flags[p] (which names them in errors).
inline std::vector<SweepPoint> sweep_grid(const std::vector<SweepParameter>& parameters,
                                          const std::vector<std::vector<double>>& values,
                                          const std::vector<std::string>& flags) {
    EWE_REQUIRE(values.size() == parameters.size() && flags.size() == parameters.size(),
                "sweep_grid: one list of values and one flag per parameter");
    std::string origin;
    for (const std::string& flag : flags) origin += (origin.empty() ? "" : "/") + flag;
    std::vector<std::vector<double>> checked(parameters.size());
    for (std::size_t p = 0; p < parameters.size(); ++p)
        for (double v : values[p]) checked[p].push_back(parameters[p].check(v, flags[p], format_number(v)));
    std::vector<SweepPoint> points{{"", {}, origin}};
    for (const std::vector<double>& options : checked) {
        std::vector<SweepPoint> longer;
        for (const SweepPoint& point : points)
            for (double v : options) {
                longer.push_back(point);
                longer.back().values.push_back(v);
            }
        points = std::move(longer);
    }
    for (SweepPoint& point : points) point.name = sweep_point_name(parameters, point.values);
    check_unique_sweep_points(parameters, points);
    return points;
}

// The points of a configurations file, one per line: `key=value` for each parameter (a
// parameter with a default may be left out) and an optional `name=NAME`; blank lines and
// text after '#' are ignored. The file must be a regular text file of at most 1 MiB (never
// a FIFO or a device, which could block or read without end). `flag` names the file's
// argument in errors, with the line: "--configs FILE:3: ...".
inline std::vector<SweepPoint> read_sweep_points(const std::filesystem::path& path,
                                                 const std::vector<SweepParameter>& parameters,
                                                 const std::string& flag) {
    std::string forms, keys, example;
    for (std::size_t p = 0; p < parameters.size(); ++p) {
        forms += parameters[p].key + "=" + parameters[p].placeholder + " ";
        keys += parameters[p].key + (p + 1 < parameters.size() ? ", " : " or ");
        example += (p ? " " : "") + parameters[p].key + "=" + parameters[p].example;
    }
    std::istringstream in(io::read_text_file(path, flag, std::uintmax_t(1) << 20));
    std::vector<SweepPoint> points;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const std::string where = flag + " " + path.string() + ":" + std::to_string(number);
        std::istringstream fields(line.substr(0, line.find('#')));
        SweepPoint point{"", std::vector<double>(parameters.size(), NAN), where};
        std::vector<bool> seen(parameters.size() + 1, false);  // the parameters, then the name
        std::string field;
        bool any = false;
        while (fields >> field) {
            any = true;
            const std::size_t eq = field.find('=');
            const std::string key = field.substr(0, eq), value = eq == std::string::npos ? "" : field.substr(eq + 1);
            if (eq == std::string::npos || value.empty())
                fail(where, ": expected key=value (", forms, "name=NAME), found '", field, "'");
            std::size_t p = 0;
            while (p < parameters.size() && parameters[p].key != key) ++p;
            if (p == parameters.size() && key != "name") fail(where, ": unknown key '", key, "' (expected ", keys, "name)");
            if (seen[p]) fail(where, ": '", key, "' is given twice");
            seen[p] = true;
            if (p == parameters.size()) {
                if (!valid_sweep_point_name(value))
                    fail(where, ": name '", value, "' must be letters, digits, '_', '-' or '.' (it names a folder)");
                point.name = value;
                continue;
            }
            char* end = nullptr;
            const double v = std::strtod(value.c_str(), &end);
            if (end == value.c_str() || *end != '\0' || !std::isfinite(v))
                fail(where, ": ", key, " = '", value, "' is not a number");
            point.values[p] = parameters[p].check(v, where, value);
        }
        if (!any) continue;
        for (std::size_t p = 0; p < parameters.size(); ++p) {
            if (seen[p]) continue;
            if (!parameters[p].default_value)
                fail(where, ": no ", parameters[p].key, "=", parameters[p].placeholder, " on the line");
            point.values[p] = *parameters[p].default_value;
        }
        if (point.name.empty()) point.name = sweep_point_name(parameters, point.values);
        points.push_back(std::move(point));
    }
    if (points.empty()) fail(flag, " ", path.string(), ": no configuration (expected lines like '", example, "')");
    check_unique_sweep_points(parameters, points);
    return points;
}

// "3 s", "2.5 min", "1.2 h".
inline std::string duration_text(double seconds) {
    char buf[64];
    if (seconds < 90) std::snprintf(buf, sizeof buf, "%.0f s", seconds);
    else if (seconds < 5400) std::snprintf(buf, sizeof buf, "%.1f min", seconds / 60);
    else std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
    return buf;
}

// `rows` (a header first) as text columns: the first left-aligned, the others right-
// aligned, two spaces apart.
inline void write_text_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows) {
        widths.resize(std::max(widths.size(), row.size()), 0);
        for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            const std::string pad(widths[i] - row[i].size(), ' ');
            out << (i ? "  " : "") << (i == 0 ? row[i] + pad : pad + row[i]);
        }
        out << '\n';
    }
}

// A run to train: its folder's name, what it is in progress lines ("latent 2, width 0.5"),
// the epochs it has finished and the seconds it is expected to take.
struct SweepJob {
    std::string name, description;
    std::int64_t epochs_done = 0;
    double estimated_seconds = 0;
};

// What a job trains with: where its messages go (redrawn in place when `redraw`), the
// stop token its training must honour (Ctrl-C requests it: the job must not handle SIGINT
// itself), and `epoch_done`, to call after each finished epoch with its number.
struct SweepJobContext {
    std::ostream& log;
    bool redraw;
    bool concurrent;
    StopToken stop;
    std::function<void(std::int64_t epoch)> epoch_done;
};

struct SweepFolderOptions {
    bool resume = false;     // keep finished runs; the recorded settings must match
    bool overwrite = false;  // delete a previous sweep's files (and nothing else) first
    std::ostream* log = nullptr;  // progress and notes (none: std::clog)
    bool redraw = false;          // the log is a terminal: progress lines are redrawn in place
    // The words messages use for the folder and the two choices: a program passes its
    // flags ("--out", "--resume", "--overwrite").
    std::string folder_name = "SweepFolder", resume_name = "resume", overwrite_name = "overwrite";
    // Locks a folder for this process (the sweep's and, while deleting, each run's); a
    // program may wrap RunLock to say in its own words who holds it.
    std::function<std::unique_ptr<io::RunLock>(const std::filesystem::path&)> lock =
        [](const std::filesystem::path& dir) { return std::make_unique<io::RunLock>(dir); };
};

class SweepFolder {
public:
    // Locks `dir` (created when missing) and decides what to do with what a previous sweep
    // of runs `run_names` left there: refused (SweepRefused) unless options.resume (the
    // settings in sweep_settings.csv must match `settings`) or options.overwrite (its
    // sweep.csv, sweep_settings.csv and each run's files are deleted, with a note).
    SweepFolder(std::filesystem::path dir, std::vector<std::string> run_names, std::vector<RunSetting> settings,
                SweepFolderOptions options = {})
        : dir_(std::move(dir)),
          names_(std::move(run_names)),
          settings_(std::move(settings)),
          options_(std::move(options)),
          log_(options_.log ? *options_.log : std::clog),
          lock_(options_.lock(dir_)) {
        std::vector<std::filesystem::path> sweep_files;
        for (const char* name : {"sweep.csv", "sweep_settings.csv"})
            if (std::filesystem::exists(dir_ / name)) sweep_files.push_back(dir_ / name);
        if (options_.resume) {
            if (std::filesystem::exists(settings_path())) check_settings();
            return;
        }
        std::string found;
        for (const std::filesystem::path& f : sweep_files) found += (found.empty() ? "" : ", ") + f.filename().string();
        for (const std::string& name : names_) {
            const std::vector<std::filesystem::path> files = run_files(dir_ / name);
            if (!files.empty()) found += (found.empty() ? "" : ", ") + name + "/ (" + run_files_text(dir_ / name, files) + ")";
        }
        if (found.empty()) return;
        if (!options_.overwrite)
            throw SweepRefused(detail::concat(
                options_.folder_name, ": ", dir_.string(), " already holds a run; pass ", options_.resume_name,
                " to continue the sweep (finished runs are kept), or ", options_.overwrite_name,
                " to delete its files and start over (found: ", found, "; other files are kept)"));
        for (const std::filesystem::path& f : sweep_files) {
            std::error_code ec;
            std::filesystem::remove(f, ec);
            if (ec) fail(options_.overwrite_name, ": cannot delete ", f.string(), ": ", ec.message());
        }
        for (const std::string& name : names_) {
            const auto run_lock = options_.lock(dir_ / name);
            delete_run_files(dir_ / name, run_files(dir_ / name), options_.overwrite_name);
            std::error_code ignore;
            std::filesystem::remove(dir_ / name / "train.log", ignore);
        }
        log_ << options_.overwrite_name << ": deleted the previous sweep in " << dir_.string() << " (" << found << ")\n";
    }

    const std::filesystem::path& dir() const { return dir_; }
    std::filesystem::path run_dir(const std::string& name) const { return dir_ / name; }
    std::filesystem::path settings_path() const { return dir_ / "sweep_settings.csv"; }

    // Writes sweep_settings.csv (once the program has checked what it continues).
    void record_settings() const {
        std::vector<std::vector<std::string>> lines{{"setting", "value"}};
        for (const RunSetting& s : settings_) lines.push_back({s.key, s.value});
        io::write_csv(settings_path(), lines);
    }

    // Trains `jobs`: `train(k, context)` trains jobs[k] and returns whether it trained
    // through (false: stopped). With `workers` > 1, that many at a time, each on its own
    // thread with its messages in DIR/<run>/train.log, and a line of every run's epochs
    // every 10 s (`shared` says what they share: "one GPU"); else one after another with
    // their messages on the log and an estimate of the time left. Ctrl-C stops every run
    // after its current step. Returns 0, or 130 when the sweep was stopped (saying how
    // to continue it).
    int train(const std::vector<SweepJob>& jobs, std::int64_t epochs, int workers, const std::string& shared,
              const std::function<bool(std::size_t, const SweepJobContext&)>& train_job) {
        const StopToken stop;
        const InterruptGuard sigint(stop);
        return workers <= 1 ? train_in_turn(jobs, epochs, stop, train_job)
                            : train_together(jobs, epochs, workers, shared, stop, train_job);
    }

    // Writes sweep.csv: `rows`, a header first.
    void write_results(const std::vector<std::vector<std::string>>& rows) const { io::write_csv(dir_ / "sweep.csv", rows); }

private:
    static double seconds_since(std::chrono::steady_clock::time_point t0) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }

    // Refuses to continue with other settings, naming both values.
    void check_settings() const {
        const std::filesystem::path path = settings_path();
        const std::string who = options_.resume_name + ": " + path.string();
        const io::CsvTable table = io::CsvTable::read(path);
        const std::size_t key_column = table.column("setting"), value_column = table.column("value");
        const auto recorded = [&](const std::string& key) {
            const auto row = std::find_if(table.rows.begin(), table.rows.end(),
                                          [&](const std::vector<std::string>& r) { return r[key_column] == key; });
            if (row == table.rows.end())
                throw SweepRefused(detail::concat(who, " has no '", key, "' row (expected setting,value rows as sweep "
                                                  "writes them)"));
            return (*row)[value_column];
        };
        const auto now = [&](const std::string& key) {
            for (const RunSetting& s : settings_)
                if (s.key == key) return s.value;
            return std::string();
        };
        if (const std::optional<ChangedSetting> changed = first_changed_setting(settings_, recorded)) {
            const RunSetting& s = *changed->now;
            const std::string& before = changed->before;
            const std::string flags = s.flags.empty() ? s.key : s.flags;
            if (s.rule == RunSetting::Rule::at_least)
                throw SweepRefused(detail::concat(who, ": the sweep was run with ", s.key, " ", before, ", this one asks "
                                                  "for ", s.key, " ", s.value, ", which would leave runs of both lengths "
                                                  "in sweep.csv; pass ", s.key, " ", before, " or more"));
            if (!s.described_by.empty())
                throw SweepRefused(detail::concat(who, ": the sweep was run on ", recorded(s.described_by), ", this one's ",
                                                  now(s.described_by), "; use the same ", flags, " to continue it, or "
                                                  "another ", options_.folder_name));
            throw SweepRefused(detail::concat(who, ": the sweep was run with ", s.key, " ", before, ", this one asks for ",
                                              s.key, " ", s.value, "; use the same ", flags, " to continue it, or another ",
                                              options_.folder_name));
        }
    }

    int train_in_turn(const std::vector<SweepJob>& jobs, std::int64_t epochs, const StopToken& stop,
                      const std::function<bool(std::size_t, const SweepJobContext&)>& train_job) {
        double estimated_done = 0, actual_done = 0, remaining = 0;
        for (const SweepJob& job : jobs) remaining += job.estimated_seconds;
        char line[512];
        for (std::size_t k = 0; k < jobs.size(); ++k) {
            const SweepJob& job = jobs[k];
            std::snprintf(line, sizeof line, "[%zu/%zu] %s: %s, epochs %lld..%lld (about %s; %s left in the sweep)\n",
                          k + 1, jobs.size(), job.name.c_str(), job.description.c_str(), (long long)job.epochs_done + 1,
                          (long long)epochs, duration_text(job.estimated_seconds).c_str(), duration_text(remaining).c_str());
            log_ << line << std::flush;
            const auto t0 = std::chrono::steady_clock::now();
            if (!train_job(k, {log_, options_.redraw, false, stop, {}}) || stop.stop_requested()) {
                log_ << "sweep: interrupted during " << job.name << "; finished runs are kept in " << dir_.string()
                     << " and " << options_.resume_name << " continues the sweep\n";
                return 130;
            }
            estimated_done += job.estimated_seconds;
            actual_done += seconds_since(t0);
            remaining = 0;
            for (std::size_t j = k + 1; j < jobs.size(); ++j) remaining += jobs[j].estimated_seconds;
            remaining *= estimated_done > 0 ? actual_done / estimated_done : 1.0;
            log_ << "[" << k + 1 << "/" << jobs.size() << "] " << job.name << ": done in "
                 << duration_text(seconds_since(t0))
                 << (k + 1 < jobs.size() ? ", about " + duration_text(remaining) + " left" : "") << "\n";
        }
        return 0;
    }

    int train_together(const std::vector<SweepJob>& jobs, std::int64_t epochs, int workers, const std::string& shared,
                       const StopToken& stop, const std::function<bool(std::size_t, const SweepJobContext&)>& train_job) {
        if (jobs.empty()) return 0;
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::atomic<std::int64_t>> epochs_done(jobs.size());
        for (std::size_t k = 0; k < jobs.size(); ++k) epochs_done[k].store(jobs[k].epochs_done);
        std::atomic<bool> finished{false};
        std::thread reporter([&] {
            auto last = std::chrono::steady_clock::now();
            while (!finished.load()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                if (seconds_since(last) < 10 || finished.load()) continue;
                last = std::chrono::steady_clock::now();
                std::ostringstream line;
                line << "sweep: " << duration_text(seconds_since(start)) << ":";
                for (std::size_t k = 0; k < jobs.size(); ++k)
                    line << " " << jobs[k].name << " " << epochs_done[k].load() << "/" << epochs;
                log_ << line.str() + "\n" << std::flush;
            }
        });
        log_ << "Training " << jobs.size() << " configurations, " << workers << " at a time on " << shared << " (logs in "
             << dir_.string() << "/<run>/train.log)\n";
        try {
            run_jobs(jobs.size(), workers, [&](std::size_t k) {
                if (stop.stop_requested()) return;
                const std::filesystem::path dir = dir_ / jobs[k].name;
                std::filesystem::create_directories(dir);
                std::ofstream log(dir / "train.log", std::ios::app);
                train_job(k, {log, false, true, stop, [&epochs_done, k](std::int64_t epoch) { epochs_done[k].store(epoch); }});
            }, [&stop] { stop.request_stop(); });
        } catch (...) {
            finished.store(true);
            reporter.join();
            throw;
        }
        finished.store(true);
        reporter.join();
        if (!stop.stop_requested()) return 0;
        log_ << "sweep: interrupted; every finished epoch is kept in " << dir_.string() << " and "
             << options_.resume_name << " continues the sweep\n";
        return 130;
    }

    std::filesystem::path dir_;
    std::vector<std::string> names_;
    std::vector<RunSetting> settings_;
    SweepFolderOptions options_;
    std::ostream& log_;
    std::unique_ptr<io::RunLock> lock_;
};

}  // namespace ewe
