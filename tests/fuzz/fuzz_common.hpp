// Shared by the libFuzzer targets: the readers take a path, so each input is written
// to one scratch file per process (in /dev/shm when it exists: no disk traffic).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace ewe_fuzz {

// The scratch files, removed when the fuzzer exits normally (a crash keeps them).
struct ScratchFiles {
    std::vector<std::filesystem::path> paths;
    ~ScratchFiles() {
        std::error_code ignore;
        for (const auto& p : paths) std::filesystem::remove(p, ignore);
    }
};

inline ScratchFiles& scratch_files() {
    static ScratchFiles files;
    return files;
}

// The scratch file "ewe_fuzz_<pid><suffix>" (in /dev/shm when it exists).
inline std::filesystem::path scratch(const std::string& suffix) {
    static const std::string prefix =
        ((std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path()) /
         ("ewe_fuzz_" + std::to_string(::getpid())))
            .string();
    std::filesystem::path path = prefix + suffix;
    auto& paths = scratch_files().paths;
    if (std::find(paths.begin(), paths.end(), path) == paths.end()) paths.push_back(path);
    return path;
}

// Writes the input to `path` (whole, or the fuzzer stops: a short write is not a finding).
inline void put(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
        std::perror(path.c_str());
        std::abort();
    }
}

}  // namespace ewe_fuzz
