// Data-parallel training over MPI against one process (tests/dist/run.sh runs it under
// mpirun -np 2, one OpenMP thread per rank). Modes:
//   match DIR    2 ranks train a small VAE (convolutions, dense layers, dropout, sampling;
//                no batch norm, whose statistics are per rank by design) with global batch
//                16 on 69 images (the last step of an epoch splits 5 rows 2 + 3); rank 0
//                then trains the same model in one process with batch 16 and compares
//                the loss after every step and the final weights, in float and in double.
//                The ranks' weights must be bit for bit the same.
//   die DIR      2 ranks, a checkpoint per epoch by rank 0; rank 1 kills itself (SIGKILL)
//                in epoch 2. mpirun must end rank 0 (run.sh checks how, and how fast).
//   check DIR    one process: DIR's checkpoint is intact and says epoch 1.
//   resume DIR   2 ranks resume from DIR's checkpoint through epoch 3; rank 0 compares
//                with one process resumed from the same file.
//   stall DIR    2 ranks, a 3 s collective timeout; rank 1 sleeps 60 s in a step: rank 0
//                must fail with the timeout error (run.sh checks the message and time).
// Tolerances, and why: the two runs add the same per-sample gradients in another order
// (one process sums 16 rows inside its GEMMs; ranks sum 8 rows each, then add the two
// halves, each weighted by its share), so the gradients differ by float rounding and
// Adam carries the difference on. The losses are summed in double from per-sample
// values, so they differ only through the weights. Measured over 10 steps: 2.5e-12
// (float) and 1.4e-16 (double) relative in the losses, 7e-8 (float) and 2e-16 (double)
// absolute in the weights (which are O(0.1)); resumed from epoch 1 (float), 2.5e-9 and
// 2.2e-8. The tolerances leave room for other compilers and CPUs: 1e-7 (float) and
// 1e-13 (double) for the losses, 1e-6 and 1e-14 for the weights. Checked to fail: noise
// drawn by local instead of global row moves the losses by 3.8e-4 relative and the
// weights by 1.4e-2; shards weighted equally (the last step splits 2 + 3), by 2.6e-6
// and 3.4e-3.
#include <ewe/dist/mpi.hpp>
#include <ewe/ewe.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace ewe;

