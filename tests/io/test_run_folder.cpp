// Run folders (ewe/io/run_lock.hpp) and content fingerprints (ewe/io/fingerprint.hpp):
// a RunLock refuses a second holder at once, in the same process or another one, naming
// the folder and the holder's pid, and a killed holder leaves no lock behind; FNV-1a
// matches the published test vectors and content_hash tells apart any element, the
// shape and the element type. The files of a training run (ewe/train/run_folder.hpp) are
// listed, described and deleted without touching the folder's other files, and run_jobs
// runs every job once and rethrows the first error.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ewe/io/fingerprint.hpp>
#include <ewe/io/run_lock.hpp>
#include <ewe/train/run_folder.hpp>
#include <ewe/train/run_jobs.hpp>

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("ewe_test_run_folder_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    return p;
}

// The RunFolderBusy that locking `dir` throws (folder empty when it does not throw).
ewe::io::RunFolderBusy busy_error(const fs::path& dir) {
    try {
        ewe::io::RunLock second(dir);
    } catch (const ewe::io::RunFolderBusy& e) {
        return e;
    }
    return ewe::io::RunFolderBusy({}, -1);
}

}  // namespace

TEST_CASE("RunLock: a second lock on a held folder fails at once naming the folder and the pid; freed when destroyed") {
    const fs::path dir = temp_dir("same") / "run";
    {
        const ewe::io::RunLock first(dir);  // creates the folder
        CHECK(fs::is_directory(dir));
        CHECK(fs::exists(dir / ewe::io::RunLock::kFileName));
        const ewe::io::RunFolderBusy e = busy_error(dir);
        CHECK(e.folder() == dir);
        CHECK(e.holder_pid() == ::getpid());
        const std::string what = e.what();
        CHECK(what.find(dir.string()) != std::string::npos);
        CHECK(what.find("process " + std::to_string(::getpid())) != std::string::npos);
        // Another folder is not affected.
        CHECK_NOTHROW(ewe::io::RunLock{dir.parent_path() / "other"});
    }
    CHECK_NOTHROW(ewe::io::RunLock{dir});  // released with the first
    fs::remove_all(dir.parent_path());
}

TEST_CASE("RunLock: another process holds the folder; once it is killed the lock is free again") {
    const fs::path dir = temp_dir("fork");
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(ready[0]);
        try {
            const ewe::io::RunLock held(dir);
            const char ok = 'y';
            if (::write(ready[1], &ok, 1) != 1) ::_exit(2);
            for (;;) ::pause();  // until SIGKILL
        } catch (...) {
            ::_exit(3);
        }
    }
    ::close(ready[1]);
    char ok = 0;
    REQUIRE(::read(ready[0], &ok, 1) == 1);
    ::close(ready[0]);
    const ewe::io::RunFolderBusy e = busy_error(dir);
    CHECK(e.holder_pid() == child);
    CHECK(std::string(e.what()).find("process " + std::to_string(child)) != std::string::npos);

    ::kill(child, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    // The dead holder's lock file is still there, naming its pid, and blocks nothing.
    CHECK(fs::exists(dir / ewe::io::RunLock::kFileName));
    CHECK_NOTHROW(ewe::io::RunLock{dir});
    fs::remove_all(dir);
}

TEST_CASE("RunLock: a folder that cannot be created is an error naming it") {
    const fs::path dir = temp_dir("file");
    fs::create_directories(dir);
    { std::FILE* f = std::fopen((dir / "plain").c_str(), "w"); REQUIRE(f); std::fclose(f); }
    try {
        ewe::io::RunLock lock(dir / "plain" / "run");
        FAIL("no error");
    } catch (const ewe::Error& e) {
        CHECK(std::string(e.what()).find((dir / "plain" / "run").string()) != std::string::npos);
    }
    fs::remove_all(dir);
}

