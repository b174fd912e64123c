// `sheep_vae report`: the experiment as one self-contained HTML page (ewe/io/html_report.hpp),
// in the post's order: the model, the training curves under KL annealing, the latent space
// epoch by epoch, k-means, the k-NN distances and DBSCAN, the anomalies, the generated grid,
// and a sweep of configurations. Everything is read from the files that train, explore,
// anomalies, generate and sweep wrote (their figures embedded, their numbers quoted); a
// missing input leaves its section out with a line saying which command produces it.
#include "common.hpp"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include <ewe/anomaly/score_report.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/files.hpp>
#include <ewe/io/html_report.hpp>
#include <ewe/nn/summary.hpp>
#include <ewe/train/run_report.hpp>

namespace sheep {

namespace {

struct ReportOptions {
    std::string run, out, explore, anomalies, generate, sweep;
};

using ewe::io::CsvTable;
using ewe::io::report_number;

void model_section(ewe::io::HtmlReport& page, const ewe::VaeRunCheckpoint& ck) {
    page.section("The model");
    ewe::Context ctx(ewe::Device::cpu);
    const ewe::SheepVae<float> vae(ctx, ck.model_options, 1, ck.settings.seed);
    const std::vector<ewe::SummaryRow> rows = vae.summary_rows();
    const ewe::SummaryTotals totals = ewe::summary_totals(rows);
    const ewe::VaeRunSettings& s = ck.settings;
    page.paragraph("A VAE of " + ewe::with_thousands(totals.total) + " parameters (" +
                   ewe::with_thousands(totals.trainable) + " trainable) with a " + std::to_string(ck.model_options.latent) +
                   "-dimensional latent space, trained for " + std::to_string(ck.progress.epoch) + " epochs (" +
                   ewe::with_thousands(ck.progress.iterations) + " steps) on " + ewe::with_thousands(s.samples) +
                   " drawings of " + s.data + ": batch " + std::to_string(s.batch) + ", RMSprop with learning rate " +
                   report_number("%g", s.lr) + ", seed " + std::to_string(s.seed) + "; the KL weight is 0 through epoch " +
                   report_number("%g", s.kl_start) + ", then rises linearly to 1 over " + report_number("%g", s.kl_steep) +
                   " epochs. The layers, rebuilt from the checkpoint's configuration:");
    const std::int64_t side = ck.model_options.image_size;
    std::vector<std::vector<std::string>> table = ewe::summary_cells({side, side, ck.model_options.channels}, rows);
    table.push_back({"Total", "", ewe::with_thousands(totals.total)});
    page.table({"Layer (type)", "Output shape", "Param #"}, table, {table.size() - 1});
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

    const ewe::VaeRunCheckpoint ck = read_checkpoint(run / "checkpoint.safetensors", "--run");
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
        ewe::add_kmeans_section(page, o.explore, "sheep_vae explore");
        ewe::add_dbscan_section(page, o.explore, "sheep_vae explore");
    }
    const std::string anomalies_cmd = "sheep_vae anomalies --checkpoint " + ckp +
                                      " --data sheep.npy [--plant cat.npy:50] --out DIR; then --anomalies DIR";
    if (o.anomalies.empty() || !fs::is_directory(o.anomalies))
        page.section("Anomalies: the drawings the model cannot reconstruct")
            .note((o.anomalies.empty() ? std::string("No --anomalies folder given") : "No folder " + o.anomalies) + " (" +
                  anomalies_cmd + ").");
    else
        ewe::anomaly::add_anomaly_section(page, o.anomalies, "sheep_vae anomalies");
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
