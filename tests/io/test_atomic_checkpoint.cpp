// Checkpoints killed mid-save: a child process rewrites a large safetensors checkpoint
// (ewe::io::write_safetensors: temporary file, fsync, rename) over and over while the
// parent SIGKILLs it at random moments; after every kill the destination must be absent
// (before the first save completed) or a complete, intact checkpoint no older than the
// last one seen, and the temporary files left behind must not look like checkpoints.
// The next save (write_safetensors, write_npy) removes the temporaries of dead writers
// and nothing else; a failed save leaves no temporary (ewe/io/atomic_file.hpp).
// Then: loading a checkpoint of another architecture, dtype, format or format version
// fails with a message naming the mismatch (ewe::Checkpoint::read, sheep_vae_options and
// load_parameters; sheep_vae's own checks of its run settings are in test_sheep_vae_cli).
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <ewe/ewe.hpp>

#include "ewe/io/atomic_file.hpp"
#include "ewe/io/npy.hpp"
#include "ewe/io/safetensors.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int kTensors = 4;
constexpr std::size_t kFloatsPerTensor = std::size_t(1) << 20;  // 4 MiB each, 16 MiB per checkpoint

fs::path temp_dir(const std::string& tag) {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_atomic_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// The value of element i of tensor t in checkpoint version v: any torn or mixed file
// shows up as a wrong value.
// (Cheap to compute, so that the writer spends its time writing; exact in float.)
float pattern(std::int64_t v, int t, std::size_t i) { return float((std::int64_t(i) * 31 + t * 7 + v) & 0xFFFFF); }

// Writes versions first, first+1, ... to `path` forever (run in the child).
[[noreturn]] void write_forever(const fs::path& path, std::int64_t first) {
    try {
        std::vector<std::vector<float>> data(kTensors, std::vector<float>(kFloatsPerTensor));
        for (std::int64_t v = first;; ++v) {
            std::vector<ewe::io::SafetensorsEntry> entries;
            for (int t = 0; t < kTensors; ++t) {
                for (std::size_t i = 0; i < kFloatsPerTensor; ++i) data[t][i] = pattern(v, t, i);
                entries.push_back({"layer" + std::to_string(t) + "/kernel", "F32", {std::int64_t(kFloatsPerTensor)},
                                   data[t].data(), kFloatsPerTensor * sizeof(float)});
            }
            ewe::io::write_safetensors(path, entries, {{"version", std::to_string(v)}});
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "writer: %s\n", e.what());
    }
    ::_exit(3);
}

// The version of the checkpoint at `path` after checking every element; throws on any damage.
std::int64_t verify(const fs::path& path) {
    const ewe::io::SafetensorsFile f = ewe::io::read_safetensors(path);
    const std::int64_t v = std::stoll(f.meta("version"));
    REQUIRE(f.tensors.size() == std::size_t(kTensors));
    std::vector<float> x(kFloatsPerTensor);
    for (int t = 0; t < kTensors; ++t) {
        f.copy_to("layer" + std::to_string(t) + "/kernel", x.data(), x.size());
        for (std::size_t i = 0; i < kFloatsPerTensor; ++i)
            if (x[i] != pattern(v, t, i)) FAIL("version ", v, " tensor ", t, " element ", i, " is torn");
    }
    return v;
}

}  // namespace