TEST_CASE("fnv1a64: the published FNV-1a 64-bit test vectors") {
    CHECK(ewe::io::fnv1a64("", 0) == 0xcbf29ce484222325ull);
    CHECK(ewe::io::fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(ewe::io::fnv1a64("foobar", 6) == 0x85944171f73967e8ull);
    // In pieces as in one call.
    CHECK(ewe::io::fnv1a64("bar", 3, ewe::io::fnv1a64("foo", 3)) == 0x85944171f73967e8ull);
    CHECK(ewe::io::hash_text(0xaf63dc4c8601ec8cull) == "0xaf63dc4c8601ec8c");
    CHECK(ewe::io::hash_text(1) == "0x0000000000000001");
}

TEST_CASE("content_hash: equal contents hash equal; any element, the shape or the element type changes it") {
    ewe::Tensor<float> a(ewe::Shape{4, 6});
    for (std::int64_t i = 0; i < a.numel(); ++i) a.data()[i] = float(i) * 0.25f;
    ewe::Tensor<float> b(ewe::Shape{4, 6});
    std::memcpy(b.data(), a.data(), sizeof(float) * 24);
    const std::uint64_t h = ewe::io::content_hash<float>(a.view());
    CHECK(h == ewe::io::content_hash<float>(b.view()));
    for (std::int64_t i : {0, 11, 23}) {
        b.data()[i] += 1.0f;
        CHECK(ewe::io::content_hash<float>(b.view()) != h);
        b.data()[i] = a.data()[i];
    }
    CHECK(ewe::io::content_hash<float>(b.view()) == h);
    CHECK(ewe::io::content_hash<float>(a.view().reshaped(ewe::Shape{6, 4})) != h);
    CHECK(ewe::io::content_hash<float>(a.view().reshaped(ewe::Shape{24})) != h);
    ewe::Tensor<std::int32_t> ints(ewe::Shape{4, 6});
    std::memcpy(ints.data(), a.data(), sizeof(float) * 24);  // the same bytes as another type
    CHECK(ewe::io::content_hash<std::int32_t>(ints.view()) != h);
    ewe::Tensor<std::uint32_t> unsigned_ints(ewe::Shape{4, 6});
    std::memcpy(unsigned_ints.data(), a.data(), sizeof(float) * 24);
    CHECK(ewe::io::content_hash<std::uint32_t>(unsigned_ints.view()) != h);
    CHECK(ewe::io::content_hash<std::uint32_t>(unsigned_ints.view()) != ewe::io::content_hash<std::int32_t>(ints.view()));
    // The first rows of a data set (--limit) are other data.
    CHECK(ewe::io::content_hash<float>(a.view().leading(3)) != h);
}

TEST_CASE("run_files lists exactly a run's files; run_files_text describes them; delete_run_files keeps the rest") {
    const fs::path dir = temp_dir("files");
    fs::create_directories(dir / "logs");
    const auto touch = [](const fs::path& p) { std::ofstream(p) << "x"; };
    for (const char* name : {"metrics.csv", "loss.svg", "latent_epoch005.npy", "latent_epoch005.svg", "notes.txt",
                             "latent_epoch.txt", "train.log"})
        touch(dir / name);
    touch(dir / "logs" / "events.out.tfevents.1.host");
    touch(dir / "logs" / "mine.txt");
    fs::create_directories(dir / "latent_epoch007.svg");  // a folder is not a run's file
    std::vector<fs::path> files = ewe::run_files(dir);
    std::vector<std::string> names;
    for (const fs::path& f : files) names.push_back(f.lexically_relative(dir).string());
    CHECK(names == std::vector<std::string>{"metrics.csv", "loss.svg", "latent_epoch005.npy", "latent_epoch005.svg",
                                            "logs/events.out.tfevents.1.host"});
    CHECK(ewe::run_files_text(dir, files) == "metrics.csv, loss.svg, 2 latent_epoch* files, logs/ with 1 event file");
    CHECK(ewe::checkpoint_epoch(ewe::run_checkpoint_path(dir)) == -1);
    CHECK(ewe::checkpoint_state(ewe::run_checkpoint_path(dir)) ==
          "no " + ewe::run_checkpoint_path(dir).string() + " was written");
    ewe::delete_run_files(dir, files, "--overwrite");
    CHECK(ewe::run_files(dir).empty());
    for (const char* kept : {"notes.txt", "latent_epoch.txt", "train.log", "logs/mine.txt", "latent_epoch007.svg"}) {
        CAPTURE(kept);
        CHECK(fs::exists(dir / kept));  // not a run's file: kept, and logs/ with it
    }
    fs::remove_all(dir);
}

TEST_CASE("run_jobs runs every job once on its workers and rethrows the first error after all have ended") {
    for (int workers : {1, 3}) {
        CAPTURE(workers);
        std::vector<std::atomic<int>> runs(7);
        ewe::run_jobs(runs.size(), workers, [&](std::size_t i) { ++runs[i]; });
        for (const auto& r : runs) CHECK(r.load() == 1);
    }
    std::atomic<int> ended{0};
    bool told = false;
    const auto failing = [&] {
        ewe::run_jobs(5, 2, [&](std::size_t i) {
            ++ended;
            if (i == 1) ewe::fail("job 1 failed");
        }, [&] { told = true; });
    };
    CHECK_THROWS_WITH_AS(failing(), "job 1 failed", ewe::Error);
    CHECK(ended.load() == 5);
    CHECK(told);
}
