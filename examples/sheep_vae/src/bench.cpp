// `sheep_vae bench`: training steps of the seed model (RMSprop, fp32, or bf16 products
// with --product-precision bf16; loss 2*28*28*MSE + KL) on one fixed batch of procedural
// sheep; prints the median time per step and throughput (one JSON line with --json), with
// the estimated FLOP rate.
#include "common.hpp"
#include "validators.hpp"

#include <CLI/CLI.hpp>
#include <ewe/core/memory.hpp>
#include <ewe/cpu/thread_pool.hpp>
#include <ewe/data/procedural_sheep.hpp>
#include <ewe/io/json_line.hpp>
#include <ewe/train/step_timing.hpp>

#include <string>

namespace sheep {

namespace {

struct BenchOptions {
    std::string device = "cpu";
    int threads = 0;
    std::string product_precision = "fp32";
    std::int64_t batch = 8;
    std::int64_t steps = 20;
    std::int64_t warmup = 3;
    std::uint64_t seed = 42;
    bool json = false;
};

int run_bench(const BenchOptions& o, const Console& io) {
    const ewe::Device device = parse_device(o.device);
    ewe::ContextOptions context_options;
    context_options.threads = o.threads;
    context_options.cpu_product_precision = *ewe::cpu_product_precision_named(o.product_precision);
    ewe::Context ctx(device, context_options);
    ewe::SheepVae<float> vae =
        ewe::sheep_vae_for_batch<float>(ctx, ewe::SheepVaeOptions{}, o.batch, o.seed, "bench --batch", kRunNames);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossOptions{}, o.batch);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), {.lr = 1e-3});
    const auto bytes = ewe::procedural_sheep(o.batch, o.seed);
    const Bitmaps host = bitmaps_from_bytes(bytes.data(), o.batch, "procedural");
    const ewe::Tensor<float> x = host.images.to(device);

    const ewe::StepTimes t = ewe::time_steps_on_one_batch<float>(ctx, vae, loss, optimizer, x.view(), o.warmup, o.steps);
    const double median = t.median_ms;
    const double samples_per_s = double(o.batch) / (median / 1e3);
    const double gflop_per_s = ewe::training_step_flops(vae, o.batch) / (median / 1e3) / 1e9;
    if (o.json) {
        ewe::io::JsonLine j;
        j.add("benchmark", "sheep_vae_train_step")
            .add("device", std::string(ewe::to_string(device)))
            .add("batch", o.batch)
            .add("steps", o.steps)
            .add("warmup", o.warmup)
            .add("threads", device == ewe::Device::cpu ? ewe::cpu::thread_count(ctx) : 0)
            .add("product_precision", o.product_precision)
            .add("ms_per_step", median)
            .add("ms_min", t.min_ms)
            .add("ms_max", t.max_ms)
            .add("samples_per_s", samples_per_s)
            .add("gflop_per_s_est", gflop_per_s)
            .add("final_loss", t.last_loss)
            .add("peak_rss_mb", double(ewe::peak_resident_memory()) / (1 << 20));
        print(io.out, "%s\n", j.str().c_str());
    } else {
        print(io.out, "sheep VAE training step on %s, batch %lld, %lld steps (%lld warmup), %d threads%s\n",
              ewe::to_string(device), (long long)o.batch, (long long)o.steps, (long long)o.warmup, ewe::cpu::thread_count(ctx),
              o.product_precision == "bf16" ? ", bf16 products" : "");
        print(io.out, "  median %.2f ms/step (min %.2f, max %.2f), %.1f samples/s, ~%.1f GFLOP/s, peak RSS %.0f MiB\n",
              median, t.min_ms, t.max_ms, samples_per_s, gflop_per_s, double(ewe::peak_resident_memory()) / (1 << 20));
    }
    return 0;
}

}  // namespace

Command add_bench_command(CLI::App& app, const Console& io) {
    const auto options = std::make_shared<BenchOptions>();
    BenchOptions& o = *options;
    CLI::App* c = app.add_subcommand("bench", "Time training steps of the seed model on a fixed batch");
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_option("--threads", o.threads, "CPU threads (0: OpenMP's default, e.g. OMP_NUM_THREADS)")->check(number_in(0, 4096));
    c->add_option("--product-precision", o.product_precision, kProductPrecisionHelp)->capture_default_str()->check(product_precision_names());
    c->add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(number_in(1, 1 << 20));
    c->add_option("--steps", o.steps, "Timed steps")->capture_default_str()->check(number_in(1, 1 << 30));
    c->add_option("--warmup", o.warmup, "Untimed steps first")->capture_default_str()->check(number_in(0, 1 << 30));
    c->add_option("--seed", o.seed, "Seed of the weights and the batch")->capture_default_str();
    c->add_flag("--json", o.json, "Print one JSON line");
    return [options, io] { return run_bench(*options, io); };
}

}  // namespace sheep
