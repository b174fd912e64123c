// Keras-style callbacks of ewe::Trainer: hooks at the start and end of training, of
// every epoch and of every batch whose metrics were read, and on SIGINT, each given
// the trainer (which a callback may ask to stop_training()). Built-ins live next to
// this file: KL annealing, progress bar, CSV and TensorBoard loggers, checkpoints and
// latent snapshots.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ewe/core/error.hpp"

namespace ewe {

template <class T>
class Trainer;

// Where a run stands: epochs completed and optimizer steps taken.
struct TrainProgress {
    std::int64_t epoch = 0;
    std::int64_t iterations = 0;
};

// Named values, in a fixed order: "loss", then each loss term's mean per sample, then
// the weight of every term after the first ("kl_weight").
struct Metrics {
    std::vector<std::pair<std::string, double>> values;

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& [key, v] : values) out.push_back(key);
        return out;
    }
    double operator[](const std::string& name) const {
        for (const auto& [key, v] : values)
            if (key == name) return v;
        fail("Metrics: no value named '", name, "'");
    }
};

struct BatchLogs {
    std::int64_t epoch = 0;  // 1-based
    std::int64_t step = 0;   // steps done in this epoch, 1-based
    std::int64_t steps = 0;  // steps per epoch
    Metrics running;         // means over the epoch's samples so far
};

struct EpochLogs {
    std::int64_t epoch = 0;       // 1-based
    std::int64_t iterations = 0;  // optimizer steps after it
    double seconds = 0;
    Metrics mean;  // means over the epoch's samples
};

template <class T>
class Callback {
public:
    virtual ~Callback() = default;
    virtual void on_train_begin(Trainer<T>&) {}
    virtual void on_epoch_begin(Trainer<T>&, std::int64_t /*epoch*/) {}
    // After every step whose metrics were read (FitOptions::metrics_every) and the last
    // of each epoch.
    virtual void on_batch_end(Trainer<T>&, const BatchLogs&) {}
    virtual void on_epoch_end(Trainer<T>&, const EpochLogs&) {}
    // A callback that measures something per epoch names its values here (they follow
    // the trainer's own in every EpochLogs) and appends them, in that order, when asked:
    // after each epoch, before any callback's on_epoch_end.
    virtual std::vector<std::string> epoch_metric_names(Trainer<T>&) { return {}; }
    virtual void add_epoch_metrics(Trainer<T>&, EpochLogs&) {}
    // SIGINT arrived: `now` is the position after the step that just finished, part way
    // through epoch now.epoch + 1. fit() returns after these calls.
    virtual void on_interrupt(Trainer<T>&, const TrainProgress& /*now*/) {}
    virtual void on_train_end(Trainer<T>&) {}

    // In data-parallel training (FitOptions::communicator), true: only rank 0 runs this
    // callback (it writes files or to the terminal, or measures for them); false: every
    // rank does (it changes the training, as KL annealing does). Every rank sees the same
    // logs. A root-only callback must not stop_training().
    virtual bool root_only() const { return false; }
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::Callback<float>;
#endif
