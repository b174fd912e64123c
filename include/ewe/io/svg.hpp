// A tiny SVG plot writer for figures of examples and docs: scatter, line and
// histogram series on linear axes with "nice" ticks, axis labels, a title, vertical
// reference lines and a legend. One plot per file; no dependencies. Also a horizontal
// bar chart of named values (svg_bar_chart). Files are written atomically
// (ewe/io/atomic_file.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "ewe/core/error.hpp"
#include "ewe/io/atomic_file.hpp"

namespace ewe::io {

// A categorical palette (Tableau 10) for series and cluster colours.
inline std::string palette(std::size_t i) {
    static const char* colors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
    return colors[i % 10];
}

class SvgPlot {
public:
    SvgPlot(std::string title, std::string xlabel, std::string ylabel, int width = 640, int height = 480)
        : title_(std::move(title)), xlabel_(std::move(xlabel)), ylabel_(std::move(ylabel)), width_(width),
          height_(height) {}

    SvgPlot& scatter(const std::vector<double>& x, const std::vector<double>& y, std::string color,
                     std::string label = {}, double radius = 1.5, double opacity = 0.6) {
        EWE_REQUIRE(x.size() == y.size(), "SvgPlot::scatter: x has ", x.size(), " points, y ", y.size());
        series_.push_back(Series{Kind::scatter, x, y, std::move(color), std::move(label), radius, opacity});
        return *this;
    }
    SvgPlot& line(const std::vector<double>& x, const std::vector<double>& y, std::string color,
                  std::string label = {}, double width = 1.5) {
        EWE_REQUIRE(x.size() == y.size(), "SvgPlot::line: x has ", x.size(), " points, y ", y.size());
        series_.push_back(Series{Kind::line, x, y, std::move(color), std::move(label), width, 1.0});
        return *this;
    }
    // Counts of `values` in `bins` equal bins over [lo, hi] (default: the values' range;
    // give the same range to several histograms in one plot so their bins line up).
    // Values outside [lo, hi] are left out.
    SvgPlot& histogram(const std::vector<double>& values, int bins, std::string color, std::string label = {},
                       double lo = std::numeric_limits<double>::quiet_NaN(),
                       double hi = std::numeric_limits<double>::quiet_NaN()) {
        EWE_REQUIRE(bins > 0, "SvgPlot::histogram: bins must be positive");
        if (std::isnan(lo) || std::isnan(hi)) {
            lo = std::numeric_limits<double>::infinity(), hi = -lo;
            for (double v : values)
                if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
        }
        if (!(lo <= hi)) lo = 0, hi = 1;
        if (hi == lo) hi = lo + 1;
        std::vector<double> edges, counts(std::size_t(bins), 0.0);
        for (int b = 0; b <= bins; ++b) edges.push_back(lo + (hi - lo) * b / bins);
        for (double v : values)
            if (std::isfinite(v) && v >= lo && v <= hi)
                counts[std::min<std::size_t>(std::size_t((v - lo) / (hi - lo) * bins), std::size_t(bins) - 1)] += 1;
        series_.push_back(Series{Kind::bars, edges, counts, std::move(color), std::move(label), 0, 0.75});
        return *this;
    }
    SvgPlot& vline(double x, std::string color, std::string label = {}) {
        series_.push_back(Series{Kind::vline, {x}, {}, std::move(color), std::move(label), 1.5, 1.0});
        return *this;
    }
    SvgPlot& log_y(bool on = true) {
        log_y_ = on;
        return *this;
    }

