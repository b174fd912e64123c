// Keras' verbose=1 progress output: ProgressLine draws
// " 37/125 [=========>....................] - ETA: 12s - 96ms/step - loss: ..."; the
// ProgressBar callback prints "Epoch 3/30" and one such line per epoch. On a terminal
// (redraw = true) the line is redrawn in place at most ten times a second; otherwise
// only the final line is written.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <memory>
#include <string>

#include "ewe/train/callback.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

inline std::string format_duration(double s) {
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", int(s / 3600), int(s / 60) % 60, int(s) % 60);
    else if (s >= 60) std::snprintf(buf, sizeof buf, "%d:%02d", int(s / 60), int(s) % 60);
    else std::snprintf(buf, sizeof buf, "%ds", int(s));
    return buf;
}

// One Keras-style progress line for `total` units of work, on `out`.
class ProgressLine {
public:
    ProgressLine(std::ostream& out, bool redraw, std::int64_t total)
        : out_(out), redraw_(redraw), total_(std::max<std::int64_t>(total, 1)), start_(now()) {}

    void update(std::int64_t done, const std::string& metrics = {}) {
        const double t = now();
        const bool last = done >= total_;
        if (!last && (!redraw_ || t - last_draw_ < 0.1)) return;
        last_draw_ = t;
        const double elapsed = t - start_, per = done > 0 ? elapsed / double(done) : 0.0;
        const int width = 30, filled = int(width * double(done) / double(total_));
        std::string bar(std::size_t(width), '.');
        for (int i = 0; i < filled; ++i) bar[std::size_t(i)] = '=';
        if (filled < width && filled > 0) bar[std::size_t(filled)] = '>';
        const std::string total = std::to_string(total_), count = std::to_string(done);
        std::string line = std::string(total.size() - std::min(total.size(), count.size()), ' ') + count + "/" + total +
                           " [" + bar + "] - ";
        char tail[96];
        if (last) std::snprintf(tail, sizeof tail, "%s %.0fms/step", format_duration(elapsed).c_str(), per * 1e3);
        else
            std::snprintf(tail, sizeof tail, "ETA: %s - %.0fms/step",
                          format_duration(per * double(total_ - done)).c_str(), per * 1e3);
        line += tail;
        if (!metrics.empty()) line += " - " + metrics;
        out_ << (redraw_ ? "\r" : "") << line << (last ? "\n" : redraw_ ? "\033[K" : "") << std::flush;
    }

private:
    static double now() {
        using namespace std::chrono;
        return duration<double>(steady_clock::now().time_since_epoch()).count();
    }

    std::ostream& out_;
    bool redraw_;
    std::int64_t total_;
    double start_, last_draw_ = -1.0;
};

// The callback: "Epoch e/E", then a ProgressLine per epoch with the running metrics
// (weights left out).
template <class T>
class ProgressBar final : public Callback<T> {
public:
    bool root_only() const override { return true; }  // writes to the terminal
    ProgressBar(std::ostream& out, bool redraw) : out_(out), redraw_(redraw) {}

    void on_epoch_begin(Trainer<T>& trainer, std::int64_t epoch) override {
        out_ << "Epoch " << epoch << "/" << trainer.options().epochs << "\n" << std::flush;
        line_ = std::make_unique<ProgressLine>(out_, redraw_, trainer.steps_per_epoch());
    }

    // Values that callbacks added to the epoch (e.g. active units), on one more line.
    void on_epoch_end(Trainer<T>&, const EpochLogs& logs) override {
        std::string line;
        for (std::size_t i = own_metrics_; i < logs.mean.values.size(); ++i) {
            char v[96];
            std::snprintf(v, sizeof v, "%s%s: %.4g", line.empty() ? "" : " - ", logs.mean.values[i].first.c_str(),
                          logs.mean.values[i].second);
            line += v;
        }
        if (!line.empty()) out_ << "  " << line << "\n" << std::flush;
    }

    void on_batch_end(Trainer<T>&, const BatchLogs& logs) override {
        own_metrics_ = logs.running.values.size();
        std::string metrics;
        for (const auto& [name, value] : logs.running.values) {
            if (name.size() > 7 && name.compare(name.size() - 7, 7, "_weight") == 0) continue;
            char v[64];
            std::snprintf(v, sizeof v, "%s%s: %.4f", metrics.empty() ? "" : " - ", name.c_str(), value);
            metrics += v;
        }
        line_->update(logs.step, metrics);
    }

private:
    std::ostream& out_;
    bool redraw_;
    std::unique_ptr<ProgressLine> line_;
    std::size_t own_metrics_ = 0;  // the trainer's own values (those of every BatchLogs)
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::ProgressBar<float>;
#endif
