// Speed, memory, energy and cost of serving a model, measured in a pass of their own (never mixed
// into accuracy passes): time per query, prefill and decode throughput, time to first token, peak
// memory; and a candidate's time per query as a ratio to a reference model's, timed in
// interleaved rounds on the same text so that machine load hits both alike.
#pragma once

#include "engine/llama_engine.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>

namespace switchyard::eval {

struct SpeedOptions {
    // One query: this many tokens in and out, counted in the reference model's tokens (the model's
    // own when it is timed alone); another tokenizer gets the same text, so its counts differ.
    int prompt_tokens = 128;
    int generate_tokens = 64;
    int repeats = 16;  // rounds at most (at least 6 run: the fewest with a 95% interval of the median)
    int min_rounds =
        6;  // rounds at least, before the interval may stop them (the fewest with a 95% interval of the median)
    int warmup = 1;  // queries per model before the rounds, not timed (caches, page faults, thread pool)
    // Rounds stop once the 95% interval of the time per query (alone) or of the ratio (against a
    // reference) is within this factor either side: 0.03 is ±3% on the log scale.
    double target_half_width = 0.03;
    double watts_per_busy_core = 15.0;  // for modelled energy where no meter is readable
    double price_per_hour = 0.0;  // hardware price; 0: no cost figures
    // measure_speed_against: compare the candidate's greedy answers with the reference's, prompt by
    // prompt (PairedSpeed::answers_identical): a drafted model must answer as its target does.
    bool compare_answers = false;
    // The text prompts are cut from and characters per token are measured on (whitespace collapsed,
    // characters a model cannot encode dropped); empty: a built-in English passage.
    std::string text;
};

// One model's figures, from its timed rounds.
struct SpeedResult {
    double prefill_tokens_per_s = 0;  // medians over the rounds
    double decode_tokens_per_s = 0;
    double ttft_p50_ms = 0;
    double ttft_p95_ms = 0;
    double query_ms = 0;  // one query (prompt in, answer out): median over the rounds
    double query_ms_lo = 0;  // its 95% interval (median_interval)
    double query_ms_hi = 0;
    double query_p95_ms = 0;
    std::uint64_t peak_rss_bytes = 0;  // of the process while this model alone was loaded and run
    std::uint64_t kv_cache_bytes = 0;  // its KV cache at the context it was timed at (LlamaEngine::kv_cache_bytes)
    std::uint64_t file_bytes = 0;
    double joules_per_token = 0;  // generated token
    std::string energy_source;  // "measured (RAPL)" or "modelled (CPU-seconds x W)"
    double cost_per_1k_tokens = 0;  // this model's own tokens, prompt and answer in the query's mix, at price_per_hour
    double cost_per_query = 0;  // one query at price_per_hour
    int prompt_tokens = 0;  // one query in this model's tokens (the prompt: mean over the rounds)
    int generate_tokens = 0;  // exactly this many generated per query (end-of-generation ignored)
    double chars_per_token = 0;  // on the text, by this model's tokenizer
    int rounds = 0;
    // With a draft (LlamaEngineOptions::draft): tokens it proposed over the timed queries, and of
    // those the tokens the model's sampler accepted (engine::DraftStats); 0 without one.
    std::uint64_t draft_tokens = 0;
    std::uint64_t draft_accepted = 0;
    std::uint64_t draft_steps = 0;  // verification steps over the timed queries
};

// A candidate against a reference: interleaved rounds, each one query of the same text per model,
// the order alternating so that neither always runs first.
struct PairedSpeed {
    SpeedResult candidate;
    SpeedResult
        reference;  // from the same rounds (its absolute figures vary with the machine's load; the ratio less so)
    double ratio = 1;  // candidate's time per query over the reference's: median of the rounds' ratios
    double ratio_lo = 1;  // 95% interval (median_interval; 0 and infinity when too few rounds)
    double ratio_hi = 1;
    int rounds = 0;
    // With SpeedOptions::compare_answers: the timed queries whose prompt both answered, and of those
    // the ones answered with the same text; where the first difference was, "" when none.
    int answers_compared = 0;
    int answers_identical = 0;
    std::string first_difference;
};

// Loads the model by itself (threads and context as given) and times it in rounds of one query.
// With a draft model (engine_options.draft) the rounds decode speculatively, and the result says
// what the draft did in them. Throws switchyard::Error when the model cannot be loaded, the text
// cannot be encoded, or a query does not generate its tokens (a failed measurement: never a rate of 0).
SpeedResult measure_speed(const engine::LlamaEngineOptions & engine_options, const SpeedOptions & options);

// The candidate alone first (its peak memory, a warm-up), then the reference loaded beside it and
// both timed in interleaved rounds until the ratio's interval is within target_half_width or
// `repeats` rounds. prompt_tokens and generate_tokens are the reference's; the candidate gets the
// same characters of prompt and as many of answer (its tokens: the reference's times the ratio of
// their characters per token on the text). Throws like measure_speed.
PairedSpeed measure_speed_against(const engine::LlamaEngineOptions & candidate,
                                  const engine::LlamaEngineOptions & reference, const SpeedOptions & options);

// What the draft did in a speed pass's timed queries, as the engine counts it.
inline engine::DraftStats draft_stats(const SpeedResult & speed) {
    return {.drafted = speed.draft_tokens, .accepted = speed.draft_accepted, .steps = speed.draft_steps};
}

// Code points per token of `text` by the engine's tokenizer (no BOS); 0 for an empty text.
double chars_per_token(const engine::Engine & engine, std::string_view text);

// The median of positive samples and its distribution-free 95% interval (order statistics: the
// count of samples below the true median is binomial), on the log scale. A busy machine stalls a
// few rounds on one side by several times; the median and this interval are not moved by them,
// where a mean and a t interval are. Below 6 samples no such interval exists: it is infinite.
struct LogInterval {
    double center = 0;  // log of the median
    double lo = -std::numeric_limits<double>::infinity();
    double hi = std::numeric_limits<double>::infinity();
    double half_width() const { return (hi - lo) / 2; }
};
LogInterval median_interval(std::span<const double> positive_samples);

// The one JSON form (`eval --json`, the results store, the plan): keys as the fields are named;
// reading requires every key.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SpeedResult, prefill_tokens_per_s, decode_tokens_per_s, ttft_p50_ms, ttft_p95_ms,
                                   query_ms, query_ms_lo, query_ms_hi, query_p95_ms, peak_rss_bytes, kv_cache_bytes,
                                   file_bytes, joules_per_token, energy_source, cost_per_1k_tokens, cost_per_query,
                                   prompt_tokens, generate_tokens, chars_per_token, rounds, draft_tokens,
                                   draft_accepted, draft_steps)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PairedSpeed, candidate, reference, ratio, ratio_lo, ratio_hi, rounds,
                                   answers_compared, answers_identical, first_difference)

}  // namespace switchyard::eval
