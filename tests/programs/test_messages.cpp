// Every error names the file or flag (issue 25, class 5), root by root: numbers in
// messages (format_number, sheep_vae's range checks), paths checked for what is
// really there (require_file, require_folder, read_text_file: never a FIFO or
// /dev/zero), the RFC 4180 CSV reader (hostile names round trip, binary files
// refused), bool .npy arrays (not uint8), a model's memory estimated and refused
// before it is allocated, and sheep_vae's flags that reach each of them.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <ewe/core/memory.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/files.hpp>
#include <ewe/io/npy.hpp>
#include <ewe/models/sheep_vae.hpp>
#include <sheep_vae/sheep_vae.hpp>

#include "sheep_vae_run.hpp"

namespace fs = std::filesystem;
using sheep_test::contains;
using sheep_test::expect_error;
using sheep_test::run;
using sheep_test::RunResult;
using sheep_test::temp_dir;

namespace {

// The message of the ewe::Error that f throws ("<no error>" when it throws none).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const ewe::Error& e) {
        return e.what();
    }
    return "<no error>";
}

// EWE_MEMORY_LIMIT set for the lifetime of the object.
struct MemoryLimit {
    explicit MemoryLimit(const std::string& bytes) { ::setenv("EWE_MEMORY_LIMIT", bytes.c_str(), 1); }
    ~MemoryLimit() { ::unsetenv("EWE_MEMORY_LIMIT"); }
};

// 16 procedural sheep as a uint8 .npy in `dir`.
fs::path small_data(const fs::path& dir, const std::string& name = "sheep.npy") {
    const auto bytes = ewe::procedural_sheep(16, 3);
    ewe::io::write_npy<std::uint8_t>(dir / name, bytes.data(), ewe::Shape{16, 784});
    return dir / name;
}

// A one-epoch run of a narrow model on `data`, in dir/run.
fs::path tiny_run(const fs::path& dir, const fs::path& data) {
    const RunResult r = run({"train", "--data", data.string(), "--epochs", "1", "--width", "0.1", "--snapshots", "1",
                             "--monitor", "0", "--out", (dir / "run").string(), "--quiet"});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    return dir / "run";
}

}  // namespace

TEST_CASE("format_number writes the shortest text that reads back as the same double") {
    CHECK(ewe::format_number(1e-9) == "1e-09");
    CHECK(ewe::format_number(0.1) == "0.1");
    CHECK(ewe::format_number(16) == "16");
    CHECK(ewe::format_number(16.000000000000004) == "16.000000000000004");
    CHECK(ewe::format_number(std::numeric_limits<double>::max()) == "1.7976931348623157e+308");
    // The library's range messages use it: a width just above 16 is not printed as "16".
    const std::string message = error_of([] {
        ewe::SheepVaeOptions model_options;
        model_options.width = 16.000000000000004;
        model_options.validate();
    });
    CHECK(contains(message, "width must be in (0, 16], found 16.000000000000004"));
}

TEST_CASE("sheep_vae range checks print their bounds as numbers, not 0.000000 or 309 digits") {
    const RunResult width = run({"train", "--width", "0"});
    CHECK(width.rc != 0);
    CHECK(contains(width.err, "--width: expected a number in (0, 16], found 0"));
    CHECK(!contains(width.err, "0.000000"));
    const RunResult lr = run({"train", "--lr", "-1"});
    CHECK(lr.rc != 0);
    CHECK(contains(lr.err, "--lr: expected a number > 0, found -1"));
    CHECK(!contains(lr.err, "000000000000"));
    CHECK(lr.err.size() < 300);
    const RunResult quantile = run({"anomalies", "--checkpoint", "x", "--data", "y", "--out", "z", "--quantile", "1.5"});
    CHECK(quantile.rc != 0);
    CHECK(contains(quantile.err, "--quantile: expected a number in [0, 1], found 1.5"));
}