TEST_CASE("a checkpoint writer SIGKILLed at random moments never leaves a torn checkpoint") {
    const fs::path dir = temp_dir("kill");
    const fs::path path = dir / "checkpoint.safetensors";
    std::mt19937 rng(20261121);
    std::uniform_int_distribution<int> delay_ms(0, 250);
    const int rounds = 30;
    int killed = 0, mid_write = 0, absent = 0;
    std::int64_t last = -1, next_first = 0;
    // At least `rounds` kills, and more (up to 200) until 3 of them landed mid-write.
    for (int round = 0; round < rounds || (mid_write < 3 && round < 200); ++round) {
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) write_forever(path, next_first);
        if (round == 0) {
            // Let the first save complete (however slow the disk), so that later rounds
            // always have a previous good checkpoint to fall back on.
            for (int wait = 0; wait < 6000 && !fs::exists(path); ++wait)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
        REQUIRE(::kill(child, SIGKILL) == 0);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        // Killed by us, not exited on its own (an exit would mean the writer failed).
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
        ++killed;

        // Temporary files: "checkpoint.safetensors.tmp.<pid>.<n>", never "*.safetensors".
        // (Earlier children's were removed below: the next save removes them only once
        // the next child gets that far before its kill.)
        int temps = 0;
        for (const auto& e : fs::directory_iterator(dir)) {
            if (e.path() == path) continue;
            CAPTURE(e.path());
            CHECK(e.path().filename().string().rfind("checkpoint.safetensors.tmp." + std::to_string(child) + ".", 0) ==
                  0);
            CHECK(e.path().extension() != ".safetensors");
            ++temps;
            fs::remove(e.path());
        }
        mid_write += temps > 0;

        if (!fs::exists(path)) {
            CHECK(last == -1);  // once a checkpoint exists it never disappears
            ++absent;
            continue;
        }
        std::int64_t v = -1;
        REQUIRE_NOTHROW(v = verify(path));
        CHECK(v >= last);  // never an older checkpoint than one already seen
        last = v;
        next_first = v + 1;
    }
    MESSAGE("SIGKILLs: ", killed, ", of which ", mid_write, " left a temporary file (killed mid-write), ", absent,
            " before the first checkpoint existed; last intact version ", last);
    CHECK(absent == 0);
    CHECK(killed >= rounds);
    CHECK(mid_write >= 3);  // the kills did land inside writes
    CHECK(last >= 0);      // and some saves completed
    fs::remove_all(dir);
}

namespace {

// A small sheep VAE and its optimizer (the default architecture with fewer units).
ewe::SheepVaeOptions small_model_options(std::int64_t latent = 2) {
    ewe::SheepVaeOptions c;
    c.filters = {4, 8};
    c.units = {16, 8};
    c.latent = latent;
    return c;
}

// A sheep VAE checkpoint read back by the library: its format and version checked, and
// the model's configuration.
struct ReadBack {
    ewe::Checkpoint file;
    ewe::SheepVaeOptions model_options;
};
ReadBack read_sheep_checkpoint(const fs::path& path) {
    ewe::Checkpoint file = ewe::Checkpoint::read(path, ewe::kSheepVaeFormat, ewe::kSheepVaeFormatVersion, "--checkpoint");
    const ewe::SheepVaeOptions model_options = ewe::sheep_vae_options(file);
    return {std::move(file), model_options};
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ewe::Error& e) {
        return e.what();
    }
    return "<no ewe::Error>";
}

// Rewrites the checkpoint `from` as `to`, with metadata changes and every F32 tensor
// stored as `dtype` (F32 or F64).
void rewrite(const fs::path& from, const fs::path& to, const std::map<std::string, std::string>& meta_changes,
             const std::string& dtype = "F32") {
    const ewe::io::SafetensorsFile f = ewe::io::read_safetensors(from);
    std::map<std::string, std::string> meta = f.metadata;
    for (const auto& [k, v] : meta_changes) meta[k] = v;
    std::vector<std::vector<double>> wide;
    wide.reserve(f.tensors.size());
    std::vector<ewe::io::SafetensorsEntry> entries;
    for (const auto& [name, t] : f.tensors) {
        if (dtype == "F64") {
            const std::size_t n = (t.end - t.begin) / 4;
            std::vector<float> x(n);
            f.copy_to(name, x.data(), n);
            wide.emplace_back(x.begin(), x.end());
            entries.push_back({name, "F64", t.shape, wide.back().data(), n * 8});
        } else {
            entries.push_back({name, t.dtype, t.shape, f.data.data() + t.begin, t.end - t.begin});
        }
    }
    ewe::io::write_safetensors(to, entries, meta);
}

}  // namespace

