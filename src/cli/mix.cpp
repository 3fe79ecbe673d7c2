// `switchyard compare`, `switchyard sensitivity` and `switchyard mix`: how far a variant drifts from
// its original, which tensors suffer most from quantization, and a per-tensor mix of types chosen
// from that under a size budget.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "compress/mix.h"
#include "eval/results_store.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace switchyard::cli {

namespace {

void add_data_options(CLI::App * cmd, compress::DriftData & d) {
    cmd->add_option("--data", d.files, "Text to measure on (your own domain's text)")->required();
    cmd->add_option("--chunks", d.chunks, "Text chunks to measure on")->capture_default_str();
    cmd->add_option("--skip-chunks", d.skip_chunks, "Skip this many chunks first (e.g. those used for calibration)");
    add_chunk_context(*cmd, d.context);
    cmd->add_flag("--normalize", d.normalize, "Collapse whitespace and drop characters the vocabulary cannot encode");
    add_threads(*cmd, d.threads);
}

// Where trials are kept and read back (sensitivity and mix).
void add_results_options(CLI::App * cmd, compress::DriftData & d) {
    d.results = eval::default_results_path();
    cmd->add_option(
           "--results", d.results,
           "Results store (SQLite): trials measured before on this model and text are read back, not run again")
        ->capture_default_str();
    cmd->add_flag_callback(
        "--no-results", [&d] { d.results.clear(); }, "Neither reuse nor record trials");
}

void add_compare(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "compare",
        "Measure how far a variant's predictions drift from its original's: KLD, top-1 agreement, perplexity");
    auto original = std::make_shared<std::filesystem::path>();
    auto variant = std::make_shared<std::filesystem::path>();
    auto data = std::make_shared<compress::DriftData>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("ORIGINAL", *original, "The model the variant was made from")->required();
    cmd->add_option("VARIANT", *variant, "The compressed model (same vocabulary)")->required();
    add_data_options(cmd, *data);
    cmd->add_flag("--json", *json, "Print one JSON object");
    cmd->callback([original, variant, data, json] {
        data->progress = false;
        const auto d = compress::compare_models(*original, *variant, *data);
        if (*json) {
            std::cout << nlohmann::json(d).dump(2) << '\n';
            return;
        }
        fmt::print("{} against {} over {} positions:\n", variant->string(), original->string(), d.positions);
        fmt::print("  KLD (nats)      mean {:.4e}  median {:.4e}  p90 {:.4e}  p99 {:.4e}  max {:.4e}\n", d.kld.mean,
                   d.kld.median, d.kld.p90, d.kld.p99, d.kld.max);
        fmt::print("  top-1 agreement {:.2f}%\n", 100 * d.top1_agreement);
        fmt::print("  perplexity      {:.4f} (original {:.4f}, ratio {:.4f})\n", d.perplexity, d.reference_perplexity,
                   d.perplexity / d.reference_perplexity);
    });
}

void print_sensitivity(const std::vector<compress::Sensitivity> & ranking, const std::string & format) {
    if (format == "json") {
        nlohmann::json out = nlohmann::json::array();
        for (const auto & s : ranking) {
            out.push_back({{"tensor", s.tensor},
                           {"type", s.type},
                           {"original_bytes", s.original_bytes},
                           {"bytes", s.bytes},
                           {"drift", nlohmann::json(s.drift)}});
        }
        std::cout << out.dump(2) << '\n';
    } else if (format == "csv") {
        fmt::print("tensor,type,original_bytes,bytes,kld_mean,kld_p99,top1_agreement,perplexity\n");
        for (const auto & s : ranking) {
            fmt::print("{},{},{},{},{:.6g},{:.6g},{:.6f},{:.6f}\n", s.tensor, s.type, s.original_bytes, s.bytes,
                       s.drift.kld.mean, s.drift.kld.p99, s.drift.top1_agreement, s.drift.perplexity);
        }
    } else {
        fmt::print("{:<28} {:<7} {:>11} {:>11} {:>9}\n", "tensor (most sensitive first)", "type", "mean KLD", "p99 KLD",
                   "top-1");
        for (const auto & s : ranking) {
            fmt::print("{:<28} {:<7} {:>11.3e} {:>11.3e} {:>8.2f}%\n", s.tensor, s.type, s.drift.kld.mean,
                       s.drift.kld.p99, 100 * s.drift.top1_agreement);
        }
    }
}

