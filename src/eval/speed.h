// Speed, memory, energy and cost of serving a model, measured in a pass of their own (never mixed
// into accuracy passes): prefill and decode throughput, time to first token, peak memory.
#pragma once

#include "engine/llama_engine.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace switchyard::eval {

struct SpeedOptions {
    int prompt_tokens = 128;
    int generate_tokens = 64;
    int repeats = 5;
    double watts_per_busy_core = 15.0;  // for modelled energy where no meter is readable
    double price_per_hour = 0.0;        // hardware price; 0: no cost figures
};

struct SpeedResult {
    double prefill_tokens_per_s = 0;  // medians over the repeats
    double decode_tokens_per_s = 0;
    double ttft_p50_ms = 0;
    double ttft_p95_ms = 0;
    std::uint64_t peak_rss_bytes = 0;  // of the process while this model alone was loaded and run
    std::uint64_t file_bytes = 0;
    double joules_per_token = 0;       // generated token
    std::string energy_source;         // "measured (RAPL)" or "modelled (CPU-seconds x W)"
    double cost_per_1k_tokens = 0;     // generated tokens, at price_per_hour
    double cost_per_query = 0;         // one prompt of prompt_tokens and generate_tokens answered
    int prompt_tokens = 0;
    int generate_tokens = 0;
};

// Loads the model by itself (threads and context as given) and times it. Throws switchyard::Error
// when the model cannot be loaded or the prompt cannot be built from its vocabulary.
SpeedResult measure_speed(const engine::LlamaEngineOptions & engine_options, const SpeedOptions & options);

// The one JSON form (`eval --json`, the results store, the plan): keys as the fields are named;
// reading requires every key.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SpeedResult, prefill_tokens_per_s, decode_tokens_per_s, ttft_p50_ms, ttft_p95_ms, peak_rss_bytes,
                                   file_bytes, joules_per_token, energy_source, cost_per_1k_tokens, cost_per_query, prompt_tokens,
                                   generate_tokens)

}  // namespace switchyard::eval
