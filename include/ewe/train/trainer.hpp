// ewe::Trainer: Keras' fit() for any TrainingObjective. Each epoch visits the data in
// an order drawn from Philox(shuffle_seed, epoch), so any epoch's order is known
// without replaying earlier ones; random draws of step s use Philox offset s of the
// model's seed. A checkpoint carries what continuing needs (resume_metadata(): the
// position, the optimizer's kind, settings and state, the model's seed, the batch and
// shuffle settings), and resume(checkpoint) restores it in one call, refusing a
// checkpoint that does not fit (CheckpointMismatch), so the next fit() continues bit
// for bit whatever seed the fresh model was built with. The
// data set is copied to the context's device once; batches are gathered there. The
// loss terms are read back to the host every `metrics_every` steps (on CUDA each read
// is a device sync; full-batch steps are replayed as a CUDA graph, ewe/core/
// step_replay.hpp), summed in double, and checked: a non-finite loss stops training
// with LossDiverged naming the epoch, the step and the first layer output holding a NaN
// or Inf. A stop request (FitOptions::stop, ewe/train/interrupt.hpp; Ctrl-C requests
// one while fit() runs unless handle_sigint is false) finishes the current step, calls
// every callback's on_interrupt and returns (FitResult::interrupted).
//
// Data-parallel training (FitOptions::communicator, ewe/dist/communicator.hpp): every
// rank runs fit() on the whole data set with the same options. batch_size is the global
// batch: each step's rows, in the shared epoch order, are split into contiguous shards,
// rank r taking rows [r*m/R, (r+1)*m/R) of a step of m rows, and draws the dropout and
// sampling noise of those global rows (RandomState::first_sample), so R ranks see the
// noise one process sees. The parameters and optimizer state are broadcast from rank 0
// when fit() starts; each step all-reduces the flat gradient buffer once, each shard
// weighted by its share of the batch, before the optimizer step, so the ranks stay
// identical. Batch-norm layers normalize with their own shard's statistics (as Keras'
// and PyTorch's data parallelism do by default); their moving statistics are rank 0's,
// broadcast at each epoch end. The per-sample losses are summed over ranks at each read,
// so every rank's logs are those of one process. Callbacks whose root_only() is true
// (files, the terminal) run on rank 0 only. A stop request is honoured at the next loss
// read, when the ranks agree on it. No CUDA graph replay with a communicator (yet).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ewe/core/context.hpp"
#include "ewe/core/error.hpp"
#include "ewe/core/philox.hpp"
#include "ewe/core/step_replay.hpp"
#include "ewe/dist/communicator.hpp"
#include "ewe/io/checkpoint.hpp"
#include "ewe/optim/optimizers.hpp"
#include "ewe/train/callback.hpp"
#include "ewe/train/interrupt.hpp"
#include "ewe/train/objective.hpp"

