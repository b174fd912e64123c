// Atomic file writes (POSIX): the bytes go to a sibling temporary file
// `<filename>.tmp.<pid>.<counter>`, which is fsynced and renamed over the target, so
// readers see the old file or the complete new one, never a torn one. Temporaries left
// by writers that were killed mid-write (their pid is no longer a live process) are
// removed by the next write to the same target.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

#include "ewe/core/error.hpp"

namespace ewe::io {

namespace detail {

// fsyncs a file or a directory; false when it could not be opened or synced.
inline bool fsync_path(const std::filesystem::path& p, bool directory) {
    const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

// The pid in `name` when it is exactly `<filename>.tmp.<pid>.<n>` (decimal digits), else 0.
inline pid_t temp_owner(std::string_view name, std::string_view filename) {
    const std::string prefix = std::string(filename) + ".tmp.";
    if (!name.starts_with(prefix)) return 0;
    const std::string_view rest = name.substr(prefix.size());
    const std::size_t dot = rest.find('.');
    const std::string_view pid = rest.substr(0, dot), counter = dot == rest.npos ? "" : rest.substr(dot + 1);
    const auto digits = [](std::string_view s) {
        return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!digits(pid) || !digits(counter)) return 0;
    std::int64_t value = 0;
    const std::from_chars_result parsed = std::from_chars(pid.data(), pid.data() + pid.size(), value);
    if (parsed.ec != std::errc{} || value <= 0 || value > std::numeric_limits<pid_t>::max()) return 0;
    return pid_t(value);
}

// The temporary file of `path` for this process: `<path>.tmp.<pid>.<n>`, n counting the
// writes of the process (all threads and callers share one counter).
inline std::filesystem::path temp_path(const std::filesystem::path& path) {
    static std::atomic<std::uint64_t> counter{0};
    std::filesystem::path tmp = path;
    tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    return tmp;
}

// Removes the temporaries of `dir/filename` whose writer process no longer exists.
// Temporaries of live processes (a concurrent writer) and every other file are left alone.
inline void remove_stale_temps(const std::filesystem::path& dir, std::string_view filename) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const pid_t owner = temp_owner(it->path().filename().native(), filename);
        if (owner > 0 && ::kill(owner, 0) == -1 && errno == ESRCH) {
            std::error_code ignore;
            std::filesystem::remove(it->path(), ignore);
        }
    }
}

}  // namespace detail

// Calls write(out) on a stream to a temporary sibling of `path` and moves the result
// over `path` (fsyncing the file and its directory): `path` is replaced complete or not
// at all. Errors are ewe::Error messages that start with `what` (the caller's name); the
// temporary is removed on every failure, including an exception thrown by `write`.
template <class Write>
void write_file_atomically(const std::filesystem::path& path, std::string_view what, Write&& write) {
    const std::filesystem::path dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    detail::remove_stale_temps(dir, path.filename().native());
    const std::filesystem::path tmp = detail::temp_path(path);
    const auto remove_tmp = [&] {
        std::error_code ignore;
        std::filesystem::remove(tmp, ignore);
    };
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) fail(what, ": cannot create ", tmp.string(), " (for ", path.string(), ")");
        try {
            write(static_cast<std::ostream&>(out));
        } catch (...) {
            out.close();
            remove_tmp();
            throw;
        }
        out.close();
        if (!out || !detail::fsync_path(tmp, false)) {
            remove_tmp();
            fail(what, ": could not write ", path.string(), " (disk full or no permission?)");
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        remove_tmp();
        fail(what, ": could not rename ", tmp.string(), " to ", path.string(), ": ", ec.message());
    }
    detail::fsync_path(dir, true);  // best effort: some file systems cannot sync a directory
}

}  // namespace ewe::io
