// ModelCheckpoint: saves the model's parameters and the optimizer's state (ewe/io/
// checkpoint.hpp) every `every` epochs to `path`, optionally the best epoch so far by a
// metric (lower is better) to `best_path`, and on SIGINT the weights of that moment
// to `interrupted_path`. Each file's metadata is the caller's (format, model options)
// plus everything Trainer::resume needs to continue the run exactly
// (Trainer::resume_metadata: position, optimizer kind and settings, the model's seed,
// batch and shuffle settings). Saves are atomic.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "ewe/io/checkpoint.hpp"
#include "ewe/train/callback.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

struct ModelCheckpointOptions {
    // Every member has a default, so ModelCheckpointOptions{path} compiles without
    // -Wmissing-field-initializers (-Wextra) warnings.
    std::filesystem::path path{};              // written after every `every` epochs
    std::int64_t every = 1;
    std::filesystem::path best_path{};         // empty: no best-epoch file
    std::string monitor = "loss";              // the metric best_path minimizes
    std::filesystem::path interrupted_path{};  // empty: nothing is saved on SIGINT
};

template <class T>
class ModelCheckpoint final : public Callback<T> {
public:
    bool root_only() const override { return true; }  // writes files
    using MetadataFn = std::function<CheckpointMetadata(const TrainProgress&)>;

    ModelCheckpoint(ModelCheckpointOptions options, MetadataFn metadata)
        : options_(std::move(options)), metadata_(std::move(metadata)) {
        EWE_REQUIRE(!options_.path.empty(), "ModelCheckpoint: path is empty");
        EWE_REQUIRE(options_.every >= 1, "ModelCheckpoint: every must be >= 1, found ", options_.every);
        EWE_REQUIRE(metadata_ != nullptr, "ModelCheckpoint: the metadata function is empty");
    }

    // The same metadata as the files get, for a caller that saves at other times.
    CheckpointMetadata metadata(Trainer<T>& trainer, const TrainProgress& at) const {
        CheckpointMetadata m = metadata_(at);
        for (auto& [key, value] : trainer.resume_metadata(at)) m[key] = value;
        return m;
    }

    void on_train_begin(Trainer<T>&) override {
        best_ = std::numeric_limits<double>::infinity();
        if (options_.best_path.empty() || !std::filesystem::exists(options_.best_path)) return;
        const io::SafetensorsFile previous = io::read_safetensors(options_.best_path);
        const auto it = previous.metadata.find("best." + options_.monitor);
        if (it != previous.metadata.end()) best_ = std::strtod(it->second.c_str(), nullptr);
    }

    void on_epoch_end(Trainer<T>& trainer, const EpochLogs& logs) override {
        const TrainProgress at{logs.epoch, logs.iterations};
        if (logs.epoch % options_.every == 0) save(trainer, options_.path, metadata(trainer, at));
        if (!options_.best_path.empty()) {
            const double value = logs.mean[options_.monitor];
            if (value < best_) {
                best_ = value;
                CheckpointMetadata m = metadata(trainer, at);
                m["best." + options_.monitor] = metadata_number(value);
                save(trainer, options_.best_path, m);
            }
        }
    }

    void on_interrupt(Trainer<T>& trainer, const TrainProgress& now) override {
        if (!options_.interrupted_path.empty()) save(trainer, options_.interrupted_path, metadata(trainer, now));
    }

private:
    static void save(Trainer<T>& trainer, const std::filesystem::path& path, const CheckpointMetadata& m) {
        save_checkpoint<T>(path, trainer.objective().params(), &trainer.optimizer(), m);
    }

    ModelCheckpointOptions options_;
    MetadataFn metadata_;
    double best_ = std::numeric_limits<double>::infinity();
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::ModelCheckpoint<float>;
#endif
