// `sheep_vae explore`: the post's tour of the latent space (ewe::tour_latent_space,
// ewe/train/latent_tour.hpp): the latent scatter; the k-means elbow (k = 1..30) and a
// mosaic of the k = 100 centres decoded into sheep; the sorted k-NN distance plot; a
// random search over DBSCAN's (eps, minPts) with a table, the chosen clustering in
// colour, and strips of sample drawings per cluster.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <string>

#include <ewe/io/files.hpp>
#include <ewe/train/latent_tour.hpp>

namespace sheep {

namespace {

struct ExploreOptions {
    std::string checkpoint;
    std::string data;
    std::int64_t limit = 0;
    std::string out = "explore";
    ewe::LatentTourOptions tour;
    std::string device = "cpu";
};

int run_explore(const ExploreOptions& o, const Console& io) {
    const ewe::LatentTourOptions& t = o.tour;
    if (t.eps_min >= t.eps_max) fail("--eps-min/--eps-max: need eps-min < eps-max, found ", t.eps_min, " and ", t.eps_max);
    if (t.min_pts_min > t.min_pts_max)
        fail("--min-pts-min/--min-pts-max: need min <= max, found ", t.min_pts_min, " and ", t.min_pts_max);
    if ((t.eps > 0) != (t.min_pts > 0)) fail("--eps and --min-pts go together");
    const Bitmaps data = load_bitmaps(o.data, o.limit, "--data");
    ewe::TrainedVae<float> m = load_model(o.checkpoint, parse_device(o.device));
    ewe::io::create_folder(o.out, "--out");
    ewe::LatentTourOptions tour = o.tour;
    tour.log = &io.err;
    tour.redraw = io.redraw;
    tour.table = &io.out;
    tour.unit = "drawings";
    ewe::tour_latent_space(*m.ctx, *m.vae, data.images.view(), o.out, tour);
    print(io.err, "Wrote %s\n", o.out.c_str());
    return 0;
}

}  // namespace

Command add_explore_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<ExploreOptions>();
    ExploreOptions& o = *options;
    CLI::App* c = app.add_subcommand("explore", "Latent scatter, k-means, k-NN distances and DBSCAN search");
    c->add_option("--checkpoint", o.checkpoint, "checkpoint.safetensors written by train")->required();
    c->add_option("--data", o.data, "Bitmaps .npy to encode")->required();
    c->add_option("--limit", o.limit, "Use only the first N drawings (0: all)")->check(non_negative());
    c->add_option("--out", o.out, "Output folder")->capture_default_str();
    c->add_option("--k-max", o.tour.k_max, "Elbow plot for k = 1..k-max")->capture_default_str()->check(number_in(1, 1000));
    c->add_option("--mosaic-k", o.tour.mosaic_k, "k of the decoded-centre mosaic")->capture_default_str()->check(number_in(1, 10000));
    c->add_option("--knn-k", o.tour.knn_k, "k of the k-NN distance plot")->capture_default_str()->check(number_in(1, 10000));
    c->add_option("--trials", o.tour.trials, "DBSCAN random-search trials")->capture_default_str()->check(number_in(1, 100000));
    c->add_option("--eps-min", o.tour.eps_min, "Lower end of the eps search range")->capture_default_str()->check(positive());
    c->add_option("--eps-max", o.tour.eps_max, "Upper end of the eps search range")->capture_default_str()->check(positive());
    c->add_option("--min-pts-min", o.tour.min_pts_min, "Lower end of the minPts search range")->capture_default_str()->check(number_in(1, 1000000));
    c->add_option("--min-pts-max", o.tour.min_pts_max, "Upper end of the minPts search range")->capture_default_str()->check(number_in(1, 1000000));
    c->add_option("--eps", o.tour.eps, "Use this eps for the final clustering instead of the search's choice")->check(positive());
    c->add_option("--min-pts", o.tour.min_pts, "and this minPts (counts the point itself)")->check(number_in(1, 1000000));
    c->add_option("--seed", o.tour.seed, "Seed of k-means and of the search")->capture_default_str();
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    return [options, io] { return run_explore(*options, io); };
}

}  // namespace sheep
