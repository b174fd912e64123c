// Data-parallel training speed of the sheep VAE (12,857,845 parameters) through
// ewe::Trainer: steps per second at one global batch, over however many ranks mpirun
// starts (or one process without MPI), and the time of the one all-reduce per step on
// the flat gradient buffer (12,857,495 trainable floats, 51.4 MB), with the bandwidth
// it reaches (bus bandwidth as nccl-tests counts it: 2 (n-1)/n * bytes / time).
// bench/mpi/run.sh runs the comparisons in one go.
// Usage: bench_data_parallel [--mpi] [--steps N] [--batch GLOBAL]
#include <ewe/dist/mpi.hpp>
#include <ewe/ewe.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace ewe;

namespace {

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds of each step after the first `warmup`, from consecutive on_batch_end calls.
struct StepTimer final : Callback<float> {
    std::int64_t warmup;
    std::vector<double> ends;
    explicit StepTimer(std::int64_t w) : warmup(w) {}
    void on_batch_end(Trainer<float>&, const BatchLogs&) override { ends.push_back(now()); }
    double steps_per_second() const {
        const std::size_t first = std::size_t(warmup);
        if (ends.size() <= first + 1) return 0;
        return double(ends.size() - 1 - first) / (ends.back() - ends[first]);
    }
};

// Uniform noise in [0, 1): a step costs the same on any bitmaps.
Tensor<float> images(std::int64_t n) {
    Tensor<float> out(Shape{n, 28, 28, 1});
    for (std::int64_t i = 0; i < out.numel(); ++i)
        out[i] = float(philox_bits(PhiloxKey{1, 2, 3}, std::uint64_t(i)) >> 8) / 16777216.0f;
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    bool use_mpi = false;
    std::int64_t steps = 20, batch = 16;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--mpi")) use_mpi = true;
        else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoll(argv[++i]);
        else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoll(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_data_parallel [--mpi] [--steps N] [--batch GLOBAL]\n");
            return 2;
        }
    }
    try {
        std::optional<MpiSession> session;
        std::optional<MpiCommunicator> comm;
        if (use_mpi) {
            session.emplace(&argc, &argv);
            comm.emplace();
        }
        const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
        const std::int64_t warmup = 3;
        const Tensor<float> data = images(batch * (steps + warmup));
        Context ctx;
        SheepVae<float> vae(ctx, SheepVaeOptions{}, (batch + ranks - 1) / ranks, 42);
        VaeLoss<float> loss(ctx, VaeLossOptions{}, vae.max_batch());
        Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
        VaeObjective<float> objective(vae, loss);
        FitOptions options;
        options.batch_size = batch;
        options.communicator = comm ? &*comm : nullptr;
        options.handle_sigint = false;
        Trainer<float> trainer(ctx, objective, optimizer, options);
        auto timer = std::make_shared<StepTimer>(warmup);
        trainer.add(timer);
        trainer.fit(data.view());
        const double per_second = timer->steps_per_second();
        if (rank == 0)
            std::printf("%s, %d rank%s x %d thread%s, global batch %lld: %.3f steps/s (%.1f ms/step, %lld timed steps)\n",
                        comm ? "MPI" : "one process", ranks, ranks > 1 ? "s" : "", cpu::thread_count(ctx),
                        cpu::thread_count(ctx) > 1 ? "s" : "", (long long)batch, per_second, 1e3 / per_second, (long long)steps - 1);
        if (comm && ranks > 1) {
            const TensorView<float> grads = vae.params().grads();
            const double bytes = double(grads.numel()) * sizeof(float);
            std::vector<double> seconds;
            for (int rep = 0; rep < 10; ++rep) {
                comm->barrier();
                const double t0 = now();
                comm->all_reduce(grads, 1.0 / ranks);
                seconds.push_back(now() - t0);
            }
            std::sort(seconds.begin(), seconds.end());
            const double median = seconds[seconds.size() / 2];
            if (rank == 0)
                std::printf("all_reduce of the gradient buffer (%lld floats, %.1f MB), %d ranks: median %.1f ms, "
                            "min %.1f ms of 10; bus bandwidth %.2f GB/s\n",
                            (long long)grads.numel(), bytes / 1e6, ranks, median * 1e3, seconds.front() * 1e3,
                            2.0 * (ranks - 1) / ranks * bytes / median / 1e9);
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "bench_data_parallel: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
