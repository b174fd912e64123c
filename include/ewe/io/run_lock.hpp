// RunLock: a run folder used by one process at a time. The lock is flock(2) on
// FOLDER/.ewe-run.lock, taken without waiting and held for the RunLock's lifetime; the
// file also names the holder's pid for whoever is refused. The kernel drops a flock
// when its holder exits, even by SIGKILL, so a crashed run never leaves a stale lock
// (the file stays; only the flock on it counts). Locks belong to open file descriptions:
// a second RunLock on the same folder fails even inside the same process.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "ewe/core/error.hpp"

namespace ewe::io {

// Thrown by RunLock when another RunLock (of this or another process) holds the folder.
class EWE_VISIBLE RunFolderBusy : public Error {
public:
    RunFolderBusy(std::filesystem::path folder, long holder_pid)
        : Error(ewe::detail::concat("RunLock: ", folder.string(), " is in use by ",
                               holder_pid > 0 ? "process " + std::to_string(holder_pid) : std::string("another process"),
                               " (it holds a lock on ", (folder / ".ewe-run.lock").string(),
                               "); wait for it to end, or use another folder")),
          folder_(std::move(folder)),
          holder_pid_(holder_pid) {}
    const std::filesystem::path& folder() const { return folder_; }
    long holder_pid() const { return holder_pid_; }  // 0: the holder has not written its pid yet

private:
    std::filesystem::path folder_;
    long holder_pid_;
};

class RunLock {
public:
    static constexpr const char* kFileName = ".ewe-run.lock";

    // Creates `folder` when it is missing and locks it; throws RunFolderBusy when another
    // RunLock holds it, ewe::Error when the folder or the lock file cannot be created.
    explicit RunLock(std::filesystem::path folder) : folder_(std::move(folder)) {
        std::error_code ec;
        std::filesystem::create_directories(folder_, ec);
        if (ec) fail("RunLock: cannot create ", folder_.string(), ": ", ec.message());
        const std::filesystem::path file = folder_ / kFileName;
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) fail("RunLock: cannot open ", file.string(), ": ", std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            const int error = errno;
            ::close(fd_);
            fd_ = -1;
            if (error == EWOULDBLOCK) throw RunFolderBusy(folder_, holder_pid(file));
            fail("RunLock: cannot lock ", file.string(), ": ", std::strerror(error));
        }
        // The pid is written in place through the locked descriptor: replacing the file
        // (as the atomic writer does) would give the next process another inode to lock.
        const std::string pid = std::to_string(::getpid()) + "\n";
        if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
            ::close(fd_);
            fd_ = -1;
            fail("RunLock: cannot write ", file.string(), ": ", std::strerror(errno));
        }
    }
    ~RunLock() {
        if (fd_ >= 0) ::close(fd_);  // releases the flock
    }
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;

    const std::filesystem::path& folder() const { return folder_; }

private:
    // The pid recorded in a lock file; 0 when it holds none (yet).
    static long holder_pid(const std::filesystem::path& file) {
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        char text[32] = {};
        const ssize_t n = ::read(fd, text, sizeof text - 1);
        ::close(fd);
        if (n <= 0) return 0;
        char* end = nullptr;
        const long pid = std::strtol(text, &end, 10);
        return end != text && (*end == '\n' || *end == '\0') && pid > 0 ? pid : 0;
    }

    std::filesystem::path folder_;
    int fd_ = -1;
};

// Locks `folder` (created when missing) for this process; a folder another RunLock holds
// is an ewe::Error naming `who` (the caller's name for the folder, e.g. a program's
// "--out"), the folder and the holder's pid.
inline std::unique_ptr<RunLock> lock_run_folder(const std::filesystem::path& folder, const std::string& who) {
    try {
        return std::make_unique<RunLock>(folder);
    } catch (const RunFolderBusy& e) {
        fail(who, ": ", folder.string(), " is in use by ",
             e.holder_pid() > 0 ? "process " + std::to_string(e.holder_pid()) : std::string("another process"),
             " (another run writing there); wait for it to end, or choose another ", who);
    }
}

}  // namespace ewe::io
