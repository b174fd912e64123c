// KlAnnealing: sets the weight of the "kl" loss term at the start of every epoch from
// a schedule. KlAnnealing::linear is the post's: 0 through epoch `start`, then rising
// linearly to 1 over `steep` epochs (steep 0: a step from 0 to 1 after `start`).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <ostream>
#include <utility>

#include "ewe/train/callback.hpp"
#include "ewe/train/trainer.hpp"

namespace ewe {

template <class T>
class KlAnnealing final : public Callback<T> {
public:
    using Schedule = std::function<double(std::int64_t epoch)>;  // epoch is 1-based

    // `log`, when given, gets a line "KL weight: w (epoch e)" whenever the weight changes.
    explicit KlAnnealing(Schedule schedule, std::ostream* log = nullptr) : schedule_(std::move(schedule)), log_(log) {
        EWE_REQUIRE(schedule_ != nullptr, "KlAnnealing: the schedule is empty");
    }

    static Schedule linear(double start, double steep) {
        EWE_REQUIRE(start >= 0 && steep >= 0, "KlAnnealing::linear: start and steep must be >= 0, found ", start,
                    " and ", steep);
        return [start, steep](std::int64_t e) {
            if (steep <= 0) return double(e) > start ? 1.0 : 0.0;
            return std::clamp((double(e) - start) / steep, 0.0, 1.0);
        };
    }

    void on_train_begin(Trainer<T>& trainer) override {
        const std::int64_t done = trainer.progress().epoch;
        previous_ = done > 0 ? schedule_(done) : -1.0;
    }
    void on_epoch_begin(Trainer<T>& trainer, std::int64_t epoch) override {
        const double w = schedule_(epoch);
        EWE_REQUIRE(w >= 0, "KlAnnealing: the schedule gave the weight ", w, " for epoch ", epoch, " (must be >= 0)");
        trainer.objective().set_term_weight("kl", w);
        if (log_ && w != previous_) *log_ << "KL weight: " << w << " (epoch " << epoch << ")\n" << std::flush;
        previous_ = w;
    }

private:
    Schedule schedule_;
    std::ostream* log_;
    double previous_ = -1.0;
};

}  // namespace ewe

// With ewe::compiled, its library holds the float code (src/instantiations.cpp).
#if defined(EWE_COMPILED_LIBRARY)
extern template class ewe::KlAnnealing<float>;
#endif
