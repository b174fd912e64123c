// Report sections of a VAE's run folder (ewe/train/run_folder.hpp) for an HtmlReport
// (ewe/io/html_report.hpp), read from the files the run wrote: add_training_section
// quotes metrics.csv (the loss, reconstruction and KL under annealing, active units)
// with loss.svg, kl.svg and the table of every epoch; add_latent_section summarizes each
// latent_epochNNN.npy snapshot (mean and spread of z[0] and z[1], with that epoch's KL
// weight and active units) and shows its scatter. add_sweep_section quotes a sweep's
// DIR/sweep.csv (ewe/train/sweep.hpp): its table, with the run of the highest score marked
// and charted. add_kmeans_section and add_dbscan_section quote the folder that
// tour_latent_space wrote (ewe/train/latent_tour.hpp): the k-means elbow and centres, the
// DBSCAN search and the clustering it kept. A missing file leaves a note naming the
// program that writes it.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "ewe/core/tensor.hpp"
#include "ewe/io/csv.hpp"
#include "ewe/io/files.hpp"
#include "ewe/io/html_report.hpp"
#include "ewe/io/npy.hpp"
#include "ewe/io/svg.hpp"

namespace ewe {

inline void add_training_section(io::HtmlReport& page, const std::filesystem::path& run, const io::CsvTable& metrics,
                                 const std::string& train_command) {
    using io::report_number;
    page.section("Training: loss, reconstruction and KL under annealing");
    if (metrics.rows.empty()) {
        page.note(metrics.path.string() + " has no epochs yet (" + train_command + " writes one row per epoch).");
        return;
    }
    const auto epoch = metrics.numbers("epoch"), loss = metrics.numbers("loss"), recon = metrics.numbers("recon"),
               kl = metrics.numbers("kl"), weight = metrics.numbers("kl_weight");
    const std::size_t last = epoch.size() - 1;
    std::size_t rise = 0;
    while (rise < weight.size() && weight[rise] <= 0) ++rise;
    std::string text = "Mean per drawing over " + std::to_string(epoch.size()) + " epochs: the loss falls from " +
                       report_number("%.2f", loss[0]) + " after epoch " + report_number("%g", epoch[0]) + " to " + report_number("%.2f", loss[last]) +
                       " after epoch " + report_number("%g", epoch[last]) + " (reconstruction " + report_number("%.2f", recon[last]) +
                       ", KL " + report_number("%.3f", kl[last]) + " at weight " + report_number("%g", weight[last]) + "). ";
    if (rise < weight.size())
        text += "The KL weight is first above 0 in epoch " + report_number("%g", epoch[rise]) + " (" + report_number("%g", weight[rise]) +
                "); while it is 0 the KL term (unweighted) grows from " + report_number("%.3f", kl[0]) + " to " +
                report_number("%.3f", kl[rise > 0 ? rise - 1 : 0]) + ".";
    else
        text += "The KL weight stays 0 in every epoch of this run.";
    if (metrics.has("active_units")) {
        const auto active = metrics.numbers("active_units");
        text += " Active latent units (posterior-mean variance > 0.01) after the last epoch: " + report_number("%g", active[last]) +
                " of " + std::to_string(std::count_if(metrics.header.begin(), metrics.header.end(), [](const std::string& h) {
                    return h.starts_with("kl_dim_");
                })) + ".";
    }
    page.paragraph(text);
    page.image_file_or_note(run, "loss.svg", "Loss and reconstruction term per epoch (loss.svg)",
                            train_command + " when a run finishes");
    page.image_file_or_note(run, "kl.svg", "KL term and its annealed weight per epoch (kl.svg)",
                            train_command + " when a run finishes");
    page.paragraph("Every epoch as logged in metrics.csv:");
    page.table(metrics.header, metrics.rows, {}, 320);
}

inline void add_latent_section(io::HtmlReport& page, const std::filesystem::path& run, const io::CsvTable& metrics,
                               const std::string& train_command) {
    using io::report_number;
    page.section("The latent space, epoch by epoch");
    const std::vector<std::filesystem::path> snapshots = io::files_named(run, "latent_epoch", {".svg"});
    if (snapshots.empty()) {
        page.note("No latent_epochNNN.svg in " + run.string() + " (" + train_command + " --snapshots E1,E2,... writes them).");
        return;
    }
    std::map<long, std::size_t> row_of_epoch;
    if (!metrics.rows.empty()) {
        const auto epochs = metrics.numbers("epoch");
        for (std::size_t r = 0; r < epochs.size(); ++r) row_of_epoch[long(epochs[r])] = r;
    }
    std::vector<std::vector<std::string>> table;
    for (const std::filesystem::path& svg : snapshots) {
        const std::string stem = svg.stem().string();
        const long e = std::strtol(stem.c_str() + std::string("latent_epoch").size(), nullptr, 10);
        std::vector<std::string> row = {std::to_string(e)};
        std::filesystem::path npy = svg;
        npy.replace_extension(".npy");
        if (std::filesystem::is_regular_file(npy)) {
            const Tensor<double> z = io::npy_to_tensor<double>(io::read_npy(npy), npy.string());
            const std::int64_t n = z.dim(0), d = z.shape().rank() > 1 ? z.dim(1) : 1;
            row.push_back(std::to_string(n));
            for (std::int64_t k = 0; k < std::min<std::int64_t>(d, 2); ++k) {
                double mean = 0, sq = 0;
                for (std::int64_t i = 0; i < n; ++i) mean += z[i * d + k];
                mean /= double(n);
                for (std::int64_t i = 0; i < n; ++i) sq += (z[i * d + k] - mean) * (z[i * d + k] - mean);
                row.push_back(report_number("%.3f", mean) + " ± " + report_number("%.3f", std::sqrt(sq / double(n))));
            }
            while (row.size() < 4) row.push_back("");
        } else {
            row.insert(row.end(), {"", "", ""});
        }
        const auto it = row_of_epoch.find(e);
        row.push_back(it == row_of_epoch.end() ? "" : metrics.rows[it->second][metrics.column("kl_weight")]);
        row.push_back(it == row_of_epoch.end() || !metrics.has("active_units")
                          ? ""
                          : metrics.rows[it->second][metrics.column("active_units")]);
        table.push_back(std::move(row));
    }
    page.paragraph("The posterior means of the training drawings after " + std::to_string(snapshots.size()) +
                   " snapshot epochs. While the KL weight is 0 the codes are free to spread; once it rises they are "
                   "pulled towards N(0, I). Per snapshot (latent_epochNNN.npy): mean ± standard deviation of z[0] and "
                   "z[1], with that epoch's KL weight and active units from metrics.csv.");
    page.table({"epoch", "drawings", "z[0]", "z[1]", "KL weight", "active units"}, table);
    for (const std::filesystem::path& svg : snapshots) page.image_file(svg, svg.filename().string());
}

// A sweep's DIR/sweep.csv as a section headed `heading`: the table of runs (one per row,
// named by the "run" column) with the run of the highest `score_column` value (e.g.
// "roc_auc", described as `score_name` in the text, e.g. "anomaly ROC AUC") marked, and a
// bar chart of that score per run (an empty or unreadable cell is charted as n/a). No
// sweep.csv in `dir`: a note naming `sweep_command`, the program that writes it.
inline void add_sweep_section(io::HtmlReport& page, const std::string& heading, const std::filesystem::path& dir,
                              const std::string& score_column, const std::string& score_name,
                              const std::string& sweep_command) {
    page.section(heading);
    if (!std::filesystem::is_regular_file(dir / "sweep.csv")) {
        page.note("No " + (dir / "sweep.csv").string() + " (" + sweep_command + ").");
        return;
    }
    const io::CsvTable sweep = io::CsvTable::read(dir / "sweep.csv");
    std::string text = std::to_string(sweep.rows.size()) + " configurations trained with the same seed and data, one "
                       "row each (sweep.csv).";
    if (!sweep.has(score_column) || sweep.rows.empty()) {
        page.paragraph(text);
        page.table(sweep.header, sweep.rows);
        return;
    }
    std::vector<std::string> labels;
    std::vector<double> scores;
    const std::size_t c = sweep.column(score_column);
    for (std::size_t r = 0; r < sweep.rows.size(); ++r) {
        labels.push_back(sweep.has("run") ? sweep.rows[r][sweep.column("run")] : "row " + std::to_string(r + 1));
        char* end = nullptr;
        const double v = std::strtod(sweep.rows[r][c].c_str(), &end);
        scores.push_back(sweep.rows[r][c].empty() || *end != '\0' ? NAN : v);
    }
    std::size_t best = scores.size();
    for (std::size_t r = 0; r < scores.size(); ++r)
        if (std::isfinite(scores[r]) && (best == scores.size() || scores[r] > scores[best])) best = r;
    if (best < scores.size())
        text += " The highest " + score_name + ", " + io::report_number("%.4f", scores[best]) + ", is " + labels[best] +
                "'s.";
    page.paragraph(text);
    page.table(sweep.header, sweep.rows, best < scores.size() ? std::vector<std::size_t>{best} : std::vector<std::size_t>{});
    std::string title = score_name + " by run";
    title[0] = char(std::toupper(static_cast<unsigned char>(title[0])));
    page.inline_svg(io::svg_bar_chart(title, labels, scores), score_column + " of each run (sweep.csv)");
}

// The k-means part of a latent tour's folder `dir` (ewe/train/latent_tour.hpp): the scatter
// of every code, the elbow's inertia quoted at k = 1, 2, 5, 10, 20 and the last k with
// kmeans_elbow.svg, and every kmeans_<k>_centres.png mosaic. A missing file leaves a note
// naming `produce`, the program that writes it.
inline void add_kmeans_section(io::HtmlReport& page, const std::filesystem::path& dir, const std::string& produce) {
    using io::report_number;
    page.section("k-means: the elbow and the centres as drawings");
    page.image_file_or_note(dir, "latent_scatter.svg", "All drawings in the trained latent space (latent_scatter.svg)", produce);
    if (std::filesystem::is_regular_file(dir / "kmeans_elbow.csv")) {
        const io::CsvTable elbow = io::CsvTable::read(dir / "kmeans_elbow.csv");
        const auto k = elbow.numbers("k"), inertia = elbow.numbers("inertia");
        if (!k.empty()) {
            std::string text = "Inertia (sum of squared distances to the nearest centre) for k = " + report_number("%g", k.front()) +
                               ".." + report_number("%g", k.back()) + ":";
            for (std::size_t i = 0; i < k.size(); ++i)
                if (k[i] == 1 || k[i] == 2 || k[i] == 5 || k[i] == 10 || k[i] == 20 || i + 1 == k.size())
                    text += " " + report_number("%g", k[i]) + ": " + report_number("%.4g", inertia[i]) + ";";
            text.back() = '.';
            text += " The bend of the curve is where more centres stop paying off.";
            page.paragraph(text);
        }
    }
    page.image_file_or_note(dir, "kmeans_elbow.svg", "k-means elbow (kmeans_elbow.svg)", produce);
    const std::vector<std::filesystem::path> mosaics = io::files_named(dir, "kmeans_", {"_centres.png"});
    if (mosaics.empty()) page.note("No kmeans_K_centres.png in " + dir.string() + " (written by " + produce + ").");
    for (const std::filesystem::path& m : mosaics) {
        const std::string name = m.filename().string();
        const std::string k = name.substr(7, name.size() - 7 - 12);
        page.image_file(m, "The " + k + " k-means centres decoded into drawings (" + name + ")");
    }
}

// The DBSCAN part of a latent tour's folder `dir`: the k-NN distance plot, the search of
// dbscan_search.csv (its ranges of eps and minPts) and, with dbscan_labels.npy, the kept
// clustering (clusters, noise points, the largest cluster sizes) and the trials that had
// its outcome, marked at the top of the table of trials, which lists the others by
// clusters found (most first), then noise points (fewest first); then the clusters'
// scatter and strips. A missing file leaves a note naming `produce`.
inline void add_dbscan_section(io::HtmlReport& page, const std::filesystem::path& dir, const std::string& produce) {
    using io::report_number;
    page.section("DBSCAN: k-NN distances, the parameter search and the clusters");
    page.image_file_or_note(dir, "knn_distance.svg",
                   "Sorted distance to the k-th nearest neighbour: its knee suggests eps (knn_distance.svg)", produce);
    if (!std::filesystem::is_regular_file(dir / "dbscan_search.csv")) {
        page.note("No " + (dir / "dbscan_search.csv").string() + " (written by " + produce + ").");
        return;
    }
    const io::CsvTable search = io::CsvTable::read(dir / "dbscan_search.csv");
    std::vector<std::size_t> chosen;
    std::string text = "A random search over " + std::to_string(search.rows.size()) + " (eps, minPts) pairs";
    if (!search.rows.empty()) {
        const auto eps = search.numbers("eps"), pts = search.numbers("min_pts");
        text += ", eps in [" + report_number("%.4g", *std::min_element(eps.begin(), eps.end())) + ", " +
                report_number("%.4g", *std::max_element(eps.begin(), eps.end())) + "], minPts in [" +
                report_number("%g", *std::min_element(pts.begin(), pts.end())) + ", " +
                report_number("%g", *std::max_element(pts.begin(), pts.end())) + "]";
    }
    text += ".";
    if (std::filesystem::is_regular_file(dir / "dbscan_labels.npy")) {
        const Tensor<double> labels =
            io::npy_to_tensor<double>(io::read_npy(dir / "dbscan_labels.npy"), (dir / "dbscan_labels.npy").string());
        std::map<long, long> sizes;
        for (std::int64_t i = 0; i < labels.numel(); ++i) ++sizes[long(labels[i])];
        const long noise = sizes.count(-1) ? sizes[-1] : 0;
        const long clusters = long(sizes.size()) - (noise > 0);
        text += " The clustering kept (dbscan_labels.npy) has " + std::to_string(clusters) + " clusters and " +
                std::to_string(noise) + " noise points among " + std::to_string(labels.numel()) + " drawings";
        std::vector<long> by_size;
        for (const auto& [label, count] : sizes)
            if (label >= 0) by_size.push_back(count);
        std::sort(by_size.rbegin(), by_size.rend());
        if (!by_size.empty()) {
            text += "; cluster sizes";
            for (std::size_t i = 0; i < std::min<std::size_t>(by_size.size(), 12); ++i)
                text += (i ? ", " : " ") + std::to_string(by_size[i]);
            if (by_size.size() > 12) text += ", ...";
        }
        const std::size_t c = search.column("clusters"), z = search.column("noise");
        std::string trials;
        for (std::size_t r = 0; r < search.rows.size(); ++r)
            if (search.rows[r][c] == std::to_string(clusters) && search.rows[r][z] == std::to_string(noise)) {
                chosen.push_back(r);
                trials += (trials.empty() ? "" : ", ") +
                          (search.has("trial") ? search.rows[r][search.column("trial")] : "row " + std::to_string(r + 1));
            }
        text += chosen.empty() ? ". No trial of the search had that outcome (explore --eps/--min-pts chose it)."
                               : ". Marked at the top of the table, the trials with that outcome: " + trials + ".";
    }
    text += " The table lists the trials by clusters found (most first), then noise points (fewest first).";
    page.paragraph(text);
    // Kept trials first, then by clusters (descending) and noise (ascending); the sort is stable.
    std::vector<std::size_t> order(search.rows.size());
    for (std::size_t r = 0; r < order.size(); ++r) order[r] = r;
    const std::vector<double> clusters_of = search.numbers("clusters"), noise_of = search.numbers("noise");
    const auto kept = [&](std::size_t r) { return std::find(chosen.begin(), chosen.end(), r) != chosen.end(); };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (kept(a) != kept(b)) return kept(a);
        if (clusters_of[a] != clusters_of[b]) return clusters_of[a] > clusters_of[b];
        return noise_of[a] < noise_of[b];
    });
    std::vector<std::vector<std::string>> sorted;
    for (std::size_t r : order) sorted.push_back(search.rows[r]);
    std::vector<std::size_t> marked;
    for (std::size_t i = 0; i < chosen.size(); ++i) marked.push_back(i);
    page.table(search.header, sorted, marked, 360);
    page.image_file_or_note(dir, "dbscan_clusters.svg", "The chosen clustering in the latent plane (dbscan_clusters.svg)",
                   produce);
    page.image_file_or_note(dir, "dbscan_cluster_strips.png",
                   "Drawings of each cluster, one row per cluster, noise last (dbscan_cluster_strips.png)", produce);
}

}  // namespace ewe