TEST_CASE("require_file, require_folder, create_folder and read_text_file say what is really at the path") {
    const fs::path dir = temp_dir("messages", "paths");
    std::ofstream(dir / "file.txt") << "text\n";
    CHECK(contains(error_of([&] { ewe::io::require_folder(dir / "file.txt", "--out"); }),
                   "--out: " + (dir / "file.txt").string() + " is a regular file, expected a folder"));
    CHECK(contains(error_of([&] { ewe::io::require_folder(dir / "none", "--out"); }),
                   "--out: " + (dir / "none").string() + " does not exist (expected a folder)"));
    CHECK(contains(error_of([&] { ewe::io::require_file(dir, "--data"); }),
                   "--data: " + dir.string() + " is a folder, expected a regular file"));
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
    CHECK(contains(error_of([&] { ewe::io::require_file(dir / "fifo", "--configs"); }),
                   "--configs: " + (dir / "fifo").string() + " is a FIFO (named pipe), expected a regular file"));
    CHECK(contains(error_of([&] { ewe::io::read_text_file("/dev/zero", "--configs"); }),
                   "--configs: /dev/zero is a character device, expected a regular file"));
    // A text file beyond the cap is refused before it is read.
    std::ofstream(dir / "big.txt") << std::string(2000, 'x');
    CHECK(contains(error_of([&] { ewe::io::read_text_file(dir / "big.txt", "--configs", 1000); }),
                   "holds 2000 bytes, more than the 1000 a text file may have here"));
    CHECK(ewe::io::read_text_file(dir / "file.txt", "--configs") == "text\n");
    // create_folder never makes a folder over (or under) a file, and says so.
    CHECK(contains(error_of([&] { ewe::io::create_folder(dir / "file.txt" / "sub", "--out"); }),
                   "--out: cannot make the folder " + (dir / "file.txt" / "sub").string() + ": " +
                       (dir / "file.txt").string() + " is a regular file, expected a folder"));
    ewe::io::create_folder(dir / "a" / "b", "--out");
    CHECK(fs::is_directory(dir / "a" / "b"));
    fs::remove_all(dir);
}

TEST_CASE("read_csv reads back every field write_csv quoted: commas, quotes, CR, LF, CRLF") {
    const fs::path dir = temp_dir("messages", "csv");
    const std::vector<std::vector<std::string>> rows = {
        {"name", "value", "note"},
        {"a,b", "say \"hi\"", "line one\nline two"},
        {"", " spaced ", "crlf\r\ninside"},
        {"\"", ",", "\r"},
        {"sheep.npy", "1", "plain"},
    };
    ewe::io::write_csv(dir / "hostile.csv", rows);
    CHECK(ewe::io::read_csv(dir / "hostile.csv") == rows);
    const ewe::io::CsvTable table = ewe::io::CsvTable::read(dir / "hostile.csv");
    CHECK(table.rows.size() == 4);
    CHECK(table.rows[0][table.column("note")] == "line one\nline two");
    CHECK(table.lines == std::vector<std::int64_t>{2, 4, 6, 7});  // quoted newlines count as lines
    // CRLF records and an empty line between them.
    std::ofstream(dir / "crlf.csv", std::ios::binary) << "a,b\r\n1,2\r\n\r\n3,\"4\"\r\n";
    CHECK(ewe::io::read_csv(dir / "crlf.csv") == std::vector<std::vector<std::string>>{{"a", "b"}, {"1", "2"}, {"3", "4"}});
    fs::remove_all(dir);
}

TEST_CASE("read_csv refuses binary files and broken quoting, naming the file and the line") {
    const fs::path dir = temp_dir("messages", "bad_csv");
    std::ofstream(dir / "binary.csv", std::ios::binary) << std::string("epoch,loss\n1,2\n\x89PNG\r\n\x1a\n\0\0", 24);
    std::ofstream(dir / "open.csv") << "a,b\n1,\"never closed\n2,3\n";
    std::ofstream(dir / "stray.csv") << "a,b\n1,x\"y\n";
    std::ofstream(dir / "after.csv") << "a,b\n\"x\"y,1\n";
    std::ofstream(dir / "ragged.csv") << "a,b\n1,2\n3\n";
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"binary.csv", "is not text: byte 0x1a at line 4"},
        {"open.csv", "the quoted field opened on line 2 is never closed"},
        {"stray.csv", "line 2: a quote inside an unquoted field"},
        {"after.csv", "line 2: expected ',' or the end of the line after a quoted field, found 'y'"},
        {"ragged.csv", "line 3 has 1 fields, the header 2"},
    };
    for (const auto& [name, says] : cases) {
        CAPTURE(name);
        const std::string message = error_of([&] { (void)ewe::io::CsvTable::read(dir / name); });
        CHECK(contains(message, (dir / name).string()));
        CHECK(contains(message, says));
    }
    CHECK(contains(error_of([&] { (void)ewe::io::read_csv(dir); }), "is a folder, expected a regular file"));
    fs::remove_all(dir);
}

