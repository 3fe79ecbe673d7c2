// The engine flags of the commands that load a model (-t/--threads, -c/--ctx, -g/--gpu-layers,
// --cache-type-k/-v),
// declared once so that every command spells, documents and defaults them alike.
#pragma once

#include "engine/drafter.h"
#include "model/kv_cache.h"

#include <string>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace switchyard::cli {

// -t/--threads. 0, the default, is every hardware thread: what the engine and llama.cpp's
// quantizer do with 0, and a portfolio's `threads: 0`, so a command and a served model run alike.
// `use`: what the command runs them for, where that is not everything it does (added to the help).
CLI::Option * add_threads(CLI::App & cmd, int & threads, const std::string & use = {});

// -c/--ctx for passes over text cut in chunks (perplexity, drift, calibration): tokens per chunk;
// 0, the default, is min(512, the model's declared context) (eval::default_chunk_context).
CLI::Option * add_chunk_context(CLI::App & cmd, int & context);

// -c/--ctx for generation: tokens per sequence, 0 for the model's declared length. Its default is
// the command's (shown in the help); `use` as for add_threads.
CLI::Option * add_context(CLI::App & cmd, int & context, const std::string & use = {});

// -g/--gpu-layers: layers to offload to a GPU, -1 for all (GPU builds only).
CLI::Option * add_gpu_layers(CLI::App & cmd, int & layers);

// --cache-type-k/--cache-type-v: the KV cache's element types (llama-server's -ctk/-ctv), f16 by
// default; a quantized V cache switches flash attention on. `use` as for add_threads.
void add_cache_types(CLI::App & cmd, model::KvCacheTypes & types, const std::string & use = {});

// --draft/--draft-max: a draft model for speculative decoding (llama-server's -md and
// --spec-draft-n-max). `use` as for add_threads.
void add_draft(CLI::App & cmd, engine::DraftOptions & draft, const std::string & use = {});

// One line on what the draft did: proposed, taken, steps.
std::string describe_draft(const engine::DraftStats & stats);

}  // namespace switchyard::cli
