// The report section of an anomaly folder (ewe/anomaly/score_table.hpp) for an
// HtmlReport (ewe/io/html_report.hpp), read from the files a ScoreTable wrote:
// add_anomaly_section names the scores of scores.csv and the one behind the cutoff (the
// first whose drawings above the cutoff are exactly its highest), with planted samples
// the ROC AUC and precision@planted of every score, then each score's histogram and
// above_cutoff.png. A missing file leaves a note naming the program that writes it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "ewe/anomaly/scores.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/html_report.hpp"

namespace ewe::anomaly {

// The section "Anomalies: the drawings the model cannot reconstruct" of the folder `dir`
// that a ScoreTable (and the program around it: above_cutoff.png) wrote; `produce` names
// that program in the notes of missing files.
inline void add_anomaly_section(io::HtmlReport& page, const std::filesystem::path& dir, const std::string& produce) {
    using io::report_number;
    page.section("Anomalies: the drawings the model cannot reconstruct");
    if (!std::filesystem::is_regular_file(dir / "scores.csv")) {
        page.note("No " + (dir / "scores.csv").string() + " (written by " + produce + ").");
        return;
    }
    const io::CsvTable scores = io::CsvTable::read(dir / "scores.csv");
    static const std::set<std::string> not_scores = {"index", "source", "planted", "above_cutoff"};
    std::vector<std::string> names;
    for (const std::string& h : scores.header)
        if (!not_scores.count(h)) names.push_back(h);
    const std::size_t n = scores.rows.size();
    std::vector<std::uint8_t> above(n, 0), planted(n, 0);
    if (scores.has("above_cutoff"))
        for (std::size_t r = 0; r < n; ++r) above[r] = scores.rows[r][scores.column("above_cutoff")] == "1";
    if (scores.has("planted"))
        for (std::size_t r = 0; r < n; ++r) planted[r] = scores.rows[r][scores.column("planted")] == "1";
    const std::int64_t n_above = std::count(above.begin(), above.end(), 1);
    const std::int64_t n_planted = std::count(planted.begin(), planted.end(), 1);
    // The score behind the cutoff: the first whose drawings above the cutoff are exactly its highest ones.
    std::string chosen;
    double below_max = 0, above_min = 0;
    for (const std::string& name : names) {
        const auto v = scores.numbers(name);
        double lo = INFINITY, hi = -INFINITY;
        for (std::size_t r = 0; r < n; ++r) {
            if (above[r]) lo = std::min(lo, v[r]);
            else hi = std::max(hi, v[r]);
        }
        if (n_above > 0 && lo > hi) {
            chosen = name, below_max = hi, above_min = lo;
            break;
        }
    }
    std::string list;
    for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
    std::string text = std::to_string(n) + " drawings scored with " + std::to_string(names.size()) + " scores (" + list + ").";
    if (!chosen.empty())
        text += " The cutoff on " + chosen + " lies between " + report_number("%.4g", below_max) + " and " + report_number("%.4g", above_min) +
                ": " + std::to_string(n_above) + " drawings (" + report_number("%.1f", 100.0 * double(n_above) / double(n)) +
                "%) are above it.";
    page.paragraph(text);
    if (n_planted > 0 && n_planted < std::int64_t(n)) {
        std::string source;
        for (std::size_t r = 0; r < n && scores.has("source"); ++r)
            if (planted[r]) source = std::filesystem::path(scores.rows[r][scores.column("source")]).filename().string();
        page.paragraph(std::to_string(n_planted) + " of them are planted drawings of another class (" + source +
                       "). How well each score ranks them above the " + std::to_string(std::int64_t(n) - n_planted) +
                       " others (ROC AUC: the chance a planted drawing outscores a normal one; precision@" +
                       std::to_string(n_planted) + ": the planted share of the " + std::to_string(n_planted) +
                       " highest scores):");
        std::vector<std::vector<std::string>> rows;
        std::vector<std::size_t> mark;
        std::string best;
        double best_auc = -1;
        for (const std::string& name : names) {
            const auto v = scores.numbers(name);
            const double auc = roc_auc(v, planted);
            if (name == chosen) mark.push_back(rows.size());
            if (auc > best_auc) best = name, best_auc = auc;
            rows.push_back({name, report_number("%.4f", auc), report_number("%.3f", precision_at_k(v, planted, n_planted))});
        }
        page.table({"score", "ROC AUC", "precision@" + std::to_string(n_planted)}, rows, mark);
        page.paragraph("The score that separates the planted drawings best here is " + best + " (ROC AUC " +
                       report_number("%.4f", best_auc) + ").");
    }
    std::vector<std::string> ordered = names;
    if (!chosen.empty()) std::stable_partition(ordered.begin(), ordered.end(), [&](const std::string& s) { return s == chosen; });
    for (const std::string& name : ordered)
        page.image_file_or_note(dir, "histogram_" + name + ".svg",
                       "Histogram of " + name + (name == chosen ? ", with the cutoff" : "") + " (histogram_" + name + ".svg)",
                       produce);
    page.image_file_or_note(dir, "above_cutoff.png", "The drawings above the cutoff, highest score first (above_cutoff.png)",
                   produce);
}

}  // namespace ewe::anomaly