namespace ewe {

struct FitOptions {
    std::int64_t epochs = 1;          // train through this epoch (counting epochs already done)
    std::int64_t batch_size = 0;      // 0: the objective's max_batch
    bool shuffle = true;              // false: every epoch in data order
    std::uint64_t shuffle_seed = 0;   // Philox seed of the epoch orders
    std::int64_t metrics_every = 0;   // steps between loss read-backs; 0: 1 on the CPU, 50 on CUDA
    // fit() ends after the current step once a stop is requested (FitResult::interrupted);
    // with handle_sigint, Ctrl-C requests it while fit() runs (ewe::InterruptGuard, which
    // clears the token when fit() starts). A caller that handles Ctrl-C itself (one guard
    // for several trainers) passes its token and handle_sigint = false.
    StopToken stop{};
    bool handle_sigint = true;
    // CUDA: capture the full-batch step once and replay it as a CUDA graph
    // (ewe::StepReplay); a step that cannot be graphed runs eagerly, and on_graph_fallback
    // (default: one line on stderr) is told why, once. No effect on the CPU.
    bool cuda_graph = true;
    std::function<void(const std::string& reason)> on_graph_fallback = {};
    // Data-parallel training over this communicator (see the header comment); nullptr: one
    // process. With R ranks, batch_size is the global batch (default max_batch * R) and
    // each rank's model must hold ceil(batch_size / R) samples.
    Communicator* communicator = nullptr;
};

// Thrown by fit() when the loss of a step is not finite. what() is "fit: " + reason();
// reason() names the value, the epoch, the step and the first layer output holding a NaN
// or an Inf, for a caller that words its own message around it.
class EWE_VISIBLE LossDiverged : public Error {
public:
    LossDiverged(std::int64_t epoch, std::int64_t step, std::string reason)
        : Error("fit: " + reason), epoch_(epoch), step_(step), reason_(std::move(reason)) {}
    std::int64_t epoch() const { return epoch_; }
    std::int64_t step() const { return step_; }  // 1-based, within the epoch
    const std::string& reason() const { return reason_; }

private:
    std::int64_t epoch_, step_;
    std::string reason_;
};

struct FitResult {
    TrainProgress progress;    // where training stopped
    bool interrupted = false;  // by a stop request (Ctrl-C), part way through epoch progress.epoch + 1
    bool stopped = false;      // by a callback's stop_training()
    std::int64_t graph_launches = 0;  // steps run as a replayed CUDA graph
};

// The order of the n samples in epoch `epoch`: Fisher-Yates driven by Philox(seed,
// stream 0x53485546, offset epoch).
inline std::vector<std::int64_t> epoch_order(std::uint64_t seed, std::int64_t epoch, std::int64_t n) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    std::iota(order.begin(), order.end(), std::int64_t(0));
    const PhiloxKey key{seed, 0x53485546u, std::uint64_t(epoch)};
    for (std::int64_t i = n - 1; i > 0; --i) {
        const std::uint64_t bits = std::uint64_t(philox_bits(key, std::uint64_t(2 * i))) << 32 |
                                   philox_bits(key, std::uint64_t(2 * i + 1));
        const std::int64_t j = std::int64_t(bits % std::uint64_t(i + 1));
        std::swap(order[std::size_t(i)], order[std::size_t(j)]);
    }
    return order;
}

// The training position a checkpoint's metadata records ("epoch", "optimizer.iterations").
inline TrainProgress read_progress(const Checkpoint& c) {
    return TrainProgress{c.meta_int("epoch", 0, 1 << 30), c.meta_int("optimizer.iterations", 0, std::int64_t(1) << 62)};
}

// The optimizer's keys of a checkpoint's metadata: "epoch", "optimizer" (its kind),
// "optimizer.iterations", "optimizer.lr" and "optimizer.<setting>" for each of its
// hyperparameters(). Trainer::resume_metadata adds the model's and the fit's keys.
template <class T>
CheckpointMetadata training_metadata(const Optimizer<T>& optimizer, const TrainProgress& at) {
    CheckpointMetadata m{{"epoch", std::to_string(at.epoch)},
                         {"optimizer", optimizer.kind()},
                         {"optimizer.iterations", std::to_string(at.iterations)},
                         {"optimizer.lr", metadata_number(optimizer.learning_rate())}};
    for (const auto& [name, value] : optimizer.hyperparameters()) m["optimizer." + name] = metadata_number(value);
    return m;
}

template <class T>
class Trainer {
public:
    Trainer(Context& ctx, TrainingObjective<T>& objective, Optimizer<T>& optimizer, FitOptions options = {})
        : ctx_(ctx), objective_(objective), optimizer_(optimizer), options_(options), comm_(options.communicator) {
        const std::int64_t ranks = comm_ ? comm_->size() : 1;
        if (options_.batch_size == 0) options_.batch_size = objective.max_batch() * ranks;
        EWE_REQUIRE(options_.metrics_every >= 0, "Trainer: metrics_every must be >= 0 (0: every step on the CPU, ",
                    "every 50 on CUDA), found ", options_.metrics_every);
        if (options_.metrics_every == 0) options_.metrics_every = ctx.device() == Device::cpu ? 1 : 50;
        EWE_REQUIRE(options_.epochs >= 0, "Trainer: epochs must be >= 0, found ", options_.epochs);
        if (comm_) {
            EWE_REQUIRE(comm_->device() == ctx.device(), "Trainer: the ", comm_->kind(), " communicator reduces ",
                        to_string(comm_->device()), " buffers, but the context computes on ", to_string(ctx.device()));
            EWE_REQUIRE(options_.batch_size > 0 && options_.batch_size <= objective.max_batch() * ranks,
                        "Trainer: batch_size ", options_.batch_size, " (the global batch) must be in [1, ",
                        objective.max_batch() * ranks, "]: each of the ", ranks,
                        " ranks trains its share with a model of max_batch ", objective.max_batch());
        } else {
            EWE_REQUIRE(options_.batch_size > 0 && options_.batch_size <= objective.max_batch(), "Trainer: batch_size ",
                        options_.batch_size, " must be in [1, ", objective.max_batch(), "] (the model's max_batch)");
        }
        EWE_REQUIRE(&objective.params() == &optimizer.params(),
                    "Trainer: the optimizer updates another parameter store than the objective's");
    }
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // Adds a callback; they run in the order added.
    Trainer& add(std::shared_ptr<Callback<T>> callback) {
        EWE_REQUIRE(callback != nullptr, "Trainer::add: null callback");
        callbacks_.push_back(std::move(callback));
        return *this;
    }