TEST_CASE("a bool .npy reads as bool, not uint8; load_bitmaps refuses it naming the file and the dtype") {
    const fs::path file = fs::path(__FILE__).parent_path().parent_path() / "data" / "bad_npy" / "bool_bitmaps.npy";
    const ewe::io::NpyArray a = ewe::io::read_npy(file);
    CHECK(a.dtype == ewe::io::DType::boolean);
    CHECK(ewe::io::npy_to_tensor<float>(a, "bool")[1] == 1.0f);  // explicit conversion: 0 or 1
    expect_error({"train", "--data", file.string(), "--epochs", "1"},
                 "--data: " + file.string() + ": expected dtype uint8 (0..255) or float32 (0..1), found bool");
}

TEST_CASE("a Vae too large for the available memory is refused before it is allocated, naming max_batch") {
    ewe::Context ctx(ewe::Device::cpu);
    const ewe::SheepVae<float> small(ctx, ewe::SheepVaeOptions{}, 4, 1);
    const ewe::MemoryEstimate fits = small.memory();
    CHECK(fits.parameters == 12857845 * 4);
    CHECK(fits.gradients == (12857845 - 350) * 4);
    CHECK(fits.activations > 0);
    // Activations grow with max_batch, parameters do not.
    const ewe::SheepVae<float> double_batch(ctx, ewe::SheepVaeOptions{}, 8, 1);
    CHECK(double_batch.memory().parameters == fits.parameters);
    CHECK(double_batch.memory().activations == 2 * fits.activations);

    const MemoryLimit limit(std::to_string(fits.total() + fits.activations / 2));
    try {
        const ewe::SheepVae<float> too_big(ctx, ewe::SheepVaeOptions{}, 1 << 20, 1);
        FAIL("a model of max_batch 2^20 was built within ", fits.total() + fits.activations / 2, " bytes");
    } catch (const ewe::OutOfMemory& e) {
        const std::string message = e.what();
        CHECK(contains(message, "Vae 'vae': max_batch 1048576 needs "));
        CHECK(contains(message, "are available"));
        CHECK(e.needed().activations == (fits.activations / 4) * (1 << 20));
        CHECK(e.needed().parameters == fits.parameters);
        CHECK(e.available() == fits.total() + fits.activations / 2);
    }
    // Within the limit the same model builds.
    const ewe::SheepVae<float> again(ctx, ewe::SheepVaeOptions{}, 4, 1);
    CHECK(again.memory().total() == fits.total());
}

TEST_CASE("sheep_vae refuses a model too large for memory up front, naming --batch, bench --batch or --width") {
    const fs::path dir = temp_dir("messages", "memory");
    const fs::path data = small_data(dir);
    // Room for the post's model with 8 rows of activations.
    ewe::Context ctx(ewe::Device::cpu);
    const ewe::MemoryEstimate one_row = ewe::SheepVae<float>(ctx, ewe::SheepVaeOptions{}, 1, 1).memory();
    const std::int64_t room = one_row.fixed() + 8 * one_row.activations;
    const MemoryLimit limit(std::to_string(room));
    expect_error({"train", "--data", data.string(), "--width", "16", "--epochs", "1", "--out", (dir / "w").string()},
                 "--width 16: the model's parameters and gradients alone need ");
    expect_error({"bench", "--batch", "1000000", "--steps", "1", "--warmup", "0"},
                 "bench --batch 1000000: a model for batches of 1000000 drawings needs ");
    const RunResult r = run({"bench", "--batch", "1000000", "--steps", "1", "--warmup", "0"});
    CHECK(contains(r.err, "but " + ewe::format_bytes(room) + " are available"));
    CHECK(contains(r.err, "lower bench --batch (or --width)"));
    // train: 16 drawings in batches of 16 need 16 rows of activations.
    expect_error({"train", "--data", data.string(), "--batch", "16", "--epochs", "1", "--out", (dir / "b").string()},
                 "--batch 16: a model for batches of 16 drawings needs ");
    CHECK(!fs::exists(dir / "b" / "checkpoint.safetensors"));
    fs::remove_all(dir);
}

TEST_CASE("a --batch larger than the data trains one batch of all of it, the model sized for the data") {
    const fs::path dir = temp_dir("messages", "big_batch");
    const fs::path data = small_data(dir);
    const MemoryLimit limit("2000000000");  // a model for 10^6 rows would need terabytes
    const RunResult r = run({"train", "--data", data.string(), "--batch", "1000000", "--epochs", "1", "--width", "0.1",
                             "--snapshots", "", "--monitor", "0", "--out", (dir / "run").string()});
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    CHECK(contains(r.err, "Training on 16 drawings"));
    CHECK(contains(r.err, "batch 16"));
    fs::remove_all(dir);
}

