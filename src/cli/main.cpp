// switchyard: compress the model you have, or switch to a smaller one? Measure, decide, serve.
#include "cli/commands.h"
#include "support/error.h"
#include "support/version.h"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>

int main(int argc, char ** argv) {
    CLI::App app{
        "switchyard: compress the model you have, or switch to a smaller one?\n"
        "Measures both paths on your own tasks, decides with explicit rules, and serves the result."};
    app.set_version_flag("--version",
                         std::string("switchyard ") + switchyard::kVersion + ", engine " + switchyard::kEngineVersion);
    app.require_subcommand(1);
    int verbosity = 0;
    app.add_flag("-v,--verbose", verbosity,
                 "Log more (-v: engine warnings and errors, -vv: everything llama.cpp says)");
    app.parse_complete_callback([&] {
        auto logger = spdlog::stderr_color_mt("switchyard");
        spdlog::set_default_logger(logger);
        spdlog::set_pattern("[%l] %v");
        spdlog::set_level(verbosity >= 2       ? spdlog::level::trace
                              : verbosity == 1 ? spdlog::level::debug
                                               : spdlog::level::warn);
    });

    switchyard::cli::add_inspect(app);
    switchyard::cli::add_generate(app);
    switchyard::cli::add_quantize(app);
    switchyard::cli::add_calibrate(app);
    switchyard::cli::add_prune(app);
    switchyard::cli::add_awq(app);
    switchyard::cli::add_mix(app);
    switchyard::cli::add_eval(app);
    switchyard::cli::add_tasks(app);
    switchyard::cli::add_plan(app);
    switchyard::cli::add_serve(app);
    switchyard::cli::add_check_engine(app);
    switchyard::cli::add_make_model(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e);
    } catch (const switchyard::Error & e) {
        std::fflush(stdout);
        std::fprintf(stderr, "switchyard: error: %s\n", e.what());
        return 1;
    } catch (const std::exception & e) {
        std::fflush(stdout);
        std::fprintf(stderr, "switchyard: internal error: %s\n", e.what());
        return 70;
    }
    return 0;
}
