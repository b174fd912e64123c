// `sheep_vae generate`: decodes latent points into a PNG sheet of drawings (black ink
// on white): draws around --center with standard deviation --sd (default: the prior
// N(0, I)), or, with --grid, a regular grid over [-range, range]^2 of a 2-D latent
// space (the post's "sheep manifold" picture).
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <ewe/io/npy.hpp>
#include <ewe/models/vae_inference.hpp>

namespace sheep {

namespace {

struct GenerateOptions {
    std::string checkpoint;
    std::string center;
    double sd = 1.0;
    std::int64_t count = 64;
    bool grid = false;
    std::int64_t grid_size = 15;
    double range = 3.0;
    std::int64_t columns = 0;
    std::uint64_t seed = 1;
    std::string device = "cpu";
    std::string out = "sheep.png";
    std::string save_latent;
};

int run_generate(const GenerateOptions& o, const Console& io) {
    ewe::TrainedVae<float> m = load_model(o.checkpoint, parse_device(o.device));
    const std::int64_t d = m.checkpoint.model_options.latent;
    std::vector<float> z;
    std::int64_t columns = o.columns;
    if (o.grid) {
        if (d != 2)
            fail("--grid: needs a 2-D latent space, but ", o.checkpoint, " has ", d, " latent dimensions (use --center/--sd)");
        if (!o.center.empty()) fail("--grid and --center exclude each other");
        z = ewe::latent_grid<float>(o.grid_size, o.range);
        if (columns == 0) columns = o.grid_size;
    } else {
        std::vector<double> center(std::size_t(d), 0.0);
        if (!o.center.empty()) {
            center = parse_numbers(o.center, "--center");
            if (std::int64_t(center.size()) != d)
                fail("--center: ", o.checkpoint, " has a ", d, "-dimensional latent space, but --center gives ",
                     center.size(), " numbers ('", o.center, "')");
        }
        z = ewe::latent_draws<float>(o.count, center, o.sd, o.seed);
        if (columns == 0) columns = std::int64_t(std::ceil(std::sqrt(double(o.count))));
    }
    const std::vector<float> images = ewe::decode<float>(*m.ctx, *m.vae, z);
    std::vector<const float*> tiles;
    for (std::size_t i = 0; i < images.size(); i += kPixels) tiles.push_back(images.data() + i);
    write_sheet(o.out, tiles, int(columns));
    if (!o.save_latent.empty())
        ewe::io::write_npy<float>(o.save_latent, z.data(), ewe::Shape{std::int64_t(z.size()) / d, d});
    print(io.err, "Wrote %zu drawings to %s\n", tiles.size(), o.out.c_str());
    return 0;
}

}  // namespace

Command add_generate_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<GenerateOptions>();
    GenerateOptions& o = *options;
    CLI::App* c = app.add_subcommand("generate", "Decode latent points into a PNG sheet of sheep");
    c->add_option("--checkpoint", o.checkpoint, "checkpoint.safetensors written by train")->required();
    c->add_option("--center", o.center, "Latent centre x,y,... (default: the origin)");
    c->add_option("--sd", o.sd, "Standard deviation around the centre")->capture_default_str()->check(non_negative());
    c->add_option("--count", o.count, "Number of drawings")->capture_default_str()->check(number_in(1, 100000));
    c->add_flag("--grid", o.grid, "A grid over [-range, range]^2 instead (2-D latent spaces)");
    c->add_option("--grid-size", o.grid_size, "Grid points per side")->capture_default_str()->check(number_in(1, 200));
    c->add_option("--range", o.range, "Half-width of the grid")->capture_default_str()->check(positive());
    c->add_option("--columns", o.columns, "Drawings per row (default: about square)")->check(non_negative());
    c->add_option("--seed", o.seed, "Seed of the latent draws")->capture_default_str();
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_option("--out", o.out, "Output PNG")->capture_default_str();
    c->add_option("--save-latent", o.save_latent, "Also write the latent points to this .npy");
    return [options, io] { return run_generate(*options, io); };
}

}  // namespace sheep