TEST_CASE("loading a checkpoint of another architecture, dtype, format or version names the mismatch") {
    const fs::path dir = temp_dir("mismatch");
    const fs::path good = dir / "good.safetensors";
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, small_model_options(2), 2, 1);
    ewe::Rmsprop<float> opt(ctx, vae.params(), {.lr = 1e-3});
    ewe::CheckpointMetadata meta = ewe::sheep_vae_metadata(vae.options());
    meta.merge(ewe::training_metadata(opt, ewe::TrainProgress{}));
    ewe::save_checkpoint<float>(good, vae.params(), &opt, meta);
    {
        // The good checkpoint loads into the same architecture.
        const ReadBack c = read_sheep_checkpoint(good);
        ewe::SheepVae<float> same(ctx, c.model_options, 2, 1);
        CHECK_NOTHROW(c.file.load_parameters(same.params()));
    }

    SUBCASE("another architecture: tensor shapes differ") {
        const ReadBack c = read_sheep_checkpoint(good);
        ewe::SheepVae<float> other(ctx, small_model_options(5), 2, 1);
        const std::string m = error_of([&] { c.file.load_parameters(other.params()); });
        CHECK(m.find(good.string()) != std::string::npos);
        CHECK(m.find("the model expects") != std::string::npos);
        CHECK(m.find("a checkpoint of another architecture?") != std::string::npos);
    }
    SUBCASE("another dtype: F64 tensors where F32 is expected") {
        const fs::path f64 = dir / "f64.safetensors";
        rewrite(good, f64, {}, "F64");
        const ReadBack c = read_sheep_checkpoint(f64);
        ewe::SheepVae<float> same(ctx, c.model_options, 2, 1);
        const std::string m = error_of([&] { c.file.load_parameters(same.params()); });
        CHECK(m.find(f64.string()) != std::string::npos);
        CHECK(m.find("is F64, expected F32") != std::string::npos);
    }
    SUBCASE("another format version") {
        const fs::path v2 = dir / "v2.safetensors";
        rewrite(good, v2, {{"format_version", "2"}});
        const std::string m = error_of([&] { read_sheep_checkpoint(v2); });
        CHECK(m.find(v2.string()) != std::string::npos);
        CHECK(m.find("checkpoint format_version 2, this program reads 1") != std::string::npos);
    }
    SUBCASE("edited model metadata values outside what the model handles name the key") {
        const std::vector<std::pair<std::string, std::string>> edits = {{"model.latent", "99999999999999999999"},
                                                                         {"model.units", "16,1e15"},
                                                                         {"model.reparam", "banana"},
                                                                         {"model.filters", "10,1e300"}};
        for (const auto& [key, value] : edits) {
            CAPTURE(key);
            const fs::path edited = dir / "edited.safetensors";
            rewrite(good, edited, {{key, value}});
            const std::string m = error_of([&] { read_sheep_checkpoint(edited); });
            CHECK(m.find(edited.string()) != std::string::npos);
            CHECK(m.find(key) != std::string::npos);
        }
    }
    SUBCASE("another format") {
        const fs::path other = dir / "other.safetensors";
        rewrite(good, other, {{"format", "someone.else"}});
        const std::string m = error_of([&] { read_sheep_checkpoint(other); });
        CHECK(m.find(other.string()) != std::string::npos);
        CHECK(m.find("not a sheep_vae checkpoint (metadata 'format' should be ewe.sheep_vae)") != std::string::npos);
    }
    SUBCASE("a temporary file left by a killed save is not a checkpoint") {
        // What a kill mid-write leaves: the first half of the bytes under the temporary name.
        const auto size = fs::file_size(good);
        const fs::path tmp = dir / "good.safetensors.tmp.12345.0";
        {
            std::ifstream in(good, std::ios::binary);
            std::string bytes(size / 2, '\0');
            in.read(bytes.data(), std::streamsize(bytes.size()));
            std::ofstream(tmp, std::ios::binary) << bytes;
        }
        const std::string m = error_of([&] { read_sheep_checkpoint(tmp); });
        CHECK(m.find(tmp.string()) != std::string::npos);
        CHECK(m.find("truncated") != std::string::npos);
    }
    fs::remove_all(dir);
}

