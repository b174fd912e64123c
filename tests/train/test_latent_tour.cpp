// The latent-space tour (ewe/train/latent_tour.hpp): the DBSCAN random search's trials
// and choice, and tour_latent_space's files and table on a small sheep VAE.
#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <ewe/io/csv.hpp>
#include <ewe/io/npy.hpp>
#include <ewe/train/latent_tour.hpp>

#include "small_sheep_vae.hpp"

namespace fs = std::filesystem;

TEST_CASE("DBSCAN random search: trials in their ranges, the same for the same seed; the choice rule") {
    ewe::LatentTourOptions options;
    options.trials = 50;
    options.min_pts_max = 400;
    const auto trials = ewe::dbscan_random_trials(options, 100);  // min_pts capped at n = 100
    REQUIRE(trials.size() == 50);
    for (const auto& t : trials) {
        CHECK(t.eps >= options.eps_min);
        CHECK(t.eps <= options.eps_max);
        CHECK(t.min_pts >= 5);
        CHECK(t.min_pts <= 100);
    }
    CHECK(ewe::dbscan_random_trials(options, 100)[7].eps == trials[7].eps);
    options.seed = 8;
    CHECK(ewe::dbscan_random_trials(options, 100)[7].eps != trials[7].eps);

    // Fewest noise points among 2..30 clusters, more clusters on ties; else the most clusters.
    const auto trial = [](int clusters, std::int64_t noise) {
        ewe::cluster::DbscanTrialResult r;
        r.n_clusters = clusters;
        r.n_noise = noise;
        return r;
    };
    CHECK(ewe::choose_dbscan_trial({trial(1, 0), trial(3, 9), trial(2, 4), trial(40, 0), trial(5, 4)}) == 4);
    CHECK(ewe::choose_dbscan_trial({trial(1, 0), trial(0, 10), trial(31, 3)}) == 2);
}

TEST_CASE("tour_latent_space writes every file and prints the search's table with its choice") {
    ewe::Context ctx;
    ewe::SheepVae<float> vae(ctx, ewe_test::small_model_options(), 8, 3);
    ewe::Tensor<float> images(ewe::Shape{40, 8, 8, 1});
    for (std::int64_t i = 0; i < images.numel(); ++i) images[i] = float((i * 37) % 11) / 10.0f;
    const fs::path dir = fs::temp_directory_path() / "ewe_test_latent_tour";
    fs::create_directories(dir);
    std::ostringstream log, table;
    ewe::LatentTourOptions options;
    options.k_max = 5;
    options.mosaic_k = 4;
    options.trials = 12;
    options.log = &log;
    options.table = &table;
    const ewe::LatentTour tour = ewe::tour_latent_space(ctx, vae, images.view(), dir, options);
    CHECK(tour.encoding.count() == 40);
    REQUIRE(tour.trials.size() == 12);
    CHECK(tour.chosen_trial == ewe::choose_dbscan_trial(tour.trials));
    CHECK(tour.dbscan.eps == tour.trials[tour.chosen_trial].eps);
    CHECK(tour.clustering.labels.size() == 40);
    for (const char* f : {"latent.npy", "latent_scatter.svg", "kmeans_elbow.csv", "kmeans_elbow.svg",
                          "kmeans_4_centres.png", "knn_distance.svg", "dbscan_search.csv", "dbscan_labels.npy",
                          "dbscan_clusters.svg"})
        CHECK_MESSAGE(fs::exists(dir / f), f);
    CHECK(ewe::io::read_csv(dir / "kmeans_elbow.csv").size() == 6);
    CHECK(ewe::io::read_csv(dir / "dbscan_search.csv").size() == 13);
    CHECK(table.str().find("  <- chosen") != std::string::npos);
    CHECK(table.str().find("chosen: eps ") != std::string::npos);
    CHECK(log.str().find("Encoded 40 images into 2 latent dimensions") != std::string::npos);
    fs::remove_all(dir);
}
