// The report section of an anomaly folder (add_anomaly_section in
// ewe/anomaly/score_report.hpp), read from a scores.csv written here by hand: the score
// behind the cutoff is the first whose drawings above the cutoff are its highest; with
// planted drawings every score's ROC AUC and precision@planted, the best named; a note
// naming the program for each missing file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include <ewe/anomaly/score_report.hpp>
#include <ewe/io/csv.hpp>
#include <ewe/io/html_report.hpp>

namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("ewe_test_score_report_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("add_anomaly_section: the score behind the cutoff, the planted drawings' ROC AUC and precision, notes") {
    const fs::path dir = temp_dir("scores");
    ewe::io::HtmlReport empty("t");
    ewe::anomaly::add_anomaly_section(empty, dir, "my_scores");
    CHECK(contains(empty.str(), "No " + (dir / "scores.csv").string() + " (written by my_scores)."));
    // neg_elbo puts a normal drawing (5) above a planted one (4): recon is the score behind the cutoff.
    ewe::io::write_csv(dir / "scores.csv", {{"index", "source", "planted", "neg_elbo", "recon", "above_cutoff"},
                                            {"0", "sheep.npy", "0", "5", "1", "0"},
                                            {"1", "sheep.npy", "0", "1", "2", "0"},
                                            {"2", "sheep.npy", "0", "2", "3", "0"},
                                            {"3", "sheep.npy", "0", "3", "4", "0"},
                                            {"0", "data/cat.npy", "1", "4", "9", "1"},
                                            {"1", "data/cat.npy", "1", "6", "8", "1"}});
    ewe::io::HtmlReport page("t");
    ewe::anomaly::add_anomaly_section(page, dir, "my_scores");
    const std::string html = page.str();
    CHECK(contains(html, "6 drawings scored with 2 scores (neg_elbo, recon). The cutoff on recon lies between 4 and 8: "
                         "2 drawings (33.3%) are above it."));
    CHECK(contains(html, "2 of them are planted drawings of another class (cat.npy). How well each score ranks them "
                         "above the 4 others"));
    CHECK(contains(html, "<tr><td>neg_elbo</td><td>0.8750</td><td>0.500</td></tr>"));
    CHECK(contains(html, "<tr class=\"marked\"><td>recon</td><td>1.0000</td><td>1.000</td></tr>"));
    CHECK(contains(html, "The score that separates the planted drawings best here is recon (ROC AUC 1.0000)."));
    // The chosen score's histogram first, with the cutoff.
    CHECK(html.find("histogram_recon.svg") < html.find("histogram_neg_elbo.svg"));
    CHECK(contains(html, "No " + (dir / "above_cutoff.png").string() + " (written by my_scores)."));
    fs::remove_all(dir);
}
