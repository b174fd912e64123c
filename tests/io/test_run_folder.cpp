// Run folders (ewe/io/run_lock.hpp) and content fingerprints (ewe/io/fingerprint.hpp):
// a RunLock refuses a second holder at once, in the same process or another one, naming
// the folder and the holder's pid, and a killed holder leaves no lock behind; FNV-1a
// matches the published test vectors and content_hash tells apart any element, the
// shape and the element type. The files of a training run (ewe/train/run_folder.hpp) are
// listed, described and deleted without touching the folder's other files; a RunFolder
// starts, refuses, resumes (bit for bit), finishes and overwrites a run as asked; and
// run_jobs runs every job once and rethrows the first error.
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
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/fingerprint.hpp>
#include <ewe/loss/vae_loss.hpp>
#include <ewe/models/sheep_vae_checkpoint.hpp>
#include <ewe/optim/optimizers.hpp>
#include <ewe/io/run_lock.hpp>
#include <ewe/train/run_folder.hpp>
#include <ewe/train/run_jobs.hpp>

#include "error_of.hpp"
#include "small_sheep_vae.hpp"

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

// A run of the small sheep VAE trained in `dir` through RunFolder through `epochs`; the
// parameters it ends with.
static std::vector<float> train_in_folder(const fs::path& dir, const ewe::RunFolderOptions& options, std::ostream& log) {
    const ewe::SheepVaeOptions model_options = ewe_test::small_model_options();
    ewe::Context ctx;
    ewe::RunFolder folder(dir, options, [](const fs::path& path) {
        return ewe::Checkpoint::read(path, ewe::kSheepVaeFormat, ewe::kSheepVaeFormatVersion, "--resume");
    });
    ewe::SheepVae<float> vae(ctx, model_options, 4, 3);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, 4);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    ewe::VaeObjective<float> objective(vae, loss);
    ewe::Trainer<float> trainer(ctx, objective, optimizer, {.epochs = options.epochs, .batch_size = 4, .shuffle_seed = 5});
    ewe::Tensor<float> images(ewe::Shape{10, 8, 8, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = float((i * 37) % 11) / 10.0f;
    ewe::RunCallbacksOptions<float> callbacks;
    callbacks.kl_schedule = ewe::KlAnnealing<float>::linear(1, 1);
    callbacks.monitor = 0;
    callbacks.log = &log;
    callbacks.progress_bar = false;
    callbacks.metadata = [&](const ewe::TrainProgress&) { return ewe::sheep_vae_metadata(model_options); };
    folder.train<float>(trainer, vae, images.view(), callbacks);
    const ewe::Tensor<float> values = ewe::Tensor<float>::copy_of(vae.params().values(), ewe::Device::cpu);
    return std::vector<float>(values.data(), values.data() + values.numel());
}

TEST_CASE("RunFolder: a new run, a refused rerun, a resume equal to the straight run bit for bit, an overwrite") {
    const fs::path dir = temp_dir("run_folder"), straight = temp_dir("run_folder_straight");
    std::ostringstream log;
    ewe::RunFolderOptions options;
    options.log = &log;
    options.epochs = 2;
    const std::vector<float> two_epochs = train_in_folder(straight, options, log);
    options.epochs = 1;
    train_in_folder(dir, options, log);
    CHECK(ewe::checkpoint_epoch(ewe::run_checkpoint_path(dir)) == 1);
    CHECK(fs::exists(dir / "loss.svg"));

    // The folder holds a run: refused without resume or overwrite, naming its files.
    const std::string refused = ewe_test::error_of([&] { train_in_folder(dir, options, log); });
    CHECK(refused.find("--out: " + dir.string() + " already holds a run; pass --resume") != std::string::npos);
    CHECK(refused.find("checkpoint.safetensors after epoch 1") != std::string::npos);
    // Held by another RunFolder: refused at once.
    {
        const ewe::io::RunLock held(dir);
        CHECK(ewe_test::error_of([&] { train_in_folder(dir, options, log); }).find("is in use by process") !=
              std::string::npos);
    }

    // Resumed through epoch 2: the straight run's parameters, bit for bit.
    options.resume = true;
    options.epochs = 2;
    CHECK(train_in_folder(dir, options, log) == two_epochs);
    CHECK(ewe::checkpoint_epoch(ewe::run_checkpoint_path(dir)) == 2);
    // Through epoch 2 again: nothing to train; through epoch 1: refused.
    log.str("");
    const auto saved = fs::last_write_time(ewe::run_checkpoint_path(dir));
    train_in_folder(dir, options, log);
    CHECK(log.str().find("already holds epoch 2 of --epochs 2: nothing left to train") != std::string::npos);
    CHECK(fs::last_write_time(ewe::run_checkpoint_path(dir)) == saved);
    options.epochs = 1;
    CHECK(ewe_test::error_of([&] { train_in_folder(dir, options, log); }).find("--epochs 1 is the total to reach") !=
          std::string::npos);

    // Overwritten: the run's files go, a user's file stays, and a new run starts.
    std::ofstream(dir / "notes.txt") << "mine";
    options.resume = false;
    options.overwrite = true;
    log.str("");
    train_in_folder(dir, options, log);
    CHECK(log.str().find("deleted the files of the previous run") != std::string::npos);
    CHECK(ewe::checkpoint_epoch(ewe::run_checkpoint_path(dir)) == 1);
    CHECK(fs::exists(dir / "notes.txt"));
    fs::remove_all(dir);
    fs::remove_all(straight);
}