    std::string str() const {
        double x0 = inf(), x1 = -inf(), y0 = inf(), y1 = -inf();
        for (const Series& s : series_) {
            for (double v : s.x)
                if (std::isfinite(v)) x0 = std::min(x0, v), x1 = std::max(x1, v);
            for (double v : s.y)
                if (std::isfinite(ty(v))) y0 = std::min(y0, ty(v)), y1 = std::max(y1, ty(v));
            if (s.kind == Kind::bars) y0 = std::min(y0, 0.0);
        }
        if (!(x0 <= x1)) x0 = 0, x1 = 1;
        if (!(y0 <= y1)) y0 = 0, y1 = 1;
        const auto [xt, xa, xb] = ticks(x0, x1);
        const auto [yt, ya, yb] = ticks(y0, y1);
        const double left = 70, right = width_ - 20, top = 40, bottom = height_ - 55;
        auto px = [&](double v) { return left + (v - xa) / (xb - xa) * (right - left); };
        auto py = [&](double v) { return bottom - (ty(v) - ya) / (yb - ya) * (bottom - top); };
        std::string o;
        o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width_) + "\" height=\"" + num(height_) +
             "\" viewBox=\"0 0 " + num(width_) + " " + num(height_) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
        o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
        o += text(width_ / 2.0, 22, title_, "middle", 15);
        // Axes, ticks, grid.
        for (double t : xt) {
            o += "<line x1=\"" + num(px(t)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(px(t)) + "\" y2=\"" + num(bottom) +
                 "\" stroke=\"#eee\"/>\n";
            o += text(px(t), bottom + 16, label(t), "middle");
        }
        for (double t : yt) {
            const double yy = bottom - (t - ya) / (yb - ya) * (bottom - top);
            o += "<line x1=\"" + num(left) + "\" y1=\"" + num(yy) + "\" x2=\"" + num(right) + "\" y2=\"" + num(yy) +
                 "\" stroke=\"#eee\"/>\n";
            o += text(left - 6, yy + 4, log_y_ ? "1e" + label(t) : label(t), "end");
        }
        o += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(right - left) + "\" height=\"" +
             num(bottom - top) + "\" fill=\"none\" stroke=\"#333\"/>\n";
        o += text((left + right) / 2, height_ - 15, xlabel_, "middle", 13);
        o += "<text x=\"18\" y=\"" + num((top + bottom) / 2) + "\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 " +
             num((top + bottom) / 2) + ")\">" + escape(ylabel_) + "</text>\n";
        for (const Series& s : series_) {
            if (s.kind == Kind::scatter) {
                o += "<g fill=\"" + s.color + "\" fill-opacity=\"" + num(s.opacity) + "\">\n";
                for (std::size_t i = 0; i < s.x.size(); ++i)
                    if (std::isfinite(s.x[i]) && std::isfinite(ty(s.y[i])))
                        o += "<circle cx=\"" + num(px(s.x[i])) + "\" cy=\"" + num(py(s.y[i])) + "\" r=\"" + num(s.size) + "\"/>\n";
                o += "</g>\n";
            } else if (s.kind == Kind::line) {
                std::string pts;
                for (std::size_t i = 0; i < s.x.size(); ++i)
                    if (std::isfinite(s.x[i]) && std::isfinite(ty(s.y[i]))) pts += num(px(s.x[i])) + "," + num(py(s.y[i])) + " ";
                o += "<polyline fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"" + num(s.size) + "\" points=\"" +
                     pts + "\"/>\n";
            } else if (s.kind == Kind::bars) {
                o += "<g fill=\"" + s.color + "\" fill-opacity=\"" + num(s.opacity) + "\" stroke=\"white\" stroke-width=\"0.5\">\n";
                for (std::size_t b = 0; b + 1 < s.x.size(); ++b) {
                    const double h0 = py(0), h1 = py(s.y[b]);
                    o += "<rect x=\"" + num(px(s.x[b])) + "\" y=\"" + num(h1) + "\" width=\"" +
                         num(std::max(0.5, px(s.x[b + 1]) - px(s.x[b]))) + "\" height=\"" + num(std::max(0.0, h0 - h1)) + "\"/>\n";
                }
                o += "</g>\n";
            } else {
                o += "<line x1=\"" + num(px(s.x[0])) + "\" y1=\"" + num(top) + "\" x2=\"" + num(px(s.x[0])) + "\" y2=\"" +
                     num(bottom) + "\" stroke=\"" + s.color + "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n";
            }
        }
        // Legend.
        double ly = top + 14;
        std::size_t longest = 0;  // the legend's left edge leaves about 6.5 pixels per character
        for (const Series& s : series_) longest = std::max(longest, s.label.size());
        const double legend_x = right - std::max(150.0, 6.5 * double(longest) + 25);
        for (const Series& s : series_) {
            if (s.label.empty()) continue;
            o += "<rect x=\"" + num(legend_x) + "\" y=\"" + num(ly - 9) + "\" width=\"10\" height=\"10\" fill=\"" + s.color + "\"/>\n";
            o += text(legend_x + 15, ly, s.label, "start");
            ly += 16;
        }
        return o + "</svg>\n";
    }

