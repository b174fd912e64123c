// `sheep_vae report`: the experiment as one self-contained HTML page (ewe/io/html_report.hpp),
// in the post's order: the model, the training curves under KL annealing, the latent space
// epoch by epoch, k-means, the k-NN distances and DBSCAN, the anomalies, the generated grid,
// and a sweep of configurations. Everything is read from the files that train, explore,
// anomalies, generate and sweep wrote (their figures embedded, their numbers quoted); a
// missing input leaves its section out with a line saying which command produces it.
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ewe/anomaly/scores.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/files.hpp>
#include <ewe/io/html_report.hpp>
#include <ewe/io/npy.hpp>
#include <ewe/io/svg.hpp>
#include <ewe/nn/summary.hpp>
#include <ewe/train/run_report.hpp>

namespace sheep {

namespace {

struct ReportOptions {
    std::string run, out, explore, anomalies, generate, sweep;
};

std::string fmt(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

using ewe::io::CsvTable;

void model_section(ewe::io::HtmlReport& page, const SheepCheckpoint& ck) {
    page.section("The model");
    ewe::Context ctx(ewe::Device::cpu);
    const ewe::SheepVae<float> vae(ctx, ck.model_options, 1, ck.settings.seed);
    const std::vector<ewe::SummaryRow> rows = vae.summary_rows();
    const ewe::SummaryTotals totals = ewe::summary_totals(rows);
    const RunSettings& s = ck.settings;
    page.paragraph("A VAE of " + ewe::with_thousands(totals.total) + " parameters (" +
                   ewe::with_thousands(totals.trainable) + " trainable) with a " + std::to_string(ck.model_options.latent) +
                   "-dimensional latent space, trained for " + std::to_string(ck.progress.epoch) + " epochs (" +
                   ewe::with_thousands(ck.progress.iterations) + " steps) on " + ewe::with_thousands(s.samples) +
                   " drawings of " + s.data + ": batch " + std::to_string(s.batch) + ", RMSprop with learning rate " +
                   fmt("%g", s.lr) + ", seed " + std::to_string(s.seed) + "; the KL weight is 0 through epoch " +
                   fmt("%g", s.kl_start) + ", then rises linearly to 1 over " + fmt("%g", s.kl_steep) +
                   " epochs. The layers, rebuilt from the checkpoint's configuration:");
    const std::int64_t side = ck.model_options.image_size;
    std::vector<std::vector<std::string>> table = ewe::summary_cells({side, side, ck.model_options.channels}, rows);
    table.push_back({"Total", "", ewe::with_thousands(totals.total)});
    page.table({"Layer (type)", "Output shape", "Param #"}, table, {table.size() - 1});
}

void kmeans_section(ewe::io::HtmlReport& page, const fs::path& dir, const std::string& produce) {
    page.section("k-means: the elbow and the centres as drawings");
    page.image_file_or_note(dir, "latent_scatter.svg", "All drawings in the trained latent space (latent_scatter.svg)", produce);
    if (fs::is_regular_file(dir / "kmeans_elbow.csv")) {
        const CsvTable elbow = CsvTable::read(dir / "kmeans_elbow.csv");
        const auto k = elbow.numbers("k"), inertia = elbow.numbers("inertia");
        if (!k.empty()) {
            std::string text = "Inertia (sum of squared distances to the nearest centre) for k = " + fmt("%g", k.front()) +
                               ".." + fmt("%g", k.back()) + ":";
            for (std::size_t i = 0; i < k.size(); ++i)
                if (k[i] == 1 || k[i] == 2 || k[i] == 5 || k[i] == 10 || k[i] == 20 || i + 1 == k.size())
                    text += " " + fmt("%g", k[i]) + ": " + fmt("%.4g", inertia[i]) + ";";
            text.back() = '.';
            text += " The bend of the curve is where more centres stop paying off.";
            page.paragraph(text);
        }
    }
    page.image_file_or_note(dir, "kmeans_elbow.svg", "k-means elbow (kmeans_elbow.svg)", produce);
    const std::vector<fs::path> mosaics = ewe::io::files_named(dir, "kmeans_", {"_centres.png"});
    if (mosaics.empty()) page.note("No kmeans_K_centres.png in " + dir.string() + " (written by " + produce + ").");
    for (const fs::path& m : mosaics) {
        const std::string name = m.filename().string();
        const std::string k = name.substr(7, name.size() - 7 - 12);
        page.image_file(m, "The " + k + " k-means centres decoded into drawings (" + name + ")");
    }
}

void dbscan_section(ewe::io::HtmlReport& page, const fs::path& dir, const std::string& produce) {
    page.section("DBSCAN: k-NN distances, the parameter search and the clusters");
    page.image_file_or_note(dir, "knn_distance.svg",
                   "Sorted distance to the k-th nearest neighbour: its knee suggests eps (knn_distance.svg)", produce);
    if (!fs::is_regular_file(dir / "dbscan_search.csv")) {
        page.note("No " + (dir / "dbscan_search.csv").string() + " (written by " + produce + ").");
        return;
    }
    const CsvTable search = CsvTable::read(dir / "dbscan_search.csv");
    std::vector<std::size_t> chosen;
    std::string text = "A random search over " + std::to_string(search.rows.size()) + " (eps, minPts) pairs";
    if (!search.rows.empty()) {
        const auto eps = search.numbers("eps"), pts = search.numbers("min_pts");
        text += ", eps in [" + fmt("%.4g", *std::min_element(eps.begin(), eps.end())) + ", " +
                fmt("%.4g", *std::max_element(eps.begin(), eps.end())) + "], minPts in [" +
                fmt("%g", *std::min_element(pts.begin(), pts.end())) + ", " +
                fmt("%g", *std::max_element(pts.begin(), pts.end())) + "]";
    }
    text += ".";
    if (fs::is_regular_file(dir / "dbscan_labels.npy")) {
        const ewe::Tensor<double> labels =
            ewe::io::npy_to_tensor<double>(ewe::io::read_npy(dir / "dbscan_labels.npy"), (dir / "dbscan_labels.npy").string());
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

void anomaly_section(ewe::io::HtmlReport& page, const fs::path& dir, const std::string& produce) {
    page.section("Anomalies: the drawings the model cannot reconstruct");
    if (!fs::is_regular_file(dir / "scores.csv")) {
        page.note("No " + (dir / "scores.csv").string() + " (written by " + produce + ").");
        return;
    }
    const CsvTable scores = CsvTable::read(dir / "scores.csv");
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
        text += " The cutoff on " + chosen + " lies between " + fmt("%.4g", below_max) + " and " + fmt("%.4g", above_min) +
                ": " + std::to_string(n_above) + " drawings (" + fmt("%.1f", 100.0 * double(n_above) / double(n)) +
                "%) are above it.";
    page.paragraph(text);
    if (n_planted > 0 && n_planted < std::int64_t(n)) {
        std::string source;
        for (std::size_t r = 0; r < n && scores.has("source"); ++r)
            if (planted[r]) source = fs::path(scores.rows[r][scores.column("source")]).filename().string();
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
            const double auc = ewe::anomaly::roc_auc(v, planted);
            if (name == chosen) mark.push_back(rows.size());
            if (auc > best_auc) best = name, best_auc = auc;
            rows.push_back({name, fmt("%.4f", auc), fmt("%.3f", ewe::anomaly::precision_at_k(v, planted, n_planted))});
        }
        page.table({"score", "ROC AUC", "precision@" + std::to_string(n_planted)}, rows, mark);
        page.paragraph("The score that separates the planted drawings best here is " + best + " (ROC AUC " +
                       fmt("%.4f", best_auc) + ").");
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

void generate_section(ewe::io::HtmlReport& page, const std::string& file) {
    page.section("New drawings from the latent space");
    const std::string produce = "sheep_vae generate --checkpoint RUN/checkpoint.safetensors --grid --out grid.png, then "
                                "--generate grid.png";
    if (file.empty() || !fs::is_regular_file(file)) {
        page.note((file.empty() ? std::string("No --generate PNG given") : "No file " + file) + " (" + produce + ").");
        return;
    }
    const std::string bytes = ewe::io::read_file_bytes(file, "--generate");
    const ewe::io::ImageSize size = ewe::io::png_size(bytes, "--generate " + file);
    page.paragraph("The decoder's drawings at points of the latent space (" + fs::path(file).filename().string() + ", " +
                   std::to_string(size.width) + "x" + std::to_string(size.height) +
                   " pixels): with generate --grid, a regular grid over the latent plane, left to right z[0], "
                   "top to bottom z[1] falling.");
    page.png(bytes, fs::path(file).filename().string(), "--generate " + file);
}

int run_report(const ReportOptions& o, const Console& io) {
    const fs::path run = o.run;
    ewe::io::require_folder(run, "--run");
    for (const char* f : {"metrics.csv", "checkpoint.safetensors"}) {
        if (!fs::exists(run / f))
            fail("--run: ", run.string(), " has no ", f, " (expected the --out folder of sheep_vae train)");
        ewe::io::require_file(run / f, "--run");
    }
    const fs::path out = o.out;
    const fs::path out_dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
    ewe::io::require_folder(out_dir, "--out: the folder of " + out.string());
    // Folders given for the optional sections: one that is missing leaves its section out
    // (with a note); one that is something else is an error.
    for (const auto& [flag, dir] : {std::pair<const char*, const std::string&>{"--explore", o.explore},
                                    std::pair<const char*, const std::string&>{"--anomalies", o.anomalies},
                                    std::pair<const char*, const std::string&>{"--sweep", o.sweep}})
        if (!dir.empty() && fs::exists(dir)) ewe::io::require_folder(dir, flag);

    const SheepCheckpoint ck = read_checkpoint(run / "checkpoint.safetensors", "--run");
    const CsvTable metrics = CsvTable::read(run / "metrics.csv");
    ewe::io::HtmlReport page("Sheep in latent space: a sheep_vae run");
    page.paragraph("The experiment of the post 'sheep in latent space' as run by sheep_vae, read from " + run.string() +
                   (o.explore.empty() ? "" : ", " + o.explore) + (o.anomalies.empty() ? "" : ", " + o.anomalies) +
                   (o.generate.empty() ? "" : ", " + o.generate) + (o.sweep.empty() ? "" : ", " + o.sweep) + ".");
    model_section(page, ck);
    ewe::add_training_section(page, run, metrics, "sheep_vae train");
    ewe::add_latent_section(page, run, metrics, "sheep_vae train");
    const std::string ckp = (run / "checkpoint.safetensors").string();
    const std::string explore_cmd = "sheep_vae explore --checkpoint " + ckp + " --data sheep.npy --out DIR; then --explore DIR";
    if (o.explore.empty() || !fs::is_directory(o.explore)) {
        const std::string why = o.explore.empty() ? "No --explore folder given" : "No folder " + o.explore;
        page.section("k-means: the elbow and the centres as drawings").note(why + " (" + explore_cmd + ").");
        page.section("DBSCAN: k-NN distances, the parameter search and the clusters").note(why + " (" + explore_cmd + ").");
    } else {
        kmeans_section(page, o.explore, "sheep_vae explore");
        dbscan_section(page, o.explore, "sheep_vae explore");
    }
    const std::string anomalies_cmd = "sheep_vae anomalies --checkpoint " + ckp +
                                      " --data sheep.npy [--plant cat.npy:50] --out DIR; then --anomalies DIR";
    if (o.anomalies.empty() || !fs::is_directory(o.anomalies))
        page.section("Anomalies: the drawings the model cannot reconstruct")
            .note((o.anomalies.empty() ? std::string("No --anomalies folder given") : "No folder " + o.anomalies) + " (" +
                  anomalies_cmd + ").");
    else
        anomaly_section(page, o.anomalies, "sheep_vae anomalies");
    generate_section(page, o.generate);
    const std::string sweep_cmd = "sheep_vae sweep writes DIR/sweep.csv; then --sweep DIR";
    if (o.sweep.empty())
        page.section("Sweep of model shapes").note("No --sweep folder given (" + sweep_cmd + ").");
    else
        ewe::add_sweep_section(page, "Sweep of model shapes", o.sweep, "roc_auc", "anomaly ROC AUC", sweep_cmd);
    page.write(out, "--out");
    print(io.err, "Wrote %s (%lld bytes)\n", out.string().c_str(), (long long)fs::file_size(out));
    return 0;
}

}  // namespace

Command add_report_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<ReportOptions>();
    ReportOptions& o = *options;
    CLI::App* c = app.add_subcommand("report", "One self-contained HTML page of a run and its explore, anomalies, "
                                               "generate and sweep outputs");
    c->add_option("--run", o.run, "Folder written by sheep_vae train (metrics.csv, checkpoint.safetensors, ...)")->required();
    c->add_option("--out", o.out, "HTML file to write")->required();
    c->add_option("--explore", o.explore, "Folder written by sheep_vae explore");
    c->add_option("--anomalies", o.anomalies, "Folder written by sheep_vae anomalies");
    c->add_option("--generate", o.generate, "PNG written by sheep_vae generate");
    c->add_option("--sweep", o.sweep, "Folder holding sweep.csv (sheep_vae sweep)");
    return [options, io] { return run_report(*options, io); };
}

}  // namespace sheep
