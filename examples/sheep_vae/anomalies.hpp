// `sheep_vae anomalies`: anomaly scores of drawings under a trained VAE. Two scores:
//   sse: sum over the 784 pixels of (x_hat - x)^2, x_hat decoded from the posterior
//        mean (the post's reconstruction error);
//   neg_elbo: 2 * sse + KL(q(z|x) || N(0, I)) summed over latent dimensions: the
//        negative ELBO (up to a constant) of a Gaussian decoder with variance 1/4,
//        i.e. the training loss at full KL weight, which also penalizes unusual codes.
// A histogram with the cutoff (a quantile), the drawings above it, scores as .npy and
// .csv; with --plant OTHER.npy:N, N drawings of another class are mixed in and ROC AUC
// and precision@N (N = planted count) say how well each score separates them.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <ewe/cluster/anomaly.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/svg.hpp>

#include "common.hpp"
#include "model_io.hpp"

namespace sheep {

struct AnomalyOptions {
    std::string checkpoint;
    std::string data;
    std::int64_t limit = 0;
    std::string plant;
    std::string out = "anomalies";
    double quantile = 0.99;
    std::int64_t top = 100;
    std::string device = "cpu";
    bool json = false;
};

inline void add_anomalies_command(CLI::App& app, AnomalyOptions& o) {
    CLI::App* c = app.add_subcommand("anomalies", "Score drawings by reconstruction error and negative ELBO");
    c->add_option("--checkpoint", o.checkpoint, "checkpoint.safetensors written by train")->required();
    c->add_option("--data", o.data, "Bitmaps .npy to score (uint8 (N, 784) or (N, 28, 28), or float32 in [0, 1])")->required();
    c->add_option("--limit", o.limit, "Score only the first N drawings (0: all)")->check(CLI::NonNegativeNumber);
    c->add_option("--plant", o.plant, "OTHER.npy:N: mix in the first N drawings of another class and measure detection");
    c->add_option("--out", o.out, "Output folder")->capture_default_str();
    c->add_option("--quantile", o.quantile, "Cutoff: this quantile of the sse scores")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    c->add_option("--top", o.top, "At most this many drawings above the cutoff in the picture")->capture_default_str()->check(CLI::Range(1, 10000));
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_flag("--json", o.json, "Print one JSON line with the results");
}

inline int run_anomalies(const AnomalyOptions& o) {
    Bitmaps data = load_bitmaps(o.data, o.limit, "--data");
    std::int64_t planted = 0;
    std::string plant_file;
    if (!o.plant.empty()) {
        const std::size_t colon = o.plant.rfind(':');
        char* end = nullptr;
        const long long k = colon == std::string::npos ? 0 : std::strtoll(o.plant.c_str() + colon + 1, &end, 10);
        if (colon == std::string::npos || colon == 0 || k <= 0 || *end != '\0')
            fail("--plant: expected OTHER.npy:N with N > 0, found '", o.plant, "'");
        plant_file = o.plant.substr(0, colon);
        Bitmaps other = load_bitmaps(plant_file, k, "--plant");
        planted = other.count();
        if (planted < k)
            std::fprintf(stderr, "--plant: %s holds only %lld drawings, planting all of them\n", plant_file.c_str(),
                         (long long)planted);
        ewe::Tensor<float> all(ewe::Shape{data.count() + planted, kSide, kSide, 1});
        std::copy_n(data.images.data(), data.images.numel(), all.data());
        std::copy_n(other.images.data(), other.images.numel(), all.data() + data.images.numel());
        data.images = std::move(all);
    }
    const std::int64_t n = data.count(), normal = n - planted;
    LoadedModel m = load_model(o.checkpoint, parse_device(o.device));
    const Encoded enc = encode(*m.ctx, *m.vae, data, true);
    const std::int64_t d = enc.latent;
    std::vector<double> sse(static_cast<std::size_t>(n)), elbo(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        double s = 0, kl = 0;
        for (std::int64_t p = 0; p < kPixels; ++p) {
            const double e = double(enc.recon[std::size_t(i * kPixels + p)]) - double(data.row(i)[p]);
            s += e * e;
        }
        for (std::int64_t k = 0; k < d; ++k) {
            const double mu = enc.mean[std::size_t(i * d + k)], lv = enc.log_var[std::size_t(i * d + k)];
            kl += -0.5 * (1 + lv - mu * mu - std::exp(lv));
        }
        sse[std::size_t(i)] = s;
        elbo[std::size_t(i)] = 2 * s + kl;
    }
    const double cutoff = ewe::cluster::quantile_threshold(sse, o.quantile);
    const double cutoff_elbo = ewe::cluster::quantile_threshold(elbo, o.quantile);
    const std::vector<std::int64_t> order = ewe::cluster::top_k(sse, n);
    std::int64_t above = 0;
    for (double s : sse) above += s > cutoff;

    const fs::path dir = o.out;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("--out: cannot create ", dir.string(), ": ", ec.message());
    std::vector<float> table;
    for (std::int64_t i = 0; i < n; ++i) table.push_back(float(sse[std::size_t(i)])), table.push_back(float(elbo[std::size_t(i)]));
    ewe::io::write_npy<float>(dir / "scores.npy", table.data(), ewe::Shape{n, 2});
    {
        ewe::io::CsvWriter csv(dir / "scores.csv");
        csv.row({"index", "source", "planted", "sse", "neg_elbo", "above_cutoff"});
        for (std::int64_t i = 0; i < n; ++i)
            csv.row({std::to_string(i < normal ? i : i - normal), i < normal ? data.source : plant_file,
                     i < normal ? "0" : "1", ewe::io::csv_number(sse[std::size_t(i)]),
                     ewe::io::csv_number(elbo[std::size_t(i)]), sse[std::size_t(i)] > cutoff ? "1" : "0"});
    }
    auto histogram = [&](const std::vector<double>& s, double cut, const std::string& what, const fs::path& file) {
        ewe::io::SvgPlot plot("Anomaly score: " + what, what, "drawings");
        if (planted > 0) {
            const double lo = *std::min_element(s.begin(), s.end()), hi = *std::max_element(s.begin(), s.end());
            plot.histogram(std::vector<double>(s.begin(), s.begin() + normal), 60, ewe::io::palette(0), "data", lo, hi);
            plot.histogram(std::vector<double>(s.begin() + normal, s.end()), 60, ewe::io::palette(1), "planted", lo, hi);
        } else {
            plot.histogram(s, 60, ewe::io::palette(0), "drawings");
        }
        char label[64];
        std::snprintf(label, sizeof label, "cutoff (q=%.3g)", o.quantile);
        plot.vline(cut, ewe::io::palette(2), label).write(file);
    };
    histogram(sse, cutoff, "reconstruction error (SSE)", dir / "histogram_sse.svg");
    histogram(elbo, cutoff_elbo, "negative ELBO", dir / "histogram_neg_elbo.svg");
    std::vector<const float*> tiles;
    for (std::int64_t i : order) {
        if (sse[std::size_t(i)] <= cutoff || std::int64_t(tiles.size()) >= o.top) break;
        tiles.push_back(data.row(i));
    }
    if (tiles.empty()) tiles.push_back(data.row(order.front()));
    write_sheet(dir / "above_cutoff.png", tiles, 10);

    JsonLine j;
    j.add("samples", n).add("planted", planted).add("quantile", o.quantile).add("cutoff_sse", cutoff)
        .add("above_cutoff", above);
    if (planted > 0 && normal > 0) {
        std::vector<std::uint8_t> labels(std::size_t(n), 0);
        for (std::int64_t i = normal; i < n; ++i) labels[std::size_t(i)] = 1;
        const double auc = ewe::cluster::roc_auc(sse, labels), auc_elbo = ewe::cluster::roc_auc(elbo, labels);
        const double p = ewe::cluster::precision_at_k(sse, labels, planted);
        const double p_elbo = ewe::cluster::precision_at_k(elbo, labels, planted);
        j.add("roc_auc", auc).add("precision_at_n", p).add("roc_auc_neg_elbo", auc_elbo).add("precision_at_n_neg_elbo", p_elbo);
        if (!o.json)
            std::printf("planted %lld drawings of %s among %lld: sse ROC AUC %.4f, precision@%lld %.3f; "
                        "neg ELBO ROC AUC %.4f, precision@%lld %.3f\n",
                        (long long)planted, plant_file.c_str(), (long long)normal, auc, (long long)planted, p, auc_elbo,
                        (long long)planted, p_elbo);
    }
    if (o.json) std::printf("%s\n", j.str().c_str());
    else
        std::printf("%lld drawings scored; cutoff sse %.2f (quantile %.3g): %lld above; wrote %s\n", (long long)n, cutoff,
                    o.quantile, (long long)above, dir.string().c_str());
    return 0;
}

}  // namespace sheep