    // Trains on `images` (n, features...: the objective's input shape), host or device,
    // through options.epochs, from the position `from` when given; else from the one
    // the last resume() restored (once; a data set of another size than the checkpoint's,
    // or a checkpoint saved part way through an epoch, is refused), else from the start.
    FitResult fit(TensorView<const T> images, std::optional<TrainProgress> from = std::nullopt) {
        const Shape sample = objective_.input_shape();
        EWE_REQUIRE(images.rank() >= 2 && images.shape().features() == sample && images.dim(0) > 0,
                    "Trainer::fit: images should be (n, ", sample.str().substr(1), " with n > 0, found ",
                    images.shape());
        const TrainProgress start = from ? *from : resumed_ ? resumed_->progress : TrainProgress{};
        if (!from && resumed_ && resumed_->samples > 0 && resumed_->samples != images.dim(0))
            throw CheckpointMismatch(detail::concat("Trainer::fit: ", resumed_->path, " was trained on ",
                                                    resumed_->samples, " samples, these images are ", images.dim(0),
                                                    " (resume with the same data set)"));
        const std::int64_t steps = (images.dim(0) + options_.batch_size - 1) / options_.batch_size;
        if (!from && resumed_ && start.iterations != start.epoch * steps)
            throw CheckpointMismatch(detail::concat(
                "Trainer::fit: ", resumed_->path, " was saved after ", start.iterations, " steps, not at the end of epoch ",
                start.epoch, " (", start.epoch * steps, " steps of ", images.dim(0), " samples in batches of ",
                options_.batch_size, "): a run stopped part way through an epoch, or another data set; resume from the "
                "checkpoint of its last finished epoch"));
        resumed_.reset();
        EWE_REQUIRE(start.epoch >= 0 && start.iterations >= 0, "Trainer::fit: a negative start position");
        const bool upload = images.device() != ctx_.device();
        if (upload) data_ = Tensor<T>::copy_of(images, ctx_.device());
        const TensorView<const T> data = upload ? TensorView<const T>(data_.view()) : images;
        const std::int64_t n = data.dim(0), b = options_.batch_size;
        const std::int64_t shard_capacity = (b + ranks() - 1) / ranks();  // rows of this rank's largest shard
        steps_per_epoch_ = (n + b - 1) / b;
        samples_ = n;
        progress_ = start;
        stop_requested_ = false;
        optimizer_.set_iterations(start.iterations);
        if (comm_) share_rank0_state();
        active_.clear();
        for (auto& c : callbacks_)
            if (is_root() || !c->root_only()) active_.push_back(c.get());

        Tensor<T> x(sample.with_batch(shard_capacity), ctx_.device());
        const std::vector<std::string> terms = objective_.term_names();
        const std::int64_t window = options_.metrics_every;
        std::vector<Tensor<T>> ring, ring_host;  // per term: (window, shard) per-sample values
        for (std::size_t k = 0; k < terms.size(); ++k) {
            ring.emplace_back(Shape{window, shard_capacity}, ctx_.device());
            ring_host.emplace_back(Shape{window, shard_capacity});
        }
        std::vector<Rows> window_rows;  // rows of each step in the current window

        StepReplayOptions replay_options;
        replay_options.enabled = options_.cuda_graph;
        replay_options.on_fallback = options_.on_graph_fallback;
        StepReplay replay(ctx_, replay_options);
        const auto step = [&](TensorView<const T> batch) {
            objective_.compute_gradients(ctx_, batch, std::uint64_t(optimizer_.iterations()), 0);
            optimizer_.step(ctx_);
        };
        // The epoch's order, as the gather's indices on the device (uploaded once an epoch).
        EWE_REQUIRE(n < std::numeric_limits<std::int32_t>::max(), "Trainer::fit: at most 2^31 - 2 samples, found ", n);
        std::vector<std::int64_t> order(static_cast<std::size_t>(n));  // data order unless shuffled
        std::iota(order.begin(), order.end(), std::int64_t(0));
        Tensor<std::int32_t> order_host(Shape{n}), order_indices(Shape{n}, ctx_.device());
        std::optional<InterruptGuard> sigint;
        if (options_.handle_sigint) sigint.emplace(options_.stop);
        for (Callback<T>* c : active_) c->on_train_begin(*this);
        FitResult result;
        for (std::int64_t epoch = start.epoch + 1; epoch <= options_.epochs && !stop_requested_; ++epoch) {
            for (Callback<T>* c : active_) c->on_epoch_begin(*this, epoch);
            if (options_.shuffle) order = epoch_order(options_.shuffle_seed, epoch, n);
            for (std::int64_t i = 0; i < n; ++i) order_host[i] = std::int32_t(order[std::size_t(i)]);
            copy<std::int32_t>(order_host.view(), order_indices.view());
            const double t0 = seconds_now();
            std::vector<double> term_sums(terms.size(), 0.0);
            std::int64_t seen = 0;
            window_rows.clear();
            for (std::int64_t s = 0; s < steps_per_epoch_; ++s) {
                const Rows rows = shard(std::min(b, n - s * b));
                if (rows.local > 0)
                    ops::gather_images<T>(ctx_, data, order_indices.view().slice(s * b + rows.first, Shape{rows.local}),
                                          1.0, x.view().leading(rows.local));
                if (comm_) data_parallel_step(x.view().leading(rows.local), rows);
                // Full batches replay one graph; a smaller last batch runs eagerly.
                else if (rows.global == b) replay.run([&] { step(x.view()); });
                else step(x.view().leading(rows.global));
                const std::size_t slot = window_rows.size();
                for (std::size_t k = 0; k < terms.size() && rows.local > 0; ++k)
                    ops::copy<T>(ctx_, objective_.per_sample_term(k, rows.local),
                                 ring[k].view().slice(std::int64_t(slot) * shard_capacity, Shape{rows.local}));
                window_rows.push_back(rows);
                progress_.iterations = optimizer_.iterations();
                const bool last = s + 1 == steps_per_epoch_;
                bool interrupt = false;
                if (std::int64_t(window_rows.size()) == window || last) {
                    interrupt = read_window(ring, ring_host, window_rows, terms.size(), shard_capacity, term_sums, epoch,
                                            s + 1 - std::int64_t(slot));
                    for (const Rows& done : window_rows) seen += done.global;
                    window_rows.clear();
                    BatchLogs logs{epoch, s + 1, steps_per_epoch_, metrics(term_sums, seen)};
                    for (Callback<T>* c : active_) c->on_batch_end(*this, logs);
                }
                // One process stops at the step the request arrived in (its callbacks
                // included); ranks agree on it at a read.
                if (!comm_) interrupt = options_.stop.stop_requested();
                if (interrupt) {
                    for (Callback<T>* c : active_) c->on_interrupt(*this, progress_);
                    result.interrupted = true;
                    interrupted_step_ = s + 1;
                    break;
                }
                if (stop_requested_) break;
            }
            if (result.interrupted) break;
            if (stop_requested_ && seen < n) break;  // stopped part way: the epoch is not complete
            progress_.epoch = epoch;
            if (comm_) share_rank0_statistics();
            EpochLogs logs{epoch, progress_.iterations, seconds_now() - t0, metrics(term_sums, double(n))};
            for (Callback<T>* c : active_) c->add_epoch_metrics(*this, logs);
            for (Callback<T>* c : active_) c->on_epoch_end(*this, logs);
        }
        for (Callback<T>* c : active_) c->on_train_end(*this);
        data_ = Tensor<T>();
        result.progress = progress_;
        result.stopped = stop_requested_;
        result.graph_launches = replay.launches();
        return result;
    }

