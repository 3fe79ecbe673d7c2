#include "cli/engine_flags.h"

#include "model/kv_cache.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace switchyard::cli {

namespace {

std::string with_use(const std::string & help, const std::string & use) {
    return use.empty() ? help : help + "; " + use;
}

}  // namespace

CLI::Option * add_threads(CLI::App & cmd, int & threads, const std::string & use) {
    return cmd.add_option("-t,--threads", threads, with_use("CPU threads (default 0: every hardware thread)", use));
}

CLI::Option * add_chunk_context(CLI::App & cmd, int & context) {
    return cmd.add_option("-c,--ctx", context,
                          "Tokens per text chunk (default 0: min(512, the model's declared context))");
}

CLI::Option * add_context(CLI::App & cmd, int & context, const std::string & use) {
    return cmd
        .add_option("-c,--ctx", context,
                    with_use("Context length in tokens per sequence (0: the model's declared length)", use))
        ->capture_default_str();
}

CLI::Option * add_gpu_layers(CLI::App & cmd, int & layers) {
    return cmd.add_option("-g,--gpu-layers", layers, "Layers to offload to a GPU, -1 for all (GPU builds only)")
        ->capture_default_str();
}

void add_cache_types(CLI::App & cmd, model::KvCacheTypes & types, const std::string & use) {
    const std::string names = "f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1";
    cmd.add_option_function<std::string>(
           "--cache-type-k", [&types](const std::string & name) { types.k = model::parse_cache_type(name); },
           with_use("KV cache type of keys (default f16): " + names, use))
        ->type_name("TYPE");
    cmd.add_option_function<std::string>(
           "--cache-type-v", [&types](const std::string & name) { types.v = model::parse_cache_type(name); },
           with_use("KV cache type of values (default f16; a quantized one switches flash attention on)", use))
        ->type_name("TYPE");
}

void add_draft(CLI::App & cmd, engine::DraftOptions & draft, const std::string & use) {
    cmd.add_option("--draft", draft.model_path,
                   with_use("Draft model (GGUF with the same vocabulary) for speculative decoding: it proposes "
                            "tokens, the model verifies them in one step and keeps its own choices, so the output "
                            "is unchanged and only the speed differs",
                            use))
        ->check(CLI::ExistingFile);
    cmd.add_option("--draft-max", draft.max_tokens, with_use("Tokens the draft proposes per step at most", use))
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
}

std::string describe_draft(const engine::DraftStats & stats) {
    return fmt::format("draft: {} tokens proposed in {} steps, {} taken ({:.1f}%)", stats.drafted, stats.steps,
                       stats.accepted, 100.0 * stats.acceptance());
}

}  // namespace switchyard::cli
