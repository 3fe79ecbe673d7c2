// `switchyard awq MODEL -o OUT --imatrix FILE`: activation-aware channel scales before quantization.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "compress/awq.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace switchyard::cli {

void add_awq(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "awq", "Scale each input channel by its activation (AWQ, alpha searched per layer group) before quantizing");
    cmd->footer(
        "Groups per block: q/k/v after the attention norm, o after v, gate/up after the FFN norm, down after up.\n"
        "s = a^alpha with a = sqrt(E[x^2]) per channel from the importance matrix (an approximation: AWQ proper\n"
        "uses E|x|, which the matrix does not hold), normalised by sqrt(max s * min s). alpha minimises the\n"
        "activation-weighted error after ggml's own quantizer for the type llama.cpp gives each tensor. 1/s is\n"
        "folded exactly into the norm weights, v's rows (one scale per kv channel under grouped-query attention)\n"
        "and up's rows. Without --quantize, OUT is the scaled model and the rescaled matrix goes to\n"
        "OUT.imatrix.gguf (OUT's extension replaced): quantize them together, e.g.\n"
        "  switchyard quantize OUT Q.gguf Q4_K_M --imatrix OUT.imatrix.gguf\n"
        "Llama-architecture models only; a recipe goes to OUT.recipe.json (`switchyard rebuild`).");
    auto o = std::make_shared<compress::AwqOptions>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("MODEL", o->input, "GGUF model (llama architecture) with F32/F16/BF16 weights")->required();
    cmd->add_option("-o,--output", o->output, "Output GGUF file")->required();
    cmd->add_option("--imatrix", o->imatrix, "Importance matrix of MODEL (switchyard calibrate or llama-imatrix)")
        ->required();
    cmd->add_option("--type", o->type,
                    "The quantization the scales are searched for (see `switchyard quantize --help`)")
        ->capture_default_str();
    cmd->add_option("--alpha-grid", o->alpha_grid, "alpha values tried per group, FROM:TO:STEP")->capture_default_str();
    cmd->add_flag("--quantize", o->quantize,
                  "Also quantize to --type with the rescaled matrix: OUT is then the quantized model");
    add_threads(*cmd, o->threads);
    cmd->add_flag("--json", *json, "Print the report as JSON");
    cmd->callback([o, json] {
        o->progress = true;
        const auto r = compress::awq(*o);
        if (*json) {
            std::cout << nlohmann::json({{"output", r.written},
                                         {"imatrix", r.imatrix_output.string()},
                                         {"search_seconds", r.search_seconds},
                                         {"recipe_path", r.recipe_path.string()},
                                         {"recipe", r.recipe}})
                             .dump(2)
                      << '\n';
            return;
        }
        fmt::print("wrote {}: {} bytes, {:.2f} bits per weight\n", r.written.path.string(), r.written.file_bytes,
                   r.written.bits_per_weight);
        if (!r.imatrix_output.empty()) fmt::print("  rescaled importance matrix {}\n", r.imatrix_output.string());
        fmt::print("  alpha search for {}: {:.1f} s\n", o->type, r.search_seconds);
        for (const auto & g : r.groups) {
            const double ratio = g.error_unscaled > 0 ? g.error / g.error_unscaled : 1.0;
            fmt::print("  {:<20} alpha {:.2f}  weighted error x{:.3f} of unscaled\n", g.name, g.alpha, ratio);
        }
        for (const auto & note : r.notes) fmt::print("  note: {}\n", note);
        fmt::print("  recipe {}\n", r.recipe_path.string());
    });
}

}  // namespace switchyard::cli