    // What resume() needs, for a checkpoint's metadata (ModelCheckpoint adds it to every
    // file): "epoch", "optimizer" (its kind), "optimizer.iterations", "optimizer.lr",
    // "optimizer.<setting>" for each of its hyperparameters(), "random.seed" (the
    // model's), "fit.batch_size", "fit.shuffle", "fit.shuffle_seed" and, once fit() has
    // seen the data, "fit.samples".
    CheckpointMetadata resume_metadata(const TrainProgress& at) const {
        CheckpointMetadata m = training_metadata(optimizer_, at);
        m["random.seed"] = std::to_string(objective_.random().seed);
        m["fit.batch_size"] = std::to_string(options_.batch_size);
        m["fit.shuffle"] = options_.shuffle ? "true" : "false";
        m["fit.shuffle_seed"] = std::to_string(options_.shuffle_seed);
        if (samples_ > 0) m["fit.samples"] = std::to_string(samples_);
        return m;
    }

    // Continues the run `checkpoint` holds (its metadata from resume_metadata(), as
    // ModelCheckpoint writes it), in one call. Refuses, before changing anything, a
    // checkpoint that does not fit: CheckpointMismatch naming both sides for another
    // architecture (parameter names and shapes), another optimizer kind or setting (rho,
    // epsilon, betas, momentum...), another batch_size, shuffle or shuffle_seed; an
    // ewe::Error naming the key for a file without these keys (saved by hand, or by an
    // older ewe). Then loads the parameters and the optimizer's state, restores the
    // learning rate the run had reached (a schedule may have changed it), the model's
    // random seed (it replaces the seed the model was built with) and the position,
    // which it returns; the next fit() without a start continues from there bit for bit.
    TrainProgress resume(const Checkpoint& checkpoint) {
        const std::string& file = checkpoint.path();
        const auto require = [&](const std::string& key) {
            if (!checkpoint.file().metadata.count(key))
                fail("Trainer::resume: ", file, ": metadata has no '", key,
                     "' (not saved by ModelCheckpoint with resume_metadata(), or by an older ewe); load it with "
                     "Checkpoint::load_parameters and load_optimizer instead");
        };
        for (const char* key : {"epoch", "optimizer", "optimizer.iterations", "optimizer.lr", "random.seed",
                                "fit.batch_size", "fit.shuffle", "fit.shuffle_seed"})
            require(key);
        const auto refuse = [&](const std::string& what, const std::string& theirs, const std::string& ours) {
            throw CheckpointMismatch(detail::concat("Trainer::resume: ", file, " was trained with ", what, " ", theirs,
                                                    ", this trainer has ", ours));
        };
        checkpoint.check_architecture(objective_.params());
        if (checkpoint.meta("optimizer") != optimizer_.kind())
            refuse("the optimizer", checkpoint.meta("optimizer"), optimizer_.kind());
        for (const auto& [name, value] : optimizer_.hyperparameters()) require("optimizer." + name);
        for (const auto& [name, ours] : optimizer_.hyperparameters()) {
            const double theirs = checkpoint.meta_double("optimizer." + name, -1e300, 1e300);
            if (theirs != ours) refuse(std::string(optimizer_.kind()) + " " + name, format_number(theirs), format_number(ours));
        }
        const std::int64_t batch = checkpoint.meta_int("fit.batch_size", 1, std::int64_t(1) << 40);
        if (batch != options_.batch_size) refuse("batch_size", std::to_string(batch), std::to_string(options_.batch_size));
        const std::string shuffle = checkpoint.meta("fit.shuffle");
        if (shuffle != (options_.shuffle ? "true" : "false"))
            refuse("shuffle", shuffle, options_.shuffle ? "true" : "false");
        const std::uint64_t shuffle_seed = checkpoint.meta_uint64("fit.shuffle_seed");
        if (options_.shuffle && shuffle_seed != options_.shuffle_seed)
            refuse("shuffle_seed", std::to_string(shuffle_seed), std::to_string(options_.shuffle_seed));
        const std::uint64_t seed = checkpoint.meta_uint64("random.seed");
        const double lr = checkpoint.meta_double("optimizer.lr", 1e-300, 1e300);
        const TrainProgress at = read_progress(checkpoint);
        const std::int64_t samples =
            checkpoint.file().metadata.count("fit.samples") ? checkpoint.meta_int("fit.samples", 1, std::int64_t(1) << 50) : 0;

        checkpoint.load_parameters(objective_.params());
        checkpoint.load_optimizer(optimizer_, at.iterations, lr);
        objective_.random().seed = seed;
        resumed_ = Resumed{at, samples, file};
        progress_ = at;
        return at;
    }