    void write(const std::filesystem::path& path) const {
        const std::string svg = str();
        write_file_atomically(path, "SvgPlot::write",
                              [&](std::ostream& out) { out.write(svg.data(), std::streamsize(svg.size())); });
    }

private:
    enum class Kind { scatter, line, bars, vline };
    struct Series {
        Kind kind;
        std::vector<double> x, y;
        std::string color, label;
        double size, opacity;
    };

    static double inf() { return std::numeric_limits<double>::infinity(); }
    double ty(double v) const { return log_y_ ? (v > 0 ? std::log10(v) : -inf()) : v; }

    // About six ticks at 1, 2 or 5 times a power of ten covering [lo, hi].
    static std::tuple<std::vector<double>, double, double> ticks(double lo, double hi) {
        if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) lo -= 0.5, hi += 0.5;
        const double raw = (hi - lo) / 6, mag = std::pow(10, std::floor(std::log10(raw)));
        const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
        const double a = std::floor(lo / step) * step, b = std::ceil(hi / step) * step;
        std::vector<double> t;
        for (double v = a; v <= b + step * 1e-9; v += step) t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
        return {t, a, b};
    }
    static std::string num(double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", v);
        return buf;
    }
    static std::string label(double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", v);
        return buf;
    }
    static std::string escape(const std::string& s) {
        std::string o;
        for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
        return o;
    }
    static std::string text(double x, double y, const std::string& s, const char* anchor, int size = 12) {
        return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\" font-size=\"" +
               std::to_string(size) + "\">" + escape(s) + "</text>\n";
    }

    std::string title_, xlabel_, ylabel_;
    int width_, height_;
    bool log_y_ = false;
    std::vector<Series> series_;
};

// A horizontal bar chart of one value per named item (e.g. a score per run): one bar
// per label, top to bottom, from 0 (or the smallest negative value) to the value, the
// value written at the bar's end.
inline std::string svg_bar_chart(const std::string& title, const std::vector<std::string>& labels,
                                 const std::vector<double>& values, int width = 640) {
    EWE_REQUIRE(labels.size() == values.size(), "svg_bar_chart: ", labels.size(), " labels but ", values.size(), " values");
    double lo = 0, hi = 0;
    for (double v : values)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (hi == lo) hi = lo + 1;
    const double bar = 20, gap = 6, top = 40, left = 180, right = width - 70;
    const int height = int(top + double(values.size()) * (bar + gap) + 20);
    const auto num = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f", v);
        return std::string(buf);
    };
    const auto escape = [](const std::string& t) {
        std::string o;
        for (char c : t) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
        return o;
    };
    const auto px = [&](double v) { return left + (v - lo) / (hi - lo) * (right - left); };
    std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                    std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    o += "<text x=\"" + num(width / 2.0) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + escape(title) + "</text>\n";
    for (std::size_t i = 0; i < values.size(); ++i) {
        const double y = top + double(i) * (bar + gap), v = values[i];
        o += "<text x=\"" + num(left - 8) + "\" y=\"" + num(y + bar * 0.7) + "\" text-anchor=\"end\">" + escape(labels[i]) +
             "</text>\n";
        if (!std::isfinite(v)) {
            o += "<text x=\"" + num(px(0) + 4) + "\" y=\"" + num(y + bar * 0.7) + "\">n/a</text>\n";
            continue;
        }
        const double a = std::min(px(0), px(v)), b = std::max(px(0), px(v));
        o += "<rect x=\"" + num(a) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(0.5, b - a)) + "\" height=\"" + num(bar) +
             "\" fill=\"" + palette(0) + "\"/>\n";
        char value[32];
        std::snprintf(value, sizeof value, "%.4g", v);
        o += "<text x=\"" + num(b + 4) + "\" y=\"" + num(y + bar * 0.7) + "\">" + value + "</text>\n";
    }
    o += "<line x1=\"" + num(px(0)) + "\" y1=\"" + num(top - 4) + "\" x2=\"" + num(px(0)) + "\" y2=\"" + num(height - 16.0) +
         "\" stroke=\"#333\"/>\n";
    return o + "</svg>\n";
}

}  // namespace ewe::io