void add_sensitivity(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "sensitivity", "Rank weight matrices by how much quantizing each alone moves the model's predictions (KLD)");
    auto model = std::make_shared<std::filesystem::path>();
    auto type = std::make_shared<std::string>();
    auto data = std::make_shared<compress::DriftData>();
    auto format = std::make_shared<std::string>("text");
    cmd->add_option("MODEL", *model, "GGUF model (F32/F16/BF16)")->required();
    cmd->add_option("--type", *type, "Quantization type to try on each matrix, e.g. Q4_0")->required();
    add_data_options(cmd, *data);
    add_results_options(cmd, *data);
    cmd->add_option("--format", *format, "text, csv or json")
        ->check(CLI::IsMember({"text", "csv", "json"}))
        ->capture_default_str();
    cmd->callback([model, type, data, format] {
        print_sensitivity(compress::measure_sensitivity(*model, {*type}, *data), *format);
    });
}

void print_mix(const compress::MixResult & r, bool json) {
    if (json) {
        nlohmann::json uniform = nlohmann::json::array();
        for (const auto & u : r.uniform)
            uniform.push_back({{"type", u.type}, {"file_bytes", u.file_bytes}, {"drift", nlohmann::json(u.drift)}});
        std::cout << nlohmann::json({{"output", r.written},
                                     {"choice", r.choice},
                                     {"drift", nlohmann::json(r.drift)},
                                     {"uniform", uniform},
                                     {"recipe_path", r.recipe_path.string()},
                                     {"quantized", r.quantized},
                                     {"reused", r.reused}})
                         .dump(2)
                  << '\n';
        return;
    }
    std::map<std::string, int> counts;
    for (const auto & [tensor, type] : r.choice) ++counts[type];
    std::string summary;
    for (const auto & [type, n] : counts) summary += fmt::format("{}{} x {}", summary.empty() ? "" : ", ", type, n);
    fmt::print("wrote {}: {} bytes, {:.2f} bits per weight ({})\n", r.written.path.string(), r.written.file_bytes,
               r.written.bits_per_weight, summary);
    fmt::print("{:<22} {:>10} {:>11} {:>9}\n", "variant", "bytes", "mean KLD", "top-1");
    fmt::print("{:<22} {:>10} {:>11.3e} {:>8.2f}%\n", "this mix", r.written.file_bytes, r.drift.kld.mean,
               100 * r.drift.top1_agreement);
    for (const auto & u : r.uniform) {
        fmt::print("{:<22} {:>10} {:>11.3e} {:>8.2f}%\n", "llama.cpp " + u.type, u.file_bytes, u.drift.kld.mean,
                   100 * u.drift.top1_agreement);
    }
    fmt::print("recipe {}\n", r.recipe_path.string());
    fmt::print("{} quantizations run, {} trials read back from the results store\n", r.quantized, r.reused);
}

}  // namespace

void add_mix(CLI::App & app) {
    add_compare(app);
    add_sensitivity(app);
    auto * cmd = app.add_subcommand(
        "mix", "Choose a quantization type per weight matrix that minimises measured KLD under a size budget");
    auto o = std::make_shared<compress::MixOptions>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("MODEL", o->input, "GGUF model (F32/F16/BF16)")->required();
    cmd->add_option("OUT", o->output, "Output GGUF file (a recipe goes to OUT.recipe.json)")->required();
    cmd->add_option("--budget", o->budget, "File size (600K, 1.5M, 2G) or bits per weight (4.5bpw)")->required();
    cmd->add_option("--types", o->types, "Candidate types, comma-separated")->delimiter(',')->capture_default_str();
    add_data_options(cmd, o->data);
    add_results_options(cmd, o->data);
    cmd->add_flag("--json", *json, "Print the report as JSON");
    cmd->callback([o, json] { print_mix(compress::mix(*o), *json); });
}

}  // namespace switchyard::cli