    // Asks fit() to stop after the current step (a callback's way to end training). In
    // data-parallel training every rank must ask at the same step: decide from the logs,
    // which are the same on every rank, in a callback that is not root_only().
    void stop_training() { stop_requested_ = true; }

    Context& context() { return ctx_; }
    TrainingObjective<T>& objective() { return objective_; }
    Optimizer<T>& optimizer() { return optimizer_; }
    const FitOptions& options() const { return options_; }
    const TrainProgress& progress() const { return progress_; }
    std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
    std::int64_t samples() const { return samples_; }
    // The step (1-based, within its epoch) at which a stop request ended the last fit().
    std::int64_t interrupted_step() const { return interrupted_step_; }
    // This process' rank and the number of ranks (0 and 1 without a communicator); rank 0
    // is the root, which alone runs root_only() callbacks.
    int rank() const { return comm_ ? comm_->rank() : 0; }
    int ranks() const { return comm_ ? comm_->size() : 1; }
    bool is_root() const { return rank() == 0; }
    // Names of the values of every epoch's EpochLogs, in order: the trainer's own (also
    // those of every BatchLogs), then those its callbacks (on this rank) add.
    std::vector<std::string> metric_names() {
        std::vector<std::string> names = metrics({}, 1.0).names();
        for (auto& c : callbacks_)
            if (is_root() || !c->root_only())
                for (std::string& name : c->epoch_metric_names(*this)) names.push_back(std::move(name));
        return names;
    }

private:
    // The rows of one step: `global` in the step's batch, of which this rank trains
    // `local`, starting at row `first`.
    struct Rows {
        std::int64_t global = 0, first = 0, local = 0;
    };
    Rows shard(std::int64_t m) const {
        const std::int64_t r = rank(), R = ranks();
        const std::int64_t first = r * m / R;
        return Rows{m, first, (r + 1) * m / R - first};
    }

