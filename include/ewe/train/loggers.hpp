// Epoch loggers: CsvLogger (Keras' CSVLogger: one row per epoch of epoch, step, every
// metric and seconds; a resumed run keeps the rows of the epochs it continues from; the
// file is rewritten whole and atomically after each epoch, so it never holds half a row)
// and TensorBoardLogger (scalars "epoch/<metric>" and "epoch/seconds" in an events
// file that TensorBoard reads).
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ewe/io/csv.hpp"
#include "ewe/io/tensorboard.hpp"
#include "ewe/train/callback.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

inline double wall_clock_seconds() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

template <class T>
class CsvLogger final : public Callback<T> {
public:
    bool root_only() const override { return true; }  // writes a file
    explicit CsvLogger(std::filesystem::path path) : path_(std::move(path)) {}

    void on_train_begin(Trainer<T>& trainer) override {
        const std::int64_t done = trainer.progress().epoch;
        std::vector<std::string> header{"epoch", "step"};
        for (const std::string& name : trainer.metric_names()) header.push_back(name);
        header.push_back("seconds");
        std::vector<std::vector<std::string>> kept;
        if (done > 0 && std::filesystem::exists(path_))
            for (auto& row : io::read_csv(path_))
                if (!row.empty() && row[0] != "epoch" && std::atoll(row[0].c_str()) <= done) kept.push_back(row);
        rows_ = {header};
        rows_.insert(rows_.end(), kept.begin(), kept.end());
        io::write_csv(path_, rows_);
    }

    void on_epoch_end(Trainer<T>&, const EpochLogs& logs) override {
        std::vector<std::string> row{std::to_string(logs.epoch), std::to_string(logs.iterations)};
        for (const auto& [name, value] : logs.mean.values) row.push_back(io::csv_number(value));
        row.push_back(io::csv_number(logs.seconds));
        rows_.push_back(std::move(row));
        io::write_csv(path_, rows_);
    }

private:
    std::filesystem::path path_;
    std::vector<std::vector<std::string>> rows_;  // the file's rows, header first
};

template <class T>
class TensorBoardLogger final : public Callback<T> {
public:
    bool root_only() const override { return true; }  // writes files
    // `tags` renames metrics in the tag ("recon" -> "reconstruction"); others keep their name.
    explicit TensorBoardLogger(std::filesystem::path dir, std::map<std::string, std::string> tags = {})
        : dir_(std::move(dir)), tags_(std::move(tags)) {}

    void on_train_begin(Trainer<T>&) override { events_ = std::make_unique<io::EventWriter>(dir_, wall_clock_seconds()); }

    void on_epoch_end(Trainer<T>&, const EpochLogs& logs) override {
        const double t = wall_clock_seconds();
        for (const auto& [name, value] : logs.mean.values) {
            const auto it = tags_.find(name);
            events_->add_scalar("epoch/" + (it == tags_.end() ? name : it->second), value, logs.epoch, t);
        }
        events_->add_scalar("epoch/seconds", logs.seconds, logs.epoch, t);
    }

private:
    std::filesystem::path dir_;
    std::map<std::string, std::string> tags_;
    std::unique_ptr<io::EventWriter> events_;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::CsvLogger<float>;
extern template class ewe::TensorBoardLogger<float>;
#endif
