// `sheep_vae train`: the post's training run. RMSprop on 2*28*28*MSE + w*KL with KL
// annealing (w = 0 through epoch kl_start, then linear to 1 over kl_steep epochs),
// a per-epoch shuffle drawn from Philox(seed, epoch) so that --resume continues a run
// bit for bit, metrics.csv, TensorBoard events, a safetensors checkpoint per epoch
// and latent-space snapshots (.npy of the encoded means and an SVG scatter).
#pragma once

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include <ewe/io/csv.hpp>
#include <ewe/io/svg.hpp>
#include <ewe/io/tensorboard.hpp>

#include "common.hpp"
#include "model_io.hpp"

namespace sheep {

struct TrainOptions {
    std::string data;
    std::int64_t limit = 0;
    std::int64_t epochs = 30;
    std::int64_t batch = 8;
    std::int64_t latent = 2;
    double kl_start = 10, kl_steep = 10;
    double lr = 1e-3;
    std::uint64_t seed = 42;
    std::string device = "cpu";
    int threads = 0;
    std::string out = "sheep_vae_run";
    bool resume = false;
    std::string snapshots = "5,10,15,20";
    std::string reparam = "standard";
    bool quiet = false;
};

inline void add_train_command(CLI::App& app, TrainOptions& o) {
    CLI::App* c = app.add_subcommand("train", "Train the sheep VAE on Quick, Draw! bitmaps");
    c->add_option("--data", o.data, "Bitmaps .npy: uint8 (N, 784) or (N, 28, 28), or float32 in [0, 1] "
                  "(default: $EWE_DATA/sheep.npy, else procedural sheep)");
    c->add_option("--limit", o.limit, "Use only the first N drawings (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
    c->add_option("--epochs", o.epochs, "Epochs to train in total")->capture_default_str()->check(CLI::Range(1, 1000000));
    c->add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    c->add_option("--latent", o.latent, "Latent dimensions")->capture_default_str()->check(CLI::Range(1, 4096));
    c->add_option("--kl-start", o.kl_start, "KL weight is 0 through this epoch")->capture_default_str()->check(CLI::NonNegativeNumber);
    c->add_option("--kl-steep", o.kl_steep, "then rises linearly to 1 over this many epochs")->capture_default_str()->check(CLI::NonNegativeNumber);
    c->add_option("--lr", o.lr, "RMSprop learning rate")->capture_default_str()->check(CLI::PositiveNumber);
    c->add_option("--seed", o.seed, "Seed of weights, shuffles, dropout and sampling")->capture_default_str();
    c->add_option("--device", o.device, "cpu or cuda")->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
    c->add_option("--threads", o.threads, "CPU threads (0: OpenMP's default, e.g. OMP_NUM_THREADS)")->check(CLI::Range(0, 4096));
    c->add_option("--out", o.out, "Output folder")->capture_default_str();
    c->add_flag("--resume", o.resume, "Continue from OUT/checkpoint.safetensors (model, optimizer, position)");
    c->add_option("--snapshots", o.snapshots, "Epochs after which to save the latent space (comma-separated; '' for none)")
        ->capture_default_str();
    c->add_option("--reparam", o.reparam, "standard: z = mu + exp(logvar/2)*eps; post: z = mu + exp(logvar)*eps")
        ->capture_default_str()->check(CLI::IsMember({"standard", "post"}));
    c->add_flag("--quiet", o.quiet, "No progress bar");
}

// KL weight of epoch e (1-based).
inline double kl_weight(std::int64_t e, double kl_start, double kl_steep) {
    if (kl_steep <= 0) return double(e) > kl_start ? 1.0 : 0.0;
    return std::clamp((double(e) - kl_start) / kl_steep, 0.0, 1.0);
}

// The order of the n drawings in epoch e: Fisher-Yates driven by Philox(seed, stream
// 0x5huf, offset e), so any epoch's order is known without replaying earlier ones.
inline std::vector<std::int64_t> epoch_order(std::uint64_t seed, std::int64_t epoch, std::int64_t n) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) order[std::size_t(i)] = i;
    const ewe::PhiloxKey key{seed, 0x53485546u, std::uint64_t(epoch)};
    for (std::int64_t i = n - 1; i > 0; --i) {
        const std::uint64_t bits = std::uint64_t(ewe::philox_bits(key, std::uint64_t(2 * i))) << 32 |
                                   ewe::philox_bits(key, std::uint64_t(2 * i + 1));
        const std::int64_t j = std::int64_t(bits % std::uint64_t(i + 1));
        std::swap(order[std::size_t(i)], order[std::size_t(j)]);
    }
    return order;
}

