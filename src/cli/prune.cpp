// `switchyard prune MODEL OUT`: zero the least important weights (magnitude or Wanda), drop layers.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "compress/prune.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace switchyard::cli {

void add_prune(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "prune", "Prune a model's weight matrices (magnitude or Wanda, unstructured or N:M) and/or drop whole layers");
    cmd->footer(std::string("Note: ") + compress::kDenseStorageNote + ".");
    auto o = std::make_shared<compress::PruneOptions>();
    auto method = std::make_shared<std::string>("magnitude");
    auto pattern = std::make_shared<std::string>("unstructured");
    auto json = std::make_shared<bool>(false);
    cmd->add_option("MODEL", o->input, "GGUF model with F32/F16/BF16 weights")->required();
    cmd->add_option("OUT", o->output, "Output GGUF file (a recipe goes to OUT.recipe.json)")->required();
    cmd->add_option("--method", *method,
                    "magnitude: score |w|; wanda: |w| x the input column's activation norm (needs --imatrix)")
        ->capture_default_str();
    cmd->add_option("--sparsity", o->sparsity, "Fraction of each output row to zero, e.g. 0.5");
    cmd->add_option("--pattern", *pattern,
                    "unstructured, or N:M (keep the N largest of every M consecutive weights, e.g. 2:4)")
        ->capture_default_str();
    cmd->add_option("--imatrix", o->imatrix, "Importance matrix for wanda (switchyard calibrate or llama-imatrix)");
    cmd->add_option("--layers-drop", o->layers_drop, "Remove these whole layers (comma-separated indices, from 0)")
        ->delimiter(',');
    cmd->add_flag("--include-embeddings", o->include_embeddings, "Also prune token_embd.weight (magnitude only)");
    cmd->add_flag("--include-output", o->include_output, "Also prune output.weight");
    cmd->add_option("--then-quantize", o->then_quantize,
                    "Quantize the pruned model to this type (see `switchyard quantize --help`)");
    add_threads(*cmd, o->threads, "used by --then-quantize");
    cmd->add_flag("--json", *json, "Print the report as JSON");
    cmd->callback([o, method, pattern, json] {
        o->method = compress::parse_method(*method);
        o->pattern = compress::parse_pattern(*pattern);
        const auto r = compress::prune(*o);
        if (*json) {
            nlohmann::json tensors = nlohmann::json::array();
            for (const auto & t : r.pruned)
                tensors.push_back(
                    {{"name", t.name}, {"zeros", t.zeros}, {"elements", t.elements}, {"sparsity", t.sparsity()}});
            std::cout << nlohmann::json({{"output", r.written},
                                         {"sparsity", r.overall_sparsity},
                                         {"tensors", tensors},
                                         {"recipe_path", r.recipe_path.string()},
                                         {"recipe", r.recipe}})
                             .dump(2)
                      << '\n';
            return;
        }
        fmt::print("wrote {}: {} bytes, {:.2f} bits per weight, {} layers\n", r.written.path.string(),
                   r.written.file_bytes, r.written.bits_per_weight, r.written.block_count);
        for (const auto & t : r.pruned)
            fmt::print("  {:<28} {:6.2f}% zeros ({} of {})\n", t.name, 100 * t.sparsity(), t.zeros, t.elements);
        if (!r.pruned.empty())
            fmt::print("  overall sparsity of the pruned tensors: {:.2f}%\n", 100 * r.overall_sparsity);
        fmt::print("  note: {}\n", compress::kDenseStorageNote);
        fmt::print("  recipe {}\n", r.recipe_path.string());
    });
}

}  // namespace switchyard::cli