TEST_CASE("--data '' is an error, not the default data") {
    const fs::path dir = temp_dir("messages", "empty_data");
    for (const char* command : {"train", "sweep"}) {
        CAPTURE(command);
        const std::vector<std::string> args = {command, "--data", "", "--epochs", "1", "--width", "0.1", "--out",
                                               (dir / command).string()};
        expect_error(args, "--data: the path is empty (expected a .npy file of drawings)");
        CHECK(!fs::exists(dir / command / "checkpoint.safetensors"));
    }
    expect_error({"anomalies", "--checkpoint", "c.safetensors", "--data", "", "--out", (dir / "a").string()},
                 "--data: the path is empty");
    fs::remove_all(dir);
}

TEST_CASE("paths given to sheep_vae say what is there: a folder, a FIFO, a device, a file for a folder") {
    const fs::path dir = temp_dir("messages", "cli_paths");
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
    std::ofstream(dir / "file.txt") << "x\n";
    expect_error({"train", "--data", dir.string(), "--epochs", "1"},
                 "--data: " + dir.string() + " is a folder, expected a regular file");
    expect_error({"train", "--data", (dir / "fifo").string(), "--epochs", "1"},
                 "--data: " + (dir / "fifo").string() + " is a FIFO (named pipe), expected a regular file");
    // sweep --configs: a folder, a FIFO (would block) and /dev/zero (would read without end).
    const std::vector<std::string> sweep = {"sweep", "--out", (dir / "sweep").string(), "--configs"};
    auto with = [&](const std::string& path) {
        std::vector<std::string> args = sweep;
        args.push_back(path);
        return args;
    };
    expect_error(with(dir.string()), "--configs: " + dir.string() + " is a folder, expected a regular file");
    expect_error(with((dir / "fifo").string()), "--configs: " + (dir / "fifo").string() + " is a FIFO");
    expect_error(with("/dev/zero"), "--configs: /dev/zero is a character device, expected a regular file");
    fs::remove_all(dir);
}

TEST_CASE("report: a binary metrics.csv, a snapshot that is a folder, and a file given as --out's folder") {
    const fs::path dir = temp_dir("messages", "report");
    const fs::path data = small_data(dir);
    const fs::path run_dir = tiny_run(dir, data);
    std::ofstream(dir / "file.txt") << "x\n";
    expect_error({"report", "--run", run_dir.string(), "--out", (dir / "file.txt" / "r.html").string()},
                 "--out: the folder of " + (dir / "file.txt" / "r.html").string() + ": " +
                     (dir / "file.txt").string() + " is a regular file, expected a folder");
    // A folder named like a snapshot figure: the error names it.
    fs::create_directories(run_dir / "latent_epoch009.svg");
    expect_error({"report", "--run", run_dir.string(), "--out", (dir / "r.html").string()},
                 (run_dir / "latent_epoch009.svg").string() + " is a folder, expected a regular file");
    fs::remove(run_dir / "latent_epoch009.svg");
    // A binary metrics.csv is an error naming it, not "no epochs yet".
    std::ofstream(run_dir / "metrics.csv", std::ios::binary) << std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 17);
    const RunResult r = run({"report", "--run", run_dir.string(), "--out", (dir / "r.html").string()});
    CHECK(r.rc != 0);
    CHECK(contains(r.err, (run_dir / "metrics.csv").string() + " is not text: byte 0x1a at line 2"));
    CHECK(!contains(r.err + r.out, "no epochs yet"));
    fs::remove_all(dir);
}

TEST_CASE("report reads the scores.csv that anomalies wrote for a file name with a comma, quotes and a newline") {
    const fs::path dir = temp_dir("messages", "hostile_name");
    const fs::path run_dir = tiny_run(dir, small_data(dir));
    const fs::path hostile = small_data(dir, "she,ep \"one\"\ntwo.npy");
    const RunResult a = run({"anomalies", "--checkpoint", (run_dir / "checkpoint.safetensors").string(), "--data",
                             hostile.string(), "--out", (dir / "anomalies").string()});
    REQUIRE_MESSAGE(a.rc == 0, a.err);
    const ewe::io::CsvTable scores = ewe::io::CsvTable::read(dir / "anomalies" / "scores.csv");
    REQUIRE(scores.rows.size() == 16);
    CHECK(scores.rows[15][scores.column("source")] == hostile.string());
    const RunResult r = run({"report", "--run", run_dir.string(), "--anomalies", (dir / "anomalies").string(), "--out",
                             (dir / "r.html").string()});
    CHECK_MESSAGE(r.rc == 0, r.err);
    fs::remove_all(dir);
}
