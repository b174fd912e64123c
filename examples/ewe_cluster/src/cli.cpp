// The ewe_cluster command-line tool as a function (include/ewe_cluster/ewe_cluster.hpp
// says how to call it): CLI11 options, the .npy input checks, DBSCAN or k-means, the
// int32 labels file and the printed line (JSON with --json).
#include "ewe_cluster/ewe_cluster.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <new>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "ewe/cluster/dbscan.hpp"
#include "ewe/cluster/kmeans.hpp"
#include "ewe/core/error.hpp"
#include "ewe/io/npy.hpp"

namespace ewe_cluster {

namespace {

ewe::Tensor<double> read_points(const std::string& path) {
    const ewe::io::NpyArray array = ewe::io::read_npy(path);
    if (array.dtype != ewe::io::DType::f32 && array.dtype != ewe::io::DType::f64)
        ewe::fail("--input ", path, ": expected float32 or float64 data, found ", ewe::io::to_string(array.dtype));
    if (array.shape.rank() != 2)
        ewe::fail("--input ", path, ": expected an N x D array (2 dimensions), found shape ", array.shape);
    if (array.shape[1] < 1) ewe::fail("--input ", path, ": expected D >= 1 columns, found shape ", array.shape);
    if (array.shape[1] > std::numeric_limits<int>::max())
        ewe::fail("--input ", path, ": expected at most ", std::numeric_limits<int>::max(), " columns (D), found ",
                  array.shape[1]);
    return ewe::io::npy_to_tensor<double>(array, "--input " + path);
}

}  // namespace

int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
    CLI::App app{"ewe_cluster: DBSCAN and k-means on N x D .npy files"};
    app.require_subcommand(1);
    std::string input, output;
    bool json = false;
    double eps = 0;
    std::int64_t min_pts = 0, k = 0;
    int n_init = 1;
    std::uint64_t seed = 0;

    CLI::App* db = app.add_subcommand("dbscan", "exact DBSCAN (scikit-learn labels; noise = -1)");
    db->add_option("--input", input, "N x D float32/float64 .npy")->required();
    db->add_option("--eps", eps, "neighbourhood radius (distance <= eps)")->required();
    db->add_option("--min-pts", min_pts, "points within eps, the point itself included, to be core")->required();
    db->add_option("--out", output, "write labels here (int32 .npy)");
    db->add_flag("--json", json, "print one JSON line");

    CLI::App* km = app.add_subcommand("kmeans", "k-means (k-means++ seeding, Hamerly/Lloyd iterations)");
    km->add_option("--input", input, "N x D float32/float64 .npy")->required();
    km->add_option("--k", k, "number of clusters")->required();
    km->add_option("--n-init", n_init, "restarts; the lowest inertia wins");
    km->add_option("--seed", seed, "random seed");
    km->add_option("--out", output, "write labels here (int32 .npy)");
    km->add_flag("--json", json, "print one JSON line");

    if (argc >= 2 && argv[1][0] != '-' && std::string(argv[1]) != "dbscan" && std::string(argv[1]) != "kmeans") {
        err << "ewe_cluster: unknown command '" << argv[1] << "': expected dbscan or kmeans (see --help)\n";
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e, out, err);
    }

    try {
        const ewe::Tensor<double> x = read_points(input);
        const std::int64_t n = x.dim(0);
        const int d = static_cast<int>(x.dim(1));
        std::vector<std::int32_t> labels;
        std::ostringstream line;
        using clock = std::chrono::steady_clock;
        if (db->parsed()) {
            const auto t0 = clock::now();
            ewe::cluster::DbscanResult r = ewe::cluster::dbscan(x.data(), n, d, ewe::cluster::DbscanOptions{eps, min_pts});
            const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
            labels = std::move(r.labels);
            if (json)
                line << "{\"algorithm\": \"dbscan\", \"n\": " << n << ", \"d\": " << d << ", \"eps\": " << ewe::format_number(eps)
                     << ", \"min_pts\": " << min_pts << ", \"clusters\": " << r.n_clusters << ", \"noise\": " << r.n_noise
                     << ", \"seconds\": " << ewe::format_number(seconds) << "}";
            else
                line << "dbscan: " << n << " points, " << r.n_clusters << " clusters, " << r.n_noise << " noise, "
                     << seconds << " s";
        } else {
            const auto t0 = clock::now();
            ewe::cluster::KMeansResult r =
                ewe::cluster::kmeans(x.data(), n, d, ewe::cluster::KMeansOptions{}.set_k(k).set_n_init(n_init).set_seed(seed));
            const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
            labels = std::move(r.labels);
            if (json)
                line << "{\"algorithm\": \"kmeans\", \"n\": " << n << ", \"d\": " << d << ", \"k\": " << k
                     << ", \"inertia\": " << ewe::format_number(r.inertia) << ", \"iterations\": " << r.iterations
                     << ", \"seconds\": " << ewe::format_number(seconds) << "}";
            else
                line << "kmeans: " << n << " points, k = " << k << ", inertia " << r.inertia << ", " << r.iterations
                     << " iterations, " << seconds << " s";
        }
        if (!output.empty()) ewe::io::write_npy<std::int32_t>(output, labels.data(), ewe::Shape{n});
        out << line.str() << "\n";
        return 0;
    } catch (const std::bad_alloc&) {
        err << "ewe_cluster: error: " << (db->parsed() ? "dbscan" : "kmeans") << " on --input " << input
            << " ran out of memory (an allocation failed)\n";
        return 1;
    } catch (const std::exception& e) {
        err << "ewe_cluster: error: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace ewe_cluster