inline void write_latent_snapshot(const fs::path& dir, std::int64_t epoch, const Encoded& enc) {
    char name[64];
    std::snprintf(name, sizeof name, "latent_epoch%03lld", (long long)epoch);
    const std::int64_t n = std::int64_t(enc.mean.size()) / enc.latent;
    ewe::io::write_npy<float>(dir / (std::string(name) + ".npy"), enc.mean.data(), ewe::Shape{n, enc.latent});
    std::vector<double> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n), 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
        x[std::size_t(i)] = enc.mean[std::size_t(i * enc.latent)];
        if (enc.latent > 1) y[std::size_t(i)] = enc.mean[std::size_t(i * enc.latent + 1)];
    }
    ewe::io::SvgPlot plot("Latent space after epoch " + std::to_string(epoch) + " (" + std::to_string(n) + " drawings)",
                          "z[0]", enc.latent > 1 ? "z[1]" : "0", 560, 520);
    plot.scatter(x, y, ewe::io::palette(0), {}, 1.6, 0.5).write(dir / (std::string(name) + ".svg"));
}

inline void write_loss_plot(const fs::path& dir) {
    const auto rows = ewe::io::read_csv(dir / "metrics.csv");
    std::vector<double> e, loss, recon, kl, w;
    for (std::size_t r = 1; r < rows.size(); ++r) {
        if (rows[r].size() < 6) continue;
        e.push_back(std::atof(rows[r][0].c_str()));
        loss.push_back(std::atof(rows[r][2].c_str()));
        recon.push_back(std::atof(rows[r][3].c_str()));
        kl.push_back(std::atof(rows[r][4].c_str()));
        w.push_back(std::atof(rows[r][5].c_str()));
    }
    ewe::io::SvgPlot plot("Training loss per epoch", "epoch", "mean per drawing");
    plot.line(e, loss, ewe::io::palette(0), "loss").line(e, recon, ewe::io::palette(1), "reconstruction");
    plot.write(dir / "loss.svg");
    ewe::io::SvgPlot klp("KL term and its annealed weight", "epoch", "value");
    klp.line(e, kl, ewe::io::palette(2), "KL (mean over latent dims)").line(e, w, ewe::io::palette(4), "KL weight");
    klp.write(dir / "kl.svg");
}

// Set by SIGINT while training: the current step finishes, the weights are saved and
// the program exits with status 130.
inline std::atomic<bool>& interrupt_requested() {
    static std::atomic<bool> flag{false};
    return flag;
}

// Installs the SIGINT handler for the lifetime of a training run.
class InterruptGuard {
public:
    InterruptGuard() {
        interrupt_requested().store(false);
        previous_ = std::signal(SIGINT, [](int) { interrupt_requested().store(true); });
    }
    ~InterruptGuard() { std::signal(SIGINT, previous_); }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

private:
    void (*previous_)(int) = SIG_DFL;
};

// After a step whose loss is not finite: the first place, in forward order, holding a
// NaN or Inf: a layer's output in that step's forward pass, else a parameter.
inline std::string first_nonfinite(ewe::SheepVae<float>& vae, std::int64_t m) {
    auto bad = [](ewe::TensorView<const float> t) {
        ewe::Tensor<float> host(t.shape());
        ewe::copy<float>(t, host.view());
        return !std::all_of(host.data(), host.data() + host.numel(), [](float v) { return std::isfinite(v); });
    };
    auto scan = [&](ewe::Sequential<float>& model, ewe::TensorView<const float> output) -> std::string {
        for (std::size_t i = 0; i + 1 < model.size(); ++i)
            if (bad(model.activation(i, m))) return "the output of layer '" + model[i].name() + "'";
        if (bad(output)) return "the output of layer '" + model[model.size() - 1].name() + "'";
        return {};
    };
    if (std::string where = scan(vae.encoder(), vae.encoded(m)); !where.empty()) return where;
    if (bad(vae.mean(m))) return "the output of layer 'z_mean'";
    if (bad(vae.log_var(m))) return "the output of layer 'z_log_var'";
    if (std::string where = scan(vae.decoder(), vae.reconstruction(m)); !where.empty()) return where;
    for (const ewe::ParameterInfo& info : vae.params().info())
        if (bad(vae.params().values().slice(info.offset, info.shape))) return "parameter '" + info.name + "'";
    return "the loss itself";
}

