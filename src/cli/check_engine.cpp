// `switchyard check-engine`: does the llama.cpp build run on this CPU and compute right?
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "compress/engine_check.h"
#include "support/error.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <llama.h>

#include <filesystem>
#include <sstream>

namespace switchyard::cli {

namespace {

// llama.cpp's system info ("CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | ...") reduced to what is on.
std::string instruction_sets() {
    std::istringstream fields(llama_print_system_info());
    std::string on;
    for (std::string field; std::getline(fields, field, '|');) {
        const auto eq = field.find(" = 1");
        if (eq == std::string::npos) continue;
        std::string name = field.substr(0, eq);
        if (const auto colon = name.rfind(": "); colon != std::string::npos) name = name.substr(colon + 2);
        name.erase(0, name.find_first_not_of(' '));
        on += (on.empty() ? "" : " ") + name;
    }
    return on.empty() ? "none reported" : on;
}

}  // namespace

void add_check_engine(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "check-engine",
        "Check that the llama.cpp engine runs on this CPU and computes right: quantize a synthetic model to "
        "Q8_0, Q4_0, Q4_K_S and IQ4_NL and compare each with F32 (scripts/setup.sh runs it once per engine build)");
    auto dir = std::make_shared<std::string>();
    auto threads = std::make_shared<int>(0);
    cmd->add_option("--work-dir", *dir,
                    "Keep the models and reference here (default: a temporary folder, removed after)");
    add_threads(*cmd, *threads, "at least 4 when 0, so that per-thread CPU state is checked too");
    cmd->callback([dir, threads] {
        const bool temporary = dir->empty();
        const std::filesystem::path work = temporary
            ? std::filesystem::temp_directory_path() / fmt::format("switchyard-check-{}", getpid())
            : std::filesystem::path(*dir);
        fmt::print("instruction sets: {}\n", instruction_sets());
        std::string failure;
        try {
            compress::check_engine({.work_dir = work, .threads = *threads}, [&](const compress::KernelCheck & c) {
                if (c.passed)
                    fmt::print("{:<7} ok    {} positions, mean KLD {:.5f}, top-1 agreement {:.1f}%\n", c.type,
                               c.positions, c.mean_kld, 100 * c.top1_agreement);
                else
                    failure = fmt::format("engine check failed on {}: {}", c.type, c.failure);
                std::fflush(stdout);
            });
        } catch (...) {
            if (temporary) std::filesystem::remove_all(work);
            throw;
        }
        if (temporary) std::filesystem::remove_all(work);
        if (!failure.empty()) throw Error(failure);
        fmt::print("engine check passed\n");
    });
}

}  // namespace switchyard::cli
