// `switchyard generate -m MODEL -p PROMPT`: continue a prompt with a model, streaming the text.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "engine/llama_engine.h"
#include "support/atomic_file.h"
#include "support/error.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace switchyard::cli {

namespace {

struct GenerateOptions {
    engine::LlamaEngineOptions engine;
    std::string prompt;
    std::string prompt_file;
    engine::GenerateRequest request;
};

}  // namespace

void add_generate(CLI::App & app) {
    auto * cmd =
        app.add_subcommand("generate", "Continue a prompt with a model and print the continuation as it is generated");
    auto opt = std::make_shared<GenerateOptions>();
    opt->request.max_tokens = 64;
    cmd->add_option("-m,--model", opt->engine.model_path, "GGUF model file")->required();
    auto * prompt = cmd->add_option("-p,--prompt", opt->prompt, "Text to continue");
    cmd->add_option("-f,--file", opt->prompt_file, "Read the prompt from this file")->excludes(prompt);
    cmd->add_option("-n,--max-tokens", opt->request.max_tokens, "Most tokens to generate")->capture_default_str();
    cmd->add_option("--temp", opt->request.sampling.temperature, "Sampling temperature; 0 is greedy (deterministic)")
        ->capture_default_str();
    cmd->add_option("--top-k", opt->request.sampling.top_k, "Keep the k most likely tokens (0: off)")
        ->capture_default_str();
    cmd->add_option("--top-p", opt->request.sampling.top_p, "Nucleus sampling threshold (1: off)")
        ->capture_default_str();
    cmd->add_option("--min-p", opt->request.sampling.min_p, "Drop tokens below this share of the best one (0: off)")
        ->capture_default_str();
    cmd->add_option("--seed", opt->request.sampling.seed, "Random seed for sampling (default: random)");
    cmd->add_option("--stop", opt->request.stop, "Stop before this string (repeatable)");
    add_context(*cmd, opt->engine.context_length);
    add_threads(*cmd, opt->engine.threads);
    add_gpu_layers(*cmd, opt->engine.gpu_layers);
    add_cache_types(*cmd, opt->engine.kv_cache);
    add_draft(*cmd, opt->engine.draft);
    cmd->callback([opt] {
        if (!opt->prompt_file.empty()) opt->prompt = read_whole_file(opt->prompt_file, "prompt file");
        opt->engine.parallel = 1;
        engine::LlamaEngine engine(opt->engine);
        opt->request.prompt = opt->prompt;
        const auto results = engine.generate(std::span(&opt->request, 1), [](std::size_t, std::string_view piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return true;
        });
        std::fputc('\n', stdout);
        std::fflush(stdout);
        spdlog::debug("{} prompt tokens, {} generated, finished by {}", results[0].prompt_tokens,
                      results[0].completion_tokens, engine::to_string(results[0].finish));
        if (!opt->engine.draft.model_path.empty()) std::fprintf(stderr, "%s\n", describe_draft(engine.draft_stats()).c_str());
    });
}

}  // namespace switchyard::cli
