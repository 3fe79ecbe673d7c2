// `switchyard make-model SHAPE OUT`: a synthetic GGUF with a real model's shapes, for tests and benchmarks;
// `switchyard make-chat-model BASE OUT --style S`: a model given a chat template and its control tokens.
#include "cli/commands.h"
#include "model/chat_fixture.h"
#include "model/model_info.h"
#include "model/synthetic_model.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace switchyard::cli {

void add_make_model(CLI::App & app) {
    std::string shapes;
    for (const auto & s : model::known_shapes())
        shapes += fmt::format("\n  {:<13} vocab {:>6}, width {:>4}, {:>2} layers, {:>2} heads ({} KV), FFN {}{}",
                              s.name, s.vocab, s.embedding, s.layers, s.heads, s.kv_heads, s.feed_forward,
                              s.tied_output ? ", tied output" : "");
    auto * cmd = app.add_subcommand(
        "make-model",
        "Write a synthetic model with a real model's shapes (random weights, a vocabulary of the real size "
        "with byte fallback) for tests and benchmarks. Shapes:" +
            shapes);
    auto shape = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto f16 = std::make_shared<bool>(false);
    auto seed = std::make_shared<std::uint32_t>(1);
    cmd->add_option("SHAPE", *shape, "One of the shapes above")->required();
    cmd->add_option("OUT", *out, "GGUF file to write")->required();
    cmd->add_flag("--f16", *f16, "Weight matrices in F16 (default F32)");
    cmd->add_option("--seed", *seed, "Seed of the random weights: the same seed writes the same bytes")
        ->capture_default_str();
    cmd->callback([shape, out, f16, seed] {
        model::write_synthetic_model({.shape = model::find_shape(*shape), .f16 = *f16, .seed = *seed}, *out);
        const model::ModelInfo info = model::inspect_gguf(*out);
        fmt::print("wrote {}: {} parameters, {} bytes ({:.1f} MiB), {:.2f} bits per weight\n", *out, info.parameters,
                   info.file_bytes, info.file_bytes / 1048576.0, info.bits_per_weight);
    });

    std::string styles;
    for (const auto & s : model::chat_styles())
        styles += fmt::format("\n  {:<7} adds {}", s.name, fmt::join(s.control_tokens, " "));
    auto * chat = app.add_subcommand(
        "make-chat-model",
        "Copy a model with a chat template and the control tokens it writes added to its vocabulary (zero "
        "embedding and output rows), for testing chat templating on models without one. Styles:" +
            styles);
    auto base = std::make_shared<std::string>();
    auto chat_out = std::make_shared<std::string>();
    auto style = std::make_shared<std::string>("chatml");
    chat->add_option("BASE", *base, "GGUF model to copy")->required()->check(CLI::ExistingFile);
    chat->add_option("OUT", *chat_out, "GGUF file to write")->required();
    chat->add_option("--style", *style, "Template and tokens: one of the styles above")->capture_default_str();
    chat->callback([base, chat_out, style] {
        const auto & s = model::find_chat_style(*style);
        model::write_chat_model(*base, s, *chat_out);
        const model::ModelInfo info = model::inspect_gguf(*chat_out);
        fmt::print("wrote {}: {} tokens ({} added: {}), chat template {}\n", *chat_out, info.vocab_size,
                   s.control_tokens.size(), fmt::join(s.control_tokens, " "), s.name);
    });
}

}  // namespace switchyard::cli
