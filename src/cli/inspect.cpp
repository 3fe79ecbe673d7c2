// `switchyard inspect MODEL [--json]`: what a GGUF file holds, as a deployer needs it.
#include "cli/commands.h"
#include "model/model_info.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

namespace switchyard::cli {

namespace {

std::string tokenizer_label(const std::string & t) {
    if (t == "llama") return "SentencePiece (llama)";
    if (t == "gpt2") return "byte-level BPE (gpt2)";
    return t.empty() ? "none" : t;
}

void print_text(const model::ModelInfo & m) {
    std::string types;
    for (const auto & [type, count] : m.tensor_types)
        types += fmt::format("{}{} x {}", types.empty() ? "" : ", ", type, count);
    std::string caps;
    for (const auto & c : m.capabilities) caps += (caps.empty() ? "" : ", ") + c;
    fmt::print("{}\n", m.path.string());
    fmt::print("  architecture     {}{}\n", m.architecture, m.name.empty() ? "" : fmt::format(" ({})", m.name));
    fmt::print("  parameters       {} ({:.2f} M) in {} tensors\n", m.parameters, m.parameters / 1e6, m.tensor_count);
    fmt::print("  file size        {} bytes ({:.2f} MiB)\n", m.file_bytes, m.file_bytes / 1048576.0);
    fmt::print("  bits per weight  {:.2f}\n", m.bits_per_weight);
    fmt::print("  file type        {}{}\n", m.file_type.empty() ? "unknown" : m.file_type,
               m.file_type_derived ? " (derived from the tensors: the file has no general.file_type)" : "");
    fmt::print("  tensor types     {}\n", types);
    fmt::print("  context length   {} (declared)\n", m.context_length);
    fmt::print("  vocabulary       {} tokens, {}, byte fallback: {}\n", m.vocab_size, tokenizer_label(m.tokenizer),
               m.byte_fallback ? "yes" : "no (text with other characters cannot be encoded)");
    fmt::print("  chat template    {}\n", m.has_chat_template ? "yes" : "none");
    fmt::print("  capabilities     {}\n", caps);
}

void print_tensors(const model::ModelInfo & m) {
    fmt::print("  tensors\n");
    for (const auto & t : m.tensors) {
        std::string shape;
        for (const auto d : t.shape) shape += (shape.empty() ? "" : " x ") + std::to_string(d);
        fmt::print("    {:<28} {:<7} {:<14} {} bytes\n", t.name, t.type, shape, t.bytes);
    }
}

}  // namespace

void add_inspect(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "inspect", "Report what a GGUF model file holds: architecture, size, types, vocabulary, capabilities");
    auto path = std::make_shared<std::string>();
    auto json = std::make_shared<bool>(false);
    auto tensors = std::make_shared<bool>(false);
    cmd->add_option("MODEL", *path, "GGUF file")->required();
    cmd->add_flag("--json", *json, "Print one JSON object instead of text");
    cmd->add_flag("--tensors", *tensors, "Also list every tensor: name, type, shape, bytes");
    cmd->callback([path, json, tensors] {
        const model::ModelInfo info = model::inspect_gguf(*path);
        if (*json) {
            nlohmann::json out = info;
            if (!*tensors) out.erase("tensors");
            std::cout << out.dump(2) << '\n';
        } else {
            print_text(info);
            if (*tensors) print_tensors(info);
        }
    });
}

}  // namespace switchyard::cli