namespace {

constexpr std::int64_t kImages = 69, kGlobalBatch = 16;
const CheckpointMetadata kFormat{{"format", "ewe.test_data_parallel"}, {"format_version", "1"}};

template <class T>
VaeOptions<T> small_vae() {
    auto encoder = std::make_shared<Sequential<T>>("encoder");
    encoder->template add<Conv2D>(ConvOptions{8, 4, 2, Padding::same, Activation::relu});   // 14x14x8
    encoder->template add<Conv2D>(ConvOptions{16, 4, 2, Padding::same, Activation::relu});  // 7x7x16
    encoder->template add<Flatten>();
    encoder->template add<Dense>(32, Activation::relu);
    encoder->template add<Dropout>(0.2);
    auto decoder = std::make_shared<Sequential<T>>("decoder");
    decoder->template add<Dense>(32, Activation::relu);
    decoder->template add<Dropout>(0.2);
    decoder->template add<Dense>(7 * 7 * 16, Activation::relu);
    decoder->template add<Reshape>(Shape{7, 7, 16});
    decoder->template add<Conv2DTranspose>(ConvOptions{8, 4, 2, Padding::same, Activation::relu});
    decoder->template add<Conv2DTranspose>(ConvOptions{1, 4, 2, Padding::same, Activation::sigmoid});
    return VaeOptions<T>{Shape{28, 28, 1}, encoder, 2, decoder};
}

// Rings of different sizes and places: a deterministic stand-in for drawings.
template <class T>
Tensor<T> rings() {
    Tensor<T> images(Shape{kImages, 28, 28, 1});
    for (std::int64_t i = 0; i < kImages; ++i)
        for (std::int64_t p = 0; p < 28 * 28; ++p) {
            const double r = std::hypot(double(p / 28) - 10 - i % 7, double(p % 28) - 9 - i % 11);
            images[i * 784 + p] = T(std::abs(r - 3 - i % 5) < 1.5 ? 1 : 0);
        }
    return images;
}

// The running loss after every step, as the trainer's logs give it.
template <class T>
struct LossLog final : Callback<T> {
    std::vector<double> losses;
    void on_batch_end(Trainer<T>&, const BatchLogs& logs) override { losses.push_back(logs.running["loss"]); }
};

// Calls `act` on the given rank after the given step of the given epoch.
template <class T>
struct At final : Callback<T> {
    int rank;
    std::int64_t epoch, step;
    std::function<void()> act;
    At(int r, std::int64_t e, std::int64_t s, std::function<void()> a) : rank(r), epoch(e), step(s), act(std::move(a)) {}
    void on_batch_end(Trainer<T>& trainer, const BatchLogs& logs) override {
        if (trainer.rank() == rank && logs.epoch == epoch && logs.step == step) act();
    }
};

template <class T>
std::vector<double> values_of(const ParameterStore<T>& params) {
    const TensorView<const T> v = params.values();
    return std::vector<double>(v.data(), v.data() + v.numel());
}

struct Run {
    std::vector<double> losses, weights;
};

// Trains a fresh model (seed 7) on the rings with Adam, global batch 16, from `resume`
// (a checkpoint) when given, over `comm` when given.
template <class T>
Run train(Communicator* comm, std::int64_t epochs, const fs::path& checkpoint = {}, const fs::path& resume = {},
          std::vector<std::shared_ptr<Callback<T>>> extra = {}) {
    const Tensor<T> images = rings<T>();
    Context ctx;
    const std::int64_t ranks = comm ? comm->size() : 1;
    Vae<T> vae(ctx, small_vae<T>(), (kGlobalBatch + ranks - 1) / ranks, 7);
    VaeLoss<T> loss(ctx, VaeLossOptions{}, vae.max_batch());
    Adam<T> optimizer(ctx, vae.params(), {.lr = 1e-3});
    TrainProgress start;
    if (!resume.empty()) {
        const Checkpoint c = Checkpoint::read(resume, kFormat.at("format"), kFormat.at("format_version"));
        start = read_progress(c);
        c.load_parameters(vae.params());
        c.load_optimizer(optimizer, start.iterations, 1e-3);
    }
    VaeObjective<T> objective(vae, loss);
    FitOptions options;
    options.epochs = epochs;
    options.batch_size = kGlobalBatch;
    options.shuffle_seed = 5;
    options.handle_sigint = false;
    options.communicator = comm;
    Trainer<T> trainer(ctx, objective, optimizer, options);
    auto log = std::make_shared<LossLog<T>>();
    trainer.add(log);
    if (!checkpoint.empty()) {
        ModelCheckpointOptions saving;
        saving.path = checkpoint;
        trainer.add(std::make_shared<ModelCheckpoint<T>>(saving, [](const TrainProgress&) { return kFormat; }));
    }
    for (auto& c : extra) trainer.add(c);
    trainer.fit(images.view(), start);
    return Run{log->losses, values_of(vae.params())};
}

int failures = 0;
void expect(bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
    std::fflush(stdout);
    if (!ok) ++failures;
}

// The largest relative difference of the losses and absolute difference of the weights.
void compare(const char* type, const Run& ranks, const Run& one, double loss_tolerance, double weight_tolerance) {
    double loss_diff = 0, weight_diff = 0;
    const bool same_steps = ranks.losses.size() == one.losses.size() && !one.losses.empty();
    for (std::size_t s = 0; same_steps && s < one.losses.size(); ++s)
        loss_diff = std::max(loss_diff, std::abs(ranks.losses[s] - one.losses[s]) / std::abs(one.losses[s]));
    for (std::size_t i = 0; i < one.weights.size(); ++i)
        weight_diff = std::max(weight_diff, std::abs(ranks.weights[i] - one.weights[i]));
    expect(same_steps, std::string(type) + ": " + std::to_string(one.losses.size()) + " steps logged by both");
    char line[256];
    std::snprintf(line, sizeof line, "%s: loss after each step, largest relative difference %.3g (tolerance %.0e); "
                  "first loss %.6f vs %.6f", type, loss_diff, loss_tolerance, ranks.losses.front(), one.losses.front());
    expect(loss_diff <= loss_tolerance, line);
    std::snprintf(line, sizeof line, "%s: %zu final weights, largest absolute difference %.3g (tolerance %.0e)", type,
                  one.weights.size(), weight_diff, weight_tolerance);
    expect(weight_diff <= weight_tolerance && ranks.weights.size() == one.weights.size(), line);
}

// Every rank holds rank 0's weights, bit for bit.
void expect_same_on_every_rank(Communicator& comm, const Run& run) {
    Tensor<double> root(Shape{std::int64_t(run.weights.size())});
    std::copy(run.weights.begin(), run.weights.end(), root.data());
    comm.broadcast(root.view(), 0);
    Tensor<double> differing(Shape{1});
    differing[0] = 0;
    for (std::size_t i = 0; i < run.weights.size(); ++i) differing[0] += root[std::int64_t(i)] != run.weights[i];
    comm.all_reduce(differing.view(), 1.0);
    if (comm.rank() == 0) expect(differing[0] == 0, "every rank ends with rank 0's weights bit for bit");
}

template <class T>
void match(MpiCommunicator& comm, const char* type, double loss_tolerance, double weight_tolerance) {
    const Run ranks = train<T>(&comm, 2);
    expect_same_on_every_rank(comm, ranks);
    if (comm.rank() == 0) compare(type, ranks, train<T>(nullptr, 2), loss_tolerance, weight_tolerance);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: test_data_parallel match|die|check|resume|stall DIR\n");
        return 2;
    }
    const std::string mode = argv[1];
    const fs::path dir = argv[2], checkpoint = dir / "checkpoint.safetensors";
    try {
        if (mode == "check") {  // one process, no MPI
            const Checkpoint c = Checkpoint::read(checkpoint, kFormat.at("format"), kFormat.at("format_version"));
            Context ctx;
            Vae<float> vae(ctx, small_vae<float>(), 8, 7);
            c.load_parameters(vae.params());
            const std::vector<double> w = values_of(vae.params());
            expect(read_progress(c).epoch == 1, "the checkpoint left by the dead run says epoch " +
                                                    std::to_string(read_progress(c).epoch) + " (expected 1)");
            expect(std::all_of(w.begin(), w.end(), [](double v) { return std::isfinite(v); }),
                   "its " + std::to_string(w.size()) + " weights load and are finite");
            return failures == 0 ? 0 : 1;
        }
        MpiSession session(&argc, &argv);
        MpiOptions options;
        if (mode == "stall") options.timeout_seconds = 3;
        MpiCommunicator comm(options);
        if (comm.size() != 2) fail("run under mpirun -np 2, not ", comm.size(), " ranks");
        if (mode == "match") {
            match<float>(comm, "float", 1e-7, 1e-6);
            match<double>(comm, "double", 1e-13, 1e-14);
        } else if (mode == "die") {
            fs::create_directories(dir);
            train<float>(&comm, 3, checkpoint, {}, {std::make_shared<At<float>>(1, 2, 2, [] { std::raise(SIGKILL); })});
            std::printf("FAILED: training went on after rank 1 died\n");
            return 1;
        } else if (mode == "resume") {
            const Run ranks = train<float>(&comm, 3, {}, checkpoint);
            expect_same_on_every_rank(comm, ranks);
            if (comm.rank() == 0)
                compare("resumed from epoch 1", ranks, train<float>(nullptr, 3, {}, checkpoint), 1e-7, 1e-6);
        } else if (mode == "stall") {
            train<float>(&comm, 1, {}, {}, {std::make_shared<At<float>>(1, 1, 2, [] {
                             std::this_thread::sleep_for(std::chrono::seconds(60));
                         })});
            std::printf("FAILED: rank %d finished although rank 1 stalled\n", comm.rank());
            return 1;
        } else {
            fail("unknown mode '", mode, "'");
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "test_data_parallel %s: error: %s\n", mode.c_str(), e.what());
        return 1;
    }
    return failures == 0 ? 0 : 1;
}
