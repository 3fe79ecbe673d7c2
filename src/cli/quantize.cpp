// `switchyard quantize MODEL OUT TYPE` and `switchyard rebuild RECIPE`: quantized variants with
// a report of what was really written, and their exact rebuild from a recipe.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "compress/quant_types.h"
#include "compress/quantize.h"
#include "compress/rebuild.h"
#include "support/error.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace switchyard::cli {

namespace {

std::string types_help() {
    std::string text = "TYPE is one of (case-insensitive, as llama-quantize spells them):\n";
    for (const auto & t : compress::quant_types()) text += fmt::format("  {:<10} {}\n", t.name, t.description);
    return text;
}

void print_result(const compress::QuantizeResult & r, const std::string & type, bool json) {
    const auto & m = r.written;
    if (json) {
        std::cout
            << nlohmann::json({{"output", m}, {"recipe_path", r.recipe_path.string()}, {"recipe", r.recipe}}).dump(2)
            << '\n';
        return;
    }
    std::string types;
    for (const auto & [t, count] : m.tensor_types)
        types += fmt::format("{}{} x {}", types.empty() ? "" : ", ", t, count);
    fmt::print("wrote {}: {} bytes ({:.2f} MiB), {:.2f} bits per weight\n", m.path.string(), m.file_bytes,
               m.file_bytes / 1048576.0, m.bits_per_weight);
    fmt::print("  tensor types  {}\n", types);
    // Name the 2-D tensors that did not get the requested type: llama.cpp falls back per tensor
    // when a row length does not fit the type's block size, and keeps some tensors at higher precision.
    std::string requested = type;
    std::transform(requested.begin(), requested.end(), requested.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (m.tensor_types.contains(requested) || requested.find("_k") == std::string::npos) {
        for (const auto & t : m.tensors) {
            if (t.shape.size() >= 2 && t.type != requested) fmt::print("  kept as {:<6} {}\n", t.type, t.name);
        }
    }
    fmt::print("  recipe        {}\n", r.recipe_path.string());
}

std::vector<std::pair<std::string, std::string>> parse_tensor_types(const std::vector<std::string> & specs) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto & spec : specs) {
        const auto eq = spec.rfind('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
            throw Error("--tensor-type '{}': expected REGEX=TYPE, e.g. 'attn_v=q8_0'", spec);
        }
        out.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
    }
    return out;
}

}  // namespace

void add_quantize(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "quantize", "Quantize a GGUF model with llama.cpp; report what was written and write a recipe beside it");
    cmd->footer(types_help());
    auto o = std::make_shared<compress::QuantizeOptions>();
    auto specs = std::make_shared<std::vector<std::string>>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("MODEL", o->input, "GGUF model to quantize (F32, F16 or BF16)")->required();
    cmd->add_option("OUT", o->output, "Output GGUF file (a recipe goes to OUT.recipe.json)")->required();
    cmd->add_option("TYPE", o->type, "Quantization type (see below)")->required();
    cmd->add_option("--imatrix", o->imatrix,
                    "Importance matrix (from `switchyard calibrate` or llama-imatrix, GGUF or .dat)");
    cmd->add_option("--tensor-type", *specs, "REGEX=TYPE: tensors whose name matches get this ggml type (repeatable)");
    cmd->add_option("--output-type", o->output_type, "ggml type for output.weight");
    cmd->add_option("--embedding-type", o->embedding_type, "ggml type for token_embd.weight");
    cmd->add_option("--prune-layers", o->prune_layers, "Drop these whole layers (comma-separated indices)")
        ->delimiter(',');
    cmd->add_flag("--allow-requantize", o->allow_requantize, "Quantize a model that is already quantized");
    add_threads(*cmd, o->threads);
    cmd->add_flag("--json", *json, "Print the report as JSON");
    cmd->callback([o, specs, json] {
        o->tensor_types = parse_tensor_types(*specs);
        o->progress = !*json;
        print_result(compress::quantize(*o), o->type, *json);
    });

    auto * rebuild = app.add_subcommand("rebuild", "Rebuild a variant from its recipe and check it is byte-identical");
    auto recipe_path = std::make_shared<std::filesystem::path>();
    auto out = std::make_shared<std::filesystem::path>();
    auto parent = std::make_shared<std::filesystem::path>();
    rebuild->add_option("RECIPE", *recipe_path, "A .recipe.json written beside a variant")->required();
    rebuild->add_option("-o,--output", *out, "Where to write (default: the path in the recipe)");
    rebuild->add_option("--parent", *parent, "The parent model, if it moved (default: the path in the recipe)");
    rebuild->callback([recipe_path, out, parent] {
        const auto r = compress::rebuild(*recipe_path, *parent, *out);
        fmt::print("rebuilt {}: sha256 {} ({})\n", r.output.string(), r.sha256,
                   r.identical ? "identical to the recipe's" : "DIFFERS from the recipe's");
        if (!r.identical) throw Error("the rebuilt file differs from the one the recipe describes");
    });
}

}  // namespace switchyard::cli
