// Keras-style model summaries: one row per layer (name and type, output shape with
// the batch as None, parameter count), then total / trainable / non-trainable; the same
// rows as table cells for a report (summary_cells).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "ewe/nn/layer.hpp"

namespace ewe {

// 12857845 -> "12,857,845".
inline std::string with_thousands(std::int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return n < 0 ? "-" + out : out;
}

struct SummaryTotals {
    std::int64_t total = 0, trainable = 0, non_trainable = 0;
};

inline SummaryTotals summary_totals(const std::vector<SummaryRow>& rows) {
    SummaryTotals t;
    for (const SummaryRow& r : rows) {
        t.total += r.params;
        t.non_trainable += r.non_trainable;
    }
    t.trainable = t.total - t.non_trainable;
    return t;
}

// A layer's output shape as Keras prints it, the batch as None: (None, 14, 14, 64).
inline std::string batch_shape(const Shape& s) {
    std::string inner = s.str();
    return "(None" + (s.rank() ? ", " + inner.substr(1, inner.size() - 1 - (s.rank() == 1 ? 2 : 1)) : "") + ")";
}

// The summary as table cells, one row per layer: "name (type)", output shape, parameter
// count; an "input (InputLayer)" row of shape `input` first.
inline std::vector<std::vector<std::string>> summary_cells(const Shape& input, const std::vector<SummaryRow>& rows) {
    std::vector<std::vector<std::string>> cells{{"input (InputLayer)", batch_shape(input), "0"}};
    for (const SummaryRow& r : rows) cells.push_back({r.name + " (" + r.kind + ")", batch_shape(r.output), with_thousands(r.params)});
    return cells;
}

inline std::string format_summary(const std::string& model_name, const Shape& input,
                                  const std::vector<SummaryRow>& rows) {
    auto line = [](const std::string& a, const std::string& b, const std::string& c) {
        char buf[256];
        std::snprintf(buf, sizeof buf, " %-44s %-22s %12s\n", a.c_str(), b.c_str(), c.c_str());
        return std::string(buf);
    };
    const std::string thin(81, '_'), thick(81, '=');
    std::string out = "Model: \"" + model_name + "\"\n" + thin + "\n";
    out += line("Layer (type)", "Output Shape", "Param #") + thick + "\n";
    for (const std::vector<std::string>& c : summary_cells(input, rows)) out += line(c[0], c[1], c[2]);
    const SummaryTotals t = summary_totals(rows);
    out += thick + "\n";
    out += "Total params: " + with_thousands(t.total) + "\n";
    out += "Trainable params: " + with_thousands(t.trainable) + "\n";
    out += "Non-trainable params: " + with_thousands(t.non_trainable) + "\n";
    out += thin + "\n";
    return out;
}

}  // namespace ewe