    // This rank's gradients of its shard, weighted by its share of the batch and summed
    // over ranks (one all-reduce of the flat buffer), then the optimizer step.
    void data_parallel_step(TensorView<const T> batch, const Rows& rows) {
        ParameterStore<T>& params = objective_.params();
        if (rows.local > 0)
            objective_.compute_gradients(ctx_, batch, std::uint64_t(optimizer_.iterations()), std::uint64_t(rows.first));
        else
            ops::fill<T>(ctx_, T(0), params.grads());
        comm_->all_reduce(params.grads(), double(rows.local) / double(rows.global));
        optimizer_.step(ctx_);
    }

    // Rank 0's parameters and optimizer state on every rank (when fit() starts).
    void share_rank0_state() {
        comm_->broadcast(objective_.params().values(), 0);
        for (auto& [name, state] : optimizer_.state()) comm_->broadcast(state, 0);
    }
    // Rank 0's non-trainable parameters (batch-norm moving statistics) on every rank.
    void share_rank0_statistics() {
        ParameterStore<T>& params = objective_.params();
        if (params.non_trainable_count() > 0)
            comm_->broadcast(params.values().slice(params.trainable_count(), Shape{params.non_trainable_count()}), 0);
    }

    static double seconds_now() {
        using namespace std::chrono;
        return duration<double>(steady_clock::now().time_since_epoch()).count();
    }

