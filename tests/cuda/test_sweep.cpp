// `sheep_vae sweep --device cuda --concurrent 2` from host-compiled code (the CUDA
// backend module loaded as sheep_vae loads it): two models train at a time on one GPU,
// each with its own context and stream, the sweep measures and prints the speed-up
// over running them one after another, and its runs match a one-after-another sweep of
// the same seed on the GPU; SIGINT stops every concurrent run after its current step
// and --resume finishes the sweep.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ewe/data/procedural_sheep.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/npy.hpp>
#include <sheep_vae/sheep_vae.hpp>

#include "sheep_vae_run.hpp"

#include "parity_util.cuh"

namespace fs = std::filesystem;

namespace {

using sheep_test::contains;
using sheep_test::run;
using sheep_test::RunResult;

double cell(const std::vector<std::vector<std::string>>& t, std::size_t row, const std::string& name) {
    const auto it = std::find(t[0].begin(), t[0].end(), name);
    REQUIRE_MESSAGE(it != t[0].end(), name);
    return std::atof(t[row][std::size_t(it - t[0].begin())].c_str());
}

}  // namespace

TEST_CASE("sweep on CUDA: 2 models at a time, the measured speed-up, the same runs as one after another, Ctrl-C") {
    const fs::path dir = fs::temp_directory_path() / ("ewe_test_cuda_sweep_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path data = dir / "sheep.npy";
    const auto bytes = ewe::procedural_sheep(64, 3);
    ewe::io::write_npy<std::uint8_t>(data, bytes.data(), ewe::Shape{64, 784});
    const auto args = [&](const fs::path& out, int concurrent, int epochs) {
        return std::vector<std::string>{"sweep", "--device", "cuda", "--concurrent", std::to_string(concurrent),
                                        "--data", data.string(), "--epochs", std::to_string(epochs), "--batch", "16",
                                        "--latent", "2,3", "--width", "0.5,1", "--snapshots", "", "--quiet",
                                        "--timing-steps", "10", "--out", out.string()};
    };
    const RunResult together = run(args(dir / "together", 2, 2));
    REQUIRE_MESSAGE(together.rc == 0, together.err);
    CHECK(contains(together.err, "Timing: one after another"));
    CHECK(contains(together.err, "Training 4 configurations, 2 at a time on one GPU"));
    CHECK(contains(together.out, "concurrent: 2 at a time on one GPU"));
    CHECK(contains(together.out, "speed-up"));
    const RunResult alone = run(args(dir / "alone", 1, 2));
    REQUIRE_MESSAGE(alone.rc == 0, alone.err);
    const auto a = ewe::io::read_csv(dir / "together" / "sweep.csv"), b = ewe::io::read_csv(dir / "alone" / "sweep.csv");
    REQUIRE(a.size() == 5);
    REQUIRE(b.size() == 5);
    for (std::size_t row = 1; row < 5; ++row) {
        INFO("run ", a[row][0]);
        CHECK(a[row][0] == b[row][0]);
        CHECK(fs::exists(dir / "together" / a[row][0] / "train.log"));
        CHECK(cell(a, row, "epochs") == 2);
        CHECK(cell(a, row, "parameters") == cell(b, row, "parameters"));
        // Same seed, same data, separate streams: the same training up to float
        // reassociation in cuDNN's and cuBLAS's algorithms.
        for (const char* metric : {"loss", "reconstruction_sse"})
            CHECK_MESSAGE(std::fabs(cell(a, row, metric) - cell(b, row, metric)) <= 1e-2 * std::fabs(cell(b, row, metric)),
                          metric);
    }

    // SIGINT once a run has saved its first epoch: every run stops after its current step.
    struct sigaction before {};
    ::sigaction(SIGINT, nullptr, &before);
    std::atomic<bool> done{false};
    const fs::path first = dir / "stopped" / "latent2_width0.5" / "checkpoint.safetensors";
    std::thread sender([&] {
        while (!done.load()) {
            struct sigaction current {};
            ::sigaction(SIGINT, nullptr, &current);
            if (fs::exists(first) && current.sa_handler != before.sa_handler) {
                std::raise(SIGINT);
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    const RunResult stopped = run(args(dir / "stopped", 2, 20));
    done.store(true);
    sender.join();
    REQUIRE_MESSAGE(stopped.rc == 130, stopped.err);
    CHECK(contains(stopped.err, "--resume continues the sweep"));
    struct sigaction after {};
    ::sigaction(SIGINT, nullptr, &after);
    CHECK((after.sa_handler == before.sa_handler));
    const ewe::VaeRunCheckpoint partial = sheep::read_checkpoint(first);
    CHECK(partial.progress.epoch >= 1);
    CHECK(partial.progress.epoch < 20);
    // The same --epochs: a resume with fewer would mix runs of two lengths, and is refused.
    std::vector<std::string> resume = args(dir / "stopped", 2, 20);
    resume.push_back("--resume");
    const RunResult resumed = run(resume);
    REQUIRE_MESSAGE(resumed.rc == 0, resumed.err);
    const auto c = ewe::io::read_csv(dir / "stopped" / "sweep.csv");
    REQUIRE(c.size() == 5);
    for (std::size_t row = 1; row < 5; ++row) CHECK(cell(c, row, "epochs") == 20);
    fs::remove_all(dir);
}

EWE_CUDA_TEST_MAIN
