// Runs the sheep_vae program in-process for tests (sheep_vae_main of the sheep_vae_cli
// library) with its output and error streams captured, plus the small string, file, data
// and error-expectation helpers the program's doctest suites share (include doctest first).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <ewe/data/procedural_sheep.hpp>
#include <ewe/io/npy.hpp>
#include <sheep_vae/sheep_vae.hpp>

namespace sheep_test {

// The --width of the models the program tests train where any width would do: the
// post's (1: 12.9 million parameters) in the plain build, which checks that size end to
// end; under the sanitizers (EWE_UNDER_SANITIZER) a quarter-width model, whose steps take
// the same code paths through the same checks, while a full-size step takes seconds.
#ifdef EWE_UNDER_SANITIZER
inline const std::string trained_width = "0.25";
#else
inline const std::string trained_width = "1";
#endif

struct RunResult {
    int rc = 0;
    std::string out, err;
};

// `sheep_vae args...`: the exit status and what it wrote to out and err.
inline RunResult run(std::vector<std::string> args) {
    args.insert(args.begin(), "sheep_vae");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::ostringstream out, err;
    RunResult r;
    r.rc = sheep_vae_main(int(args.size()), argv.data(), out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

inline bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

inline std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Expects a clean failure (non-zero exit) whose message names `what`.
inline void expect_error(const std::vector<std::string>& args, const std::string& what) {
    const RunResult r = run(args);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    INFO("command: ", cmd, "\nstderr: ", r.err, "\nstdout: ", r.out);
    CHECK(r.rc != 0);
    CHECK(contains(r.err + r.out, what));
}

// A fresh, empty folder ewe_test_<prefix>_<name>_<pid> under the system's temporary folder.
inline std::filesystem::path temp_dir(const std::string& prefix, const std::string& name) {
    const std::filesystem::path p =
        std::filesystem::temp_directory_path() / ("ewe_test_" + prefix + "_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
    return p;
}

// `n` drawings as a uint8 (n, 784) .npy file dir/name: the first n real sheep when
// $EWE_DATA/sheep.npy exists, else procedural ones.
inline std::filesystem::path small_data(const std::filesystem::path& dir, std::int64_t n,
                                        const std::string& name = "small.npy") {
    const std::filesystem::path p = dir / name;
    const char* d = std::getenv("EWE_DATA");
    const std::filesystem::path real = d && *d ? std::filesystem::path(d) / "sheep.npy" : std::filesystem::path();
    if (!real.empty() && std::filesystem::exists(real)) {
        const auto a = ewe::io::read_npy(real);
        ewe::io::write_npy<std::uint8_t>(p, reinterpret_cast<const std::uint8_t*>(a.bytes.data()), ewe::Shape{n, 784});
    } else {
        const auto bytes = ewe::procedural_sheep(n, 3);
        ewe::io::write_npy<std::uint8_t>(p, bytes.data(), ewe::Shape{n, 784});
    }
    return p;
}

// Every file under `dir` (relative path -> bytes), to show that a command changed nothing.
inline std::map<std::string, std::string> folder_bytes(const std::filesystem::path& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        if (e.is_regular_file()) files[std::filesystem::relative(e.path(), dir).string()] = slurp(e.path());
    return files;
}

}  // namespace sheep_test
