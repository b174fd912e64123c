// Runs the sheep_vae program in-process for tests (sheep_vae_main of the sheep_vae_cli
// library) with its output and error streams captured, plus the small string and file
// helpers the program's tests share.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <sheep_vae/sheep_vae.hpp>

namespace sheep_test {

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

}  // namespace sheep_test
