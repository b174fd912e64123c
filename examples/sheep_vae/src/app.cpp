// sheep_vae_main: the sheep_vae program (summary, bench, train, generate, anomalies,
// explore, sweep, report, each with --help) writing to the streams it is given. Errors are ewe::Error
// (or CLI11 parse errors): printed to `err` with a non-zero exit code, never a crash; an
// allocation that fails (std::bad_alloc) is reported with the subcommand that ran out of memory.
#include "common.hpp"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>
#include <map>
#include <new>
#include <string>

int sheep_vae_main(int argc, char** argv, std::ostream& out, std::ostream& err) {
    const sheep::Console io{out, err, &err == &std::cerr && isatty(2) != 0};
    CLI::App app{"sheep_vae: a variational autoencoder for Quick, Draw! sheep (the 'sheep in latent space' "
                 "experiment) built on ewe"};
    app.require_subcommand(1);
    std::map<std::string, sheep::Command> commands;
    app.add_subcommand("summary", "Print the Keras-style summaries of the VAE and its decoder");
    commands["summary"] = [&] {
        ewe::Context ctx(ewe::Device::cpu);
        ewe::SheepVae<float> vae(ctx, ewe::SheepVaeOptions{}, 1, 0);
        out << vae.summary() << "\n" << vae.decoder_summary();
        return 0;
    };
    commands["bench"] = sheep::add_bench_command(app, io);
    commands["train"] = sheep::add_train_command(app, io);
    commands["generate"] = sheep::add_generate_command(app, io);
    commands["anomalies"] = sheep::add_anomalies_command(app, io);
    commands["explore"] = sheep::add_explore_command(app, io);
    commands["sweep"] = sheep::add_sweep_command(app, io);
    commands["report"] = sheep::add_report_command(app, io);
    if (argc > 1 && argv[1][0] != '-' && commands.count(argv[1]) == 0) {
        err << "sheep_vae: unknown subcommand '" << argv[1]
            << "' (expected summary, bench, train, generate, anomalies, explore, sweep or report; see --help)\n";
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e, out, err);
    }
    const std::string command = app.get_subcommands().front()->get_name();
    try {
        return commands.at(command)();
    } catch (const ewe::Error& e) {
        err << "sheep_vae: error: " << e.what() << "\n";
        return 1;
    } catch (const std::bad_alloc&) {
        err << "sheep_vae: error: " << command << " ran out of memory (an allocation failed; the model is checked "
            << "up front, so the data or an output was too large: try a smaller --limit or --batch)\n";
        return 1;
    } catch (const std::exception& e) {
        err << "sheep_vae: unexpected error: " << e.what() << "\n";
        return 1;
    }
}
