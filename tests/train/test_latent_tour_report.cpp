// The report sections of a latent tour's folder (add_kmeans_section, add_dbscan_section in
// ewe/train/run_report.hpp), read from files written here by hand: the elbow's inertia
// quoted at the chosen k and the last one; the DBSCAN search's ranges, the kept
// clustering's clusters, noise and sizes, its trials marked at the top of the table and
// the others by clusters (most first); a note naming the program for each missing file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <ewe/io/csv.hpp>
#include <ewe/io/html_report.hpp>
#include <ewe/io/npy.hpp>
#include <ewe/train/run_report.hpp>

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("ewe_test_tour_report_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("add_kmeans_section: the elbow quoted at k = 1, 2, 5, 10, 20 and the last k; notes for missing files") {
    const fs::path dir = temp_dir("kmeans");
    ewe::io::HtmlReport empty("t");
    ewe::add_kmeans_section(empty, dir, "my_tour");
    CHECK(contains(empty.str(), "No " + (dir / "latent_scatter.svg").string() + " (written by my_tour)."));
    CHECK(contains(empty.str(), "No kmeans_K_centres.png in " + dir.string() + " (written by my_tour)."));
    CHECK_FALSE(contains(empty.str(), "Inertia"));
    std::vector<std::vector<std::string>> elbow = {{"k", "inertia"}};
    for (int k = 1; k <= 6; ++k) elbow.push_back({std::to_string(k), std::to_string(120.0 / k)});
    ewe::io::write_csv(dir / "kmeans_elbow.csv", elbow);
    ewe::io::HtmlReport page("t");
    ewe::add_kmeans_section(page, dir, "my_tour");
    CHECK(contains(page.str(), "Inertia (sum of squared distances to the nearest centre) for k = 1..6: 1: 120; 2: 60; "
                               "5: 24; 6: 20. The bend of the curve is where more centres stop paying off."));
    fs::remove_all(dir);
}

TEST_CASE("add_dbscan_section: the search's ranges, the kept clustering and its trials marked first") {
    const fs::path dir = temp_dir("dbscan");
    ewe::io::HtmlReport empty("t");
    ewe::add_dbscan_section(empty, dir, "my_tour");
    CHECK(contains(empty.str(), "No " + (dir / "dbscan_search.csv").string() + " (written by my_tour)."));
    ewe::io::write_csv(dir / "dbscan_search.csv", {{"trial", "eps", "min_pts", "clusters", "noise"},
                                                   {"1", "0.5", "3", "2", "4"},
                                                   {"2", "0.25", "5", "3", "10"},
                                                   {"3", "0.75", "4", "2", "4"},
                                                   {"4", "0.3", "4", "3", "7"}});
    ewe::io::HtmlReport search_only("t");
    ewe::add_dbscan_section(search_only, dir, "my_tour");
    const std::string without_labels = search_only.str();
    CHECK(contains(without_labels, "A random search over 4 (eps, minPts) pairs, eps in [0.25, 0.75], minPts in [3, 5]. "
                                   "The table lists the trials"));
    CHECK_FALSE(contains(without_labels, "class=\"marked\""));
    // Most clusters first, then fewest noise points: trials 4, 2, 1, 3.
    CHECK(without_labels.find("<td>4</td><td>0.3</td>") < without_labels.find("<td>2</td><td>0.25</td>"));
    CHECK(without_labels.find("<td>2</td><td>0.25</td>") < without_labels.find("<td>1</td><td>0.5</td>"));
    CHECK(without_labels.find("<td>1</td><td>0.5</td>") < without_labels.find("<td>3</td><td>0.75</td>"));

    const std::vector<double> labels = {0, 0, 0, 1, 1, -1, -1, -1, -1};
    ewe::io::write_npy(dir / "dbscan_labels.npy", labels.data(), ewe::Shape{9});
    ewe::io::HtmlReport page("t");
    ewe::add_dbscan_section(page, dir, "my_tour");
    const std::string html = page.str();
    CHECK(contains(html, "The clustering kept (dbscan_labels.npy) has 2 clusters and 4 noise points among 9 drawings; "
                         "cluster sizes 3, 2. Marked at the top of the table, the trials with that outcome: 1, 3."));
    CHECK(contains(html, "<tr class=\"marked\"><td>1</td>"));
    CHECK(contains(html, "<tr class=\"marked\"><td>3</td>"));
    CHECK(html.find("<td>3</td><td>0.75</td>") < html.find("<td>4</td><td>0.3</td>"));
    CHECK(contains(html, "No " + (dir / "dbscan_clusters.svg").string() + " (written by my_tour)."));

    const std::vector<double> other = {0, 1, 2, 2, -1};  // an outcome no trial had
    ewe::io::write_npy(dir / "dbscan_labels.npy", other.data(), ewe::Shape{5});
    ewe::io::HtmlReport chosen_elsewhere("t");
    ewe::add_dbscan_section(chosen_elsewhere, dir, "my_tour");
    CHECK(contains(chosen_elsewhere.str(), "has 3 clusters and 1 noise points among 5 drawings; cluster sizes 2, 1, 1. "
                                           "No trial of the search had that outcome"));
    fs::remove_all(dir);
}
