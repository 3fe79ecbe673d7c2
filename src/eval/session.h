// One evaluation of a model, typed: its task suites (beside a base's, compared item by item), its
// perplexity on text, its drift from a base and its speed, measured in the order that keeps one
// model in memory at a time. What `switchyard eval` runs; the CLI parses flags and prints.
#pragma once

#include "engine/remote_engine.h"
#include "eval/drift.h"
#include "eval/perplexity.h"
#include "eval/run_suite.h"
#include "eval/speed.h"

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::eval {

struct EvalRequest {
    std::filesystem::path model;  // the GGUF file to measure
    std::optional<engine::RemoteEngineOptions> served;  // or a served model instead (task suites only)
    std::vector<std::string> tasks;  // suite specs (eval/suite.h)
    std::vector<std::filesystem::path> text;  // raw text: perplexity, and drift with a base
    std::filesystem::path base;  // the original: paired comparisons and drift
    std::filesystem::path base_file;  // a reference stored by save_base, instead of running the base
    std::filesystem::path save_base;  // store the base's predictions on the text (without a base: the model's own)
    int top_k = 64;  // the base's log-probabilities kept per position (0: all)
    int context = 0;  // tokens per text chunk (0: default_chunk_context); local models only
    int chunks = 0;  // text chunks to use (0: all)
    int skip_chunks = 0;
    int stride = 0;  // > 0: perplexity over sliding windows moved by this many tokens
    bool normalize = false;
    std::optional<SpeedOptions> speed;  // also measure speed, first, with nothing else loaded
    std::optional<std::filesystem::path> results;  // the results store: finished runs reused, interrupted ones resumed
    int threads = 0;  // 0: every hardware thread
    // The measured model's KV cache types (the base's stays f16): its results are recorded apart
    // (ResultsStore::file_model).
    model::KvCacheTypes kv_cache;
    // A draft model for the speed pass (speculative decoding): it needs `speed`. Task suites and
    // text read the model's own distributions, which a draft does not change.
    engine::DraftOptions draft;
    std::vector<std::string> rpc;  // rpc-server workers holding the model's layers
    bool progress = true;  // progress lines and notes on stderr
};

// A suite's result, and with a base, the base's on the same items and the two compared.
struct SuiteReport {
    SuiteResult result;
    std::optional<SuiteResult> base;
    std::optional<PairedComparison> comparison;
};

struct EvalReport {
    std::string model;  // the file as given, or a served model's NAME@URL
    std::string kv_cache;  // "K/V" where the KV cache types are not f16 (EvalRequest)
    std::string endpoint;  // a served model's
    std::filesystem::path base;
    bool normalize = false;
    int context = 0;  // tokens per text chunk; a served model's context
    std::vector<SuiteReport> suites;
    std::optional<PerplexityResult> perplexity;
    std::optional<Drift> drift;
    int drift_top_k = 0;  // the reference's log-probabilities per position
    std::optional<SpeedResult> speed;
    double price_per_hour = 0;  // of the speed's hardware; 0: no cost figures
    engine::DraftOptions draft;  // the speed pass's draft model, if any (what it did: in `speed`)

    double ppl_ratio() const { return drift ? drift->perplexity / drift->reference_perplexity : 0.0; }
};

// Throws switchyard::Error when the request is contradictory or asks for nothing (before any model
// is loaded), and for whatever loading a model, a suite, the text or a base file throws.
EvalReport run_eval(const EvalRequest & request);

// `eval --json`: {"model", "endpoint"?, "base"?, "normalize", "context", "suites": [SuiteResult's form
// with "base" and "comparison" (PairedComparison's) beside a base], "perplexity", "bits_per_byte",
// "text": {"chunks", "tokens_scored", "bytes_scored"}, "drift": Drift's form with "top_k" and
// "ppl_ratio", "speed": SpeedResult's form (with a draft, and "draft": {"model", "max_tokens", "drafted",
// "accepted", "steps", "acceptance"}), "cost": {"price_per_hour", "per_1k_tokens", "per_query"}}.
void to_json(nlohmann::json & j, const SuiteReport & suite);
void to_json(nlohmann::json & j, const EvalReport & report);

}  // namespace switchyard::eval
