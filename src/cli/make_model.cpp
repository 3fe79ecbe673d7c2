// `switchyard make-model SHAPE OUT`: a synthetic GGUF with a real model's shapes, for tests and benchmarks.
#include "cli/commands.h"
#include "model/model_info.h"
#include "model/synthetic_model.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace switchyard::cli {

void add_make_model(CLI::App & app) {
    std::string shapes;
    for (const auto & s : model::known_shapes())
        shapes += fmt::format("\n  {:<13} vocab {:>6}, width {:>4}, {:>2} layers, {:>2} heads ({} KV), FFN {}{}", s.name, s.vocab, s.embedding,
                              s.layers, s.heads, s.kv_heads, s.feed_forward, s.tied_output ? ", tied output" : "");
    auto * cmd = app.add_subcommand("make-model",
                                    "Write a synthetic model with a real model's shapes (random weights, a vocabulary of the real size "
                                    "with byte fallback) for tests and benchmarks. Shapes:" + shapes);
    auto shape = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto f16 = std::make_shared<bool>(false);
    auto seed = std::make_shared<std::uint32_t>(1);
    cmd->add_option("SHAPE", *shape, "One of the shapes above")->required();
    cmd->add_option("OUT", *out, "GGUF file to write")->required();
    cmd->add_flag("--f16", *f16, "Weight matrices in F16 (default F32)");
    cmd->add_option("--seed", *seed, "Seed of the random weights: the same seed writes the same bytes")->capture_default_str();
    cmd->callback([shape, out, f16, seed] {
        model::write_synthetic_model({.shape = model::find_shape(*shape), .f16 = *f16, .seed = *seed}, *out);
        const model::ModelInfo info = model::inspect_gguf(*out);
        fmt::print("wrote {}: {} parameters, {} bytes ({:.1f} MiB), {:.2f} bits per weight\n", *out, info.parameters, info.file_bytes,
                   info.file_bytes / 1048576.0, info.bits_per_weight);
    });
}

}  // namespace switchyard::cli