    // Means per sample of `term_sums` over `count` samples: "loss", each term, then
    // "<term>_weight" for every term after the first.
    Metrics metrics(const std::vector<double>& term_sums, double count) const {
        const std::vector<std::string> terms = objective_.term_names();
        Metrics m;
        double loss = 0;
        std::vector<std::pair<std::string, double>> parts;
        for (std::size_t k = 0; k < terms.size(); ++k) {
            const double mean = k < term_sums.size() && count > 0 ? term_sums[k] / count : 0.0;
            loss += objective_.term_weight(k) * mean;
            parts.emplace_back(terms[k], mean);
        }
        m.values.emplace_back("loss", loss);
        m.values.insert(m.values.end(), parts.begin(), parts.end());
        for (std::size_t k = 1; k < terms.size(); ++k) m.values.emplace_back(terms[k] + "_weight", objective_.term_weight(k));
        return m;
    }

    // Reads the window's per-sample terms back (one device sync), adds them to
    // term_sums in step order (summed over ranks first, in data-parallel training), and
    // fails at the first step whose loss is not finite. Returns whether to stop for
    // a stop request: this process got one, or, with ranks, any rank did.
    bool read_window(std::vector<Tensor<T>>& ring, std::vector<Tensor<T>>& ring_host, const std::vector<Rows>& rows,
                     std::size_t terms, std::int64_t b, std::vector<double>& term_sums, std::int64_t epoch,
                     std::int64_t first_step) {
        for (std::size_t k = 0; k < terms; ++k) copy<T>(ring[k].view(), ring_host[k].view());
        // Per step and term, the sum over this rank's rows; then the stop flag.
        Tensor<double> sums(Shape{std::int64_t(rows.size() * terms + 1)});
        double* step_sums = sums.data();
        for (std::size_t s = 0; s < rows.size(); ++s)
            for (std::size_t k = 0; k < terms; ++k) {
                const T* v = ring_host[k].data() + std::int64_t(s) * b;
                double sum = 0;
                for (std::int64_t r = 0; r < rows[s].local; ++r) sum += double(v[r]);
                step_sums[s * terms + k] = sum;
            }
        step_sums[rows.size() * terms] = options_.stop.stop_requested() ? 1.0 : 0.0;
        if (comm_) reduce_on_device(sums);
        for (std::size_t s = 0; s < rows.size(); ++s) {
            double loss = 0;
            for (std::size_t k = 0; k < terms; ++k)
                loss += objective_.term_weight(k) * step_sums[s * terms + k] / double(rows[s].global);
            if (!std::isfinite(loss)) {
                const std::int64_t step = first_step + std::int64_t(s), last = first_step + std::int64_t(rows.size()) - 1;
                throw LossDiverged(epoch, step, detail::concat(
                    "the loss became ", std::isnan(loss) ? "NaN" : loss > 0 ? "+inf" : "-inf", " at epoch ", epoch,
                    ", step ", step, "; first non-finite",
                    step == last ? "" : " (in the forward of step " + std::to_string(last) + ", when it was read)",
                    comm_ ? " on rank " + std::to_string(rank()) : std::string(), ": ",
                    objective_.first_nonfinite(rows.back().local)));
            }
            for (std::size_t k = 0; k < terms; ++k) term_sums[k] += step_sums[s * terms + k];
        }
        return step_sums[rows.size() * terms] > 0;
    }

    // Sums a host buffer over ranks through the communicator's device.
    void reduce_on_device(Tensor<double>& host) {
        if (comm_->device() == Device::cpu) return comm_->all_reduce(host.view(), 1.0);
        Tensor<double> device = Tensor<double>::copy_of(host.view(), comm_->device());
        comm_->all_reduce(device.view(), 1.0);
        copy<double>(device.view(), host.view());
    }

    Context& ctx_;
    TrainingObjective<T>& objective_;
    Optimizer<T>& optimizer_;
    FitOptions options_;
    Communicator* comm_;
    std::vector<std::shared_ptr<Callback<T>>> callbacks_;
    std::vector<Callback<T>*> active_;  // the callbacks this rank runs
    Tensor<T> data_;
    TrainProgress progress_;
    struct Resumed {
        TrainProgress progress;
        std::int64_t samples = 0;  // 0: the checkpoint does not say
        std::string path;
    };
    std::optional<Resumed> resumed_;  // what the last resume() restored, until a fit() starts
    std::int64_t steps_per_epoch_ = 0, samples_ = 0, interrupted_step_ = 0;
    bool stop_requested_ = false;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Trainer<float>;
#endif
