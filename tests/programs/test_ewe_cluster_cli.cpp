// The ewe_cluster tool, run in-process through ewe_cluster::run: labels written as
// int32 .npy, JSON lines, and errors (never crashes) for bad files and arguments.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ewe_cluster/ewe_cluster.hpp>

#include "ewe/io/npy.hpp"

namespace fs = std::filesystem;

namespace {

struct Outcome {
    int status;
    std::string out, err;
};

Outcome cli(std::vector<std::string> args) {
    args.insert(args.begin(), "ewe_cluster");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    const int status = ewe_cluster::run(static_cast<int>(argv.size()), argv.data(), out, err);
    return {status, out.str(), err.str()};
}

struct Folder {
    fs::path path = fs::temp_directory_path() / ("ewe_test_cli_" + std::to_string(::getpid()));
    Folder() { fs::create_directories(path); }
    ~Folder() { fs::remove_all(path); }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace

TEST_CASE("dbscan and kmeans write int32 labels and print JSON") {
    Folder dir;
    // Two groups of three points on a line plus one far point, float32.
    const std::vector<float> x = {0, 0, 0.1f, 0, 0.2f, 0, 5, 5, 5.1f, 5, 5.2f, 5, 50, 50};
    ewe::io::write_npy(dir / "x.npy", x.data(), ewe::Shape{7, 2});

    Outcome r = cli({"dbscan", "--input", dir / "x.npy", "--eps", "0.15", "--min-pts", "2", "--out", dir / "db.npy", "--json"});
    CHECK(r.status == 0);
    CHECK(r.out.find("\"clusters\": 2") != std::string::npos);
    CHECK(r.out.find("\"noise\": 1") != std::string::npos);
    CHECK(r.out.find("\"seconds\": ") != std::string::npos);
    CHECK(r.out.find("\"eps\": 0.15,") != std::string::npos);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    ewe::io::NpyArray labels = ewe::io::read_npy(dir / "db.npy");
    CHECK(labels.dtype == ewe::io::DType::i32);
    CHECK(labels.shape == ewe::Shape{7});
    const ewe::Tensor<double> l = ewe::io::npy_to_tensor<double>(labels, "db.npy");
    const std::vector<double> expected = {0, 0, 0, 1, 1, 1, -1};
    for (int i = 0; i < 7; ++i) CHECK(l[i] == expected[i]);

    const std::vector<double> xd(x.begin(), x.end());
    ewe::io::write_npy(dir / "xd.npy", xd.data(), ewe::Shape{7, 2});
    r = cli({"kmeans", "--input", dir / "xd.npy", "--k", "3", "--n-init", "2", "--seed", "5", "--out", dir / "km.npy", "--json"});
    CHECK(r.status == 0);
    CHECK(r.out.find("\"inertia\": ") != std::string::npos);
    CHECK(r.out.find("\"iterations\": ") != std::string::npos);
    const ewe::Tensor<double> k = ewe::io::npy_to_tensor<double>(ewe::io::read_npy(dir / "km.npy"), "km.npy");
    CHECK(k[0] == k[1]);
    CHECK(k[3] == k[4]);
    CHECK(k[0] != k[3]);
    CHECK(k[6] != k[0]);

    r = cli({"dbscan", "--input", dir / "x.npy", "--eps", "0.15", "--min-pts", "2"});
    CHECK(r.status == 0);
    CHECK(r.out.find("2 clusters") != std::string::npos);
}

TEST_CASE("bad files and arguments give an error naming them") {
    Folder dir;
    const std::vector<std::int32_t> ints = {1, 2, 3, 4};
    ewe::io::write_npy(dir / "ints.npy", ints.data(), ewe::Shape{2, 2});
    const std::vector<float> flat = {1, 2, 3};
    ewe::io::write_npy(dir / "flat.npy", flat.data(), ewe::Shape{3});
    const std::vector<float> ok = {1, 2, 3, 4};
    ewe::io::write_npy(dir / "ok.npy", ok.data(), ewe::Shape{2, 2});
    { std::ofstream(dir / "junk.npy") << "not a numpy file at all"; }

    struct Case {
        std::vector<std::string> args;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {{"dbscan", "--input", dir / "missing.npy", "--eps", "1", "--min-pts", "2"}, "missing.npy"},
        {{"dbscan", "--input", dir / "junk.npy", "--eps", "1", "--min-pts", "2"}, "junk.npy"},
        {{"dbscan", "--input", dir / "ints.npy", "--eps", "1", "--min-pts", "2"}, "int32"},
        {{"dbscan", "--input", dir / "flat.npy", "--eps", "1", "--min-pts", "2"}, "N x D"},
        {{"dbscan", "--input", dir / "ok.npy", "--eps", "-1", "--min-pts", "2"}, "eps"},
        {{"dbscan", "--input", dir / "ok.npy", "--eps", "1", "--min-pts", "0"}, "min_pts"},
        {{"dbscan", "--input", dir / "ok.npy", "--eps", "abc", "--min-pts", "2"}, "--eps"},
        {{"dbscan", "--input", dir / "ok.npy", "--min-pts", "2"}, "--eps"},
        {{"kmeans", "--input", dir / "ok.npy", "--k", "3"}, "k must be"},
        {{"kmeans", "--input", dir / "ok.npy", "--k", "1", "--n-init", "0"}, "n_init"},
        {{"kmeans", "--input", dir / "ok.npy", "--k", "1", "--out", dir / "no/such/folder/l.npy"}, "l.npy"},
        {{"cluster"}, "cluster"},
        {{}, "subcommand"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.expected);
        const Outcome r = cli(c.args);
        CHECK(r.status != 0);
        CHECK((r.err + r.out).find(c.expected) != std::string::npos);
    }
    CHECK(cli({"--help"}).status == 0);
}

TEST_CASE("a column count beyond int (2^40 from the .npy header) is refused before any cast, naming file and count") {
    // tests/data/bad_npy/columns_2pow40.npy: shape (0, 1099511627776), float32, no data.
    const std::string file =
        (fs::path(__FILE__).parent_path().parent_path() / "data" / "bad_npy" / "columns_2pow40.npy").string();
    for (const char* command : {"dbscan", "kmeans"}) {
        CAPTURE(command);
        const Outcome r = std::string(command) == "dbscan"
                              ? cli({"dbscan", "--input", file, "--eps", "1", "--min-pts", "2"})
                              : cli({"kmeans", "--input", file, "--k", "2"});
        CHECK(r.status != 0);
        CHECK(r.err.find("--input " + file) != std::string::npos);
        CHECK(r.err.find("expected at most 2147483647 columns (D), found 1099511627776") != std::string::npos);
    }
}
