// The sheep_vae program as a function, sheep_vae_main(argc, argv), so that tests run
// it in-process. Subcommands: summary, bench, train, generate, anomalies, explore
// (each with --help). Errors are ewe::Error (or CLI11 parse errors): printed to
// stderr with a non-zero exit code, never a crash.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "common.hpp"
#include "bench.hpp"
#include "train.hpp"
#include "generate.hpp"
#include "anomalies.hpp"
#include "explore.hpp"

inline int sheep_vae_main(int argc, char** argv) {
    CLI::App app{"sheep_vae: a variational autoencoder for Quick, Draw! sheep (the 'sheep in latent space' "
                 "experiment) built on ewe"};
    app.require_subcommand(1);
    sheep::BenchOptions bench;
    sheep::TrainOptions train;
    sheep::GenerateOptions generate;
    sheep::AnomalyOptions anomalies;
    sheep::ExploreOptions explore;
    CLI::App* summary_cmd = app.add_subcommand("summary", "Print the Keras-style summaries of the VAE and its decoder");
    sheep::add_bench_command(app, bench);
    sheep::add_train_command(app, train);
    sheep::add_generate_command(app, generate);
    sheep::add_anomalies_command(app, anomalies);
    sheep::add_explore_command(app, explore);
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) known |= argc > 1 && sub->get_name() == argv[1];
    if (argc > 1 && argv[1][0] != '-' && !known) {
        std::fprintf(stderr, "sheep_vae: unknown subcommand '%s' (expected summary, bench, train, generate, "
                     "anomalies or explore; see --help)\n", argv[1]);
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        const std::string cmd = app.get_subcommands().front()->get_name();
        if (cmd == "summary") {
            ewe::Context ctx(ewe::Device::cpu);
            ewe::SheepVae<float> vae(ctx, ewe::SheepVaeConfig{}, 1, 0);
            std::printf("%s\n%s", vae.summary().c_str(), vae.decoder_summary().c_str());
            (void)summary_cmd;
            return 0;
        }
        if (cmd == "bench") return sheep::run_bench(bench);
        if (cmd == "train") return sheep::run_train(train);
        if (cmd == "generate") return sheep::run_generate(generate);
        if (cmd == "anomalies") return sheep::run_anomalies(anomalies);
        if (cmd == "explore") return sheep::run_explore(explore);
        std::fprintf(stderr, "sheep_vae: unknown subcommand %s\n", cmd.c_str());
        return 2;
    } catch (const ewe::Error& e) {
        std::fprintf(stderr, "sheep_vae: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sheep_vae: unexpected error: %s\n", e.what());
        return 1;
    }
}