inline int run_train(const TrainOptions& o) {
    const ewe::Device device = parse_device(o.device);
    const fs::path dir = o.out;
    const fs::path checkpoint_path = dir / "checkpoint.safetensors";
    Bitmaps data = o.data.empty() ? default_bitmaps(o.limit, o.seed) : load_bitmaps(o.data, o.limit);
    const std::int64_t n = data.count();

    ewe::SheepVaeConfig config;
    config.latent = o.latent;
    config.reparam = o.reparam == "post" ? ewe::ReparamVariant::post : ewe::ReparamVariant::standard;
    TrainState state;
    state.seed = o.seed;
    state.batch = o.batch;
    state.lr = o.lr;
    state.kl_start = o.kl_start;
    state.kl_steep = o.kl_steep;
    state.samples = n;
    state.data = data.source;
    std::unique_ptr<Checkpoint> resume_from;
    if (o.resume && fs::exists(checkpoint_path)) {
        resume_from = std::make_unique<Checkpoint>(read_checkpoint(checkpoint_path, "--resume"));
        config = resume_from->config;
        state = resume_from->state;
        if (state.samples != n)
            fail("--resume: ", checkpoint_path.string(), " was trained on ", state.samples, " drawings (", state.data,
                 "), this run has ", n, " (", data.source, "); use the same --data and --limit");
        std::fprintf(stderr, "Resuming from %s after epoch %lld (%lld steps); model, seed, batch, lr and KL schedule "
                     "come from the checkpoint\n", checkpoint_path.string().c_str(), (long long)state.epoch,
                     (long long)state.iterations);
    } else if (o.resume) {
        std::fprintf(stderr, "--resume: no %s yet, starting a new run\n", checkpoint_path.string().c_str());
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("--out: cannot create ", dir.string(), ": ", ec.message());

    ewe::ContextOptions context_options;
    context_options.threads = o.threads;
    ewe::Context ctx(device, context_options);
    ewe::SheepVae<float> vae(ctx, config, state.batch, state.seed);
    ewe::VaeLoss<float> loss(ctx, ewe::VaeLossConfig{}, state.batch);
    ewe::Rmsprop<float> optimizer(ctx, vae.params(), state.lr);
    if (resume_from) load_weights(*resume_from, vae, &optimizer);
    resume_from.reset();

    // metrics.csv: a resumed run keeps the rows of the epochs it continues from.
    std::vector<std::vector<std::string>> kept;
    if (state.epoch > 0 && fs::exists(dir / "metrics.csv"))
        for (auto& row : ewe::io::read_csv(dir / "metrics.csv"))
            if (!row.empty() && row[0] != "epoch" && std::atoll(row[0].c_str()) <= state.epoch) kept.push_back(row);
    {
        ewe::io::CsvWriter csv(dir / "metrics.csv");
        csv.row({"epoch", "step", "loss", "recon", "kl", "kl_weight", "seconds"});
        for (auto& row : kept) csv.row(row);
    }
    ewe::io::CsvWriter csv(dir / "metrics.csv", true);
    ewe::io::EventWriter events(dir / "logs", wall_time());

    std::vector<std::int64_t> snapshots;
    if (!o.snapshots.empty())
        for (double e : parse_numbers(o.snapshots, "--snapshots")) snapshots.push_back(std::int64_t(e));

    if (!o.quiet)
        std::fprintf(stderr, "Training on %lld drawings (%s), batch %lld, epochs %lld..%lld, %s, seed %llu, %lld parameters\n",
                     (long long)n, data.source.c_str(), (long long)state.batch, (long long)state.epoch + 1,
                     (long long)o.epochs, ewe::to_string(device), (unsigned long long)state.seed,
                     (long long)vae.params().total_count());

    const InterruptGuard interrupt_guard;
    const std::int64_t b = state.batch, steps = (n + b - 1) / b;
    ewe::Tensor<float> host_batch(ewe::Shape{b, kSide, kSide, 1});
    ewe::Tensor<float> x(ewe::Shape{b, kSide, kSide, 1}, device);
    double previous_weight = state.epoch > 0 ? kl_weight(state.epoch, state.kl_start, state.kl_steep) : -1.0;
    for (std::int64_t epoch = state.epoch + 1; epoch <= o.epochs; ++epoch) {
        const double w = kl_weight(epoch, state.kl_start, state.kl_steep);
        if (w != previous_weight)
            std::fprintf(stderr, "KL weight: %g (epoch %lld)\n", w, (long long)epoch);
        previous_weight = w;
        loss.set_kl_weight(w);
        if (!o.quiet) std::fprintf(stderr, "Epoch %lld/%lld\n", (long long)epoch, (long long)o.epochs);
        const std::vector<std::int64_t> order = epoch_order(state.seed, epoch, n);
        ProgressBar bar(steps, !o.quiet);
        const double t0 = now_seconds();
        double sum_loss = 0, sum_recon = 0, sum_kl = 0;
        std::int64_t seen = 0;
        for (std::int64_t s = 0; s < steps; ++s) {
            const std::int64_t m = std::min(b, n - s * b);
            for (std::int64_t r = 0; r < m; ++r)
                std::copy_n(data.row(order[std::size_t(s * b + r)]), kPixels, host_batch.data() + r * kPixels);
            ewe::copy<float>(host_batch.view().leading(m), x.view().leading(m));
            ewe::train_step<float>(ctx, vae, loss, optimizer, x.view().leading(m));
            const ewe::VaeLossValues v = loss.values();
            if (!std::isfinite(v.total))
                fail("train: the loss became ", v.total, " at epoch ", epoch, ", step ", s + 1, "; first non-finite: ",
                     first_nonfinite(vae, m), ". ", checkpoint_path.string(),
                     " keeps the last good epoch (diverged; try a smaller --lr)");
            sum_loss += v.total * double(m);
            sum_recon += v.reconstruction * double(m);
            sum_kl += v.kl * double(m);
            seen += m;
            char metrics[160];
            std::snprintf(metrics, sizeof metrics, "loss: %.4f - recon: %.4f - kl: %.4f", sum_loss / double(seen),
                          sum_recon / double(seen), sum_kl / double(seen));
            bar.update(s + 1, metrics);
            if (interrupt_requested().load()) {
                TrainState now = state;
                now.iterations = optimizer.iterations();
                save_checkpoint(dir / "interrupted.safetensors", vae, optimizer, now);
                std::fprintf(stderr,
                             "\ntrain: interrupted at epoch %lld, step %lld: the current weights are in %s; %s keeps "
                             "epoch %lld, and --resume continues from it\n",
                             (long long)epoch, (long long)(s + 1), (dir / "interrupted.safetensors").string().c_str(),
                             checkpoint_path.string().c_str(), (long long)state.epoch);
                return 130;
            }
        }
        const double seconds = now_seconds() - t0;
        const double mean_loss = sum_loss / double(n), mean_recon = sum_recon / double(n), mean_kl = sum_kl / double(n);
        state.epoch = epoch;
        state.iterations = optimizer.iterations();
        csv.row({std::to_string(epoch), std::to_string(state.iterations), ewe::io::csv_number(mean_loss),
                 ewe::io::csv_number(mean_recon), ewe::io::csv_number(mean_kl), ewe::io::csv_number(w),
                 ewe::io::csv_number(seconds)});
        const double wt = wall_time();
        events.add_scalar("epoch/loss", mean_loss, epoch, wt);
        events.add_scalar("epoch/reconstruction", mean_recon, epoch, wt);
        events.add_scalar("epoch/kl", mean_kl, epoch, wt);
        events.add_scalar("epoch/kl_weight", w, epoch, wt);
        events.add_scalar("epoch/seconds", seconds, epoch, wt);
        if (std::find(snapshots.begin(), snapshots.end(), epoch) != snapshots.end())
            write_latent_snapshot(dir, epoch, encode(ctx, vae, data));
        save_checkpoint(checkpoint_path, vae, optimizer, state);
    }
    write_loss_plot(dir);
    if (!o.quiet) std::fprintf(stderr, "Wrote %s (checkpoint, metrics.csv, logs/, loss.svg)\n", dir.string().c_str());
    return 0;
}

}  // namespace sheep