namespace {

// The pid of a child that has exited and been reaped: no live process has it (unless
// the system reuses it within the test, which it does only after wrapping around).
pid_t dead_pid() {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    return child;
}

std::set<std::string> files_in(const fs::path& dir) {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
    return names;
}

// The names, sorted, one per line (readable in a failed CHECK).
std::string listing(const std::set<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += n + "\n";
    return out;
}

// Puts temporaries of dead and live writers and look-alike files next to `dir/target`,
// saves `target` with `save`, and checks that exactly the dead writers' temporaries
// were removed.
void check_stale_temps_removed(const fs::path& dir, const std::string& target,
                               const std::function<void(const fs::path&)>& save) {
    const std::string dead = std::to_string(dead_pid()), live = std::to_string(::getppid());
    REQUIRE(::kill(std::stoi(dead), 0) == -1);
    const std::vector<std::string> stale = {target + ".tmp." + dead + ".0", target + ".tmp." + dead + ".17"};
    const std::vector<std::string> kept = {
        target + ".tmp." + live + ".0",    // a live writer's
        target + ".tmpfoo",                // not the pattern
        target + ".tmp12345",              // not the pattern (the old temporary names)
        target + ".tmp." + dead,           // no counter
        target + ".tmp." + dead + ".0x",   // not digits
        target + ".tmp.0.0",               // pid 0 is not a process
        target + ".tmp." + dead + ".0.1",  // more after the counter
        "other.tmp." + dead + ".0",        // another target's
        "x" + target + ".tmp." + dead + ".0"};
    for (const auto& names : {stale, kept})
        for (const std::string& name : names) std::ofstream(dir / name) << "partial";
    save(dir / target);
    std::set<std::string> expected(kept.begin(), kept.end());
    expected.insert(target);
    CHECK(listing(files_in(dir)) == listing(expected));
}

}  // namespace

TEST_CASE("a save removes the temporaries that dead writers left next to its target, and nothing else") {
    const fs::path dir = temp_dir("stale");
    SUBCASE("write_safetensors") {
        const std::vector<float> x = {1, 2, 3};
        check_stale_temps_removed(dir, "model.safetensors", [&](const fs::path& path) {
            ewe::io::write_safetensors(path, {{"x", "F32", {3}, x.data(), sizeof(float) * 3}}, {{"k", "v"}});
        });
        const ewe::io::SafetensorsFile f = ewe::io::read_safetensors(dir / "model.safetensors");
        std::vector<float> y(3);
        f.copy_to("x", y.data(), y.size());
        CHECK(y == x);
        CHECK(f.meta("k") == "v");
    }
    SUBCASE("write_npy") {
        const std::vector<double> x = {1.5, -2, 3, 4, 5, 6};
        check_stale_temps_removed(dir, "array.npy", [&](const fs::path& path) {
            ewe::io::write_npy(path, x.data(), ewe::Shape{2, 3});
        });
        const ewe::io::NpyArray a = ewe::io::read_npy(dir / "array.npy");
        CHECK(a.dtype == ewe::io::DType::f64);
        CHECK(a.shape == ewe::Shape{2, 3});
        std::vector<double> y(6);
        REQUIRE(a.bytes.size() == sizeof(double) * y.size());
        std::memcpy(y.data(), a.bytes.data(), a.bytes.size());
        CHECK(y == x);
    }
    fs::remove_all(dir);
}

TEST_CASE("a failed atomic write names the caller and the path and leaves no temporary") {
    const fs::path dir = temp_dir("failed");
    SUBCASE("the writer throws: the exception passes through, the target is untouched") {
        const fs::path path = dir / "a.bin";
        std::ofstream(path) << "old";
        const auto give_up = [](std::ostream& out) {
            out << "half";
            ewe::fail("writer gave up");
        };
        CHECK_THROWS_WITH_AS(ewe::io::write_file_atomically(path, "test_write", give_up), "writer gave up", ewe::Error);
        std::string content;
        std::ifstream(path) >> content;
        CHECK(content == "old");
    }
    SUBCASE("the target is a non-empty directory: the rename fails") {
        const fs::path path = dir / "taken.npy";
        fs::create_directories(path / "inside");
        const std::vector<float> x = {1};
        const std::string m = error_of([&] { ewe::io::write_npy(path, x.data(), ewe::Shape{1}); });
        CHECK(m.find("write_npy: could not rename ") != std::string::npos);
        CHECK(m.find(path.string()) != std::string::npos);
    }
    SUBCASE("the folder does not exist") {
        const fs::path path = dir / "missing" / "m.safetensors";
        const std::string m = error_of([&] { ewe::io::write_safetensors(path, {}, {}); });
        CHECK(m.find("write_safetensors: cannot create ") != std::string::npos);
        CHECK(m.find(path.string()) != std::string::npos);
    }
    for (const std::string& name : files_in(dir)) CHECK(name.find(".tmp.") == std::string::npos);
    fs::remove_all(dir);
}
