// What serving a model costs and the budgets it must meet: the deployment's hardware, the measured
// cost of a candidate, and its one JSON form.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace switchyard::decide {

struct Budgets {
    std::optional<std::uint64_t> memory_bytes;  // peak resident memory while serving
    std::optional<double> p95_latency_ms;  // of one query (see CostScore::p95_latency_ms)
    // Dollars per 1k tokens of one query (prompt and answer), counted in the reference model's
    // tokens (see CostScore::cost_per_1m_tokens), at the deployment's price.
    std::optional<double> cost_per_1k_tokens;
    bool any() const { return memory_bytes || p95_latency_ms || cost_per_1k_tokens; }
};

// The hardware the plan's `deployment:` names, as the cost rules price it (serve::Deployment is
// something else: a portfolio's models being served).
struct Hardware {
    double price_per_hour =
        0;  // hardware price in dollars; 0: costs are not compared (R7 ranks by bits per weight, then size)
    double watts = 15;  // per busy core, for modelled energy
    std::string device = "cpu";  // the only device speed is measured on here (the plan refuses others)
    int threads = 0;
    // Tokens per sequence as deployed: the speed pass loads every model at it, so peak memory holds
    // a KV cache of that size (0: each model's declared context).
    int context = 0;
};

// What a drafted original's speed pass measured of its draft, in the same interleaved rounds as its
// time (the original undrafted is the reference, so the query ratio is the speed-up's inverse).
struct DraftScore {
    std::uint64_t drafted = 0;  // tokens the draft proposed over the timed queries
    std::uint64_t accepted = 0;  // of those, the tokens the original's sampler took
    double decode_speedup = 0;  // decode tokens per second over the reference's (medians of the rounds)
    // Greedy answers to the same prompts, drafted and not: the original's tokens must come out.
    int answers_compared = 0;
    int answers_identical = 0;
    std::string first_difference;  // where the first differing answer departs; empty when none did
    double acceptance() const { return drafted == 0 ? 0 : static_cast<double>(accepted) / static_cast<double>(drafted); }
    bool same_answers() const { return answers_compared > 0 && answers_identical == answers_compared; }
};

// A candidate's speed and cost. Like with like: one query is the same text for every model (the
// plan's screen text: `speed.prompt_tokens` in and `speed.generate_tokens` out, counted in the
// reference model's tokens), so a model whose tokenizer spends more tokens on it pays for them.
// Local models are timed against the reference in interleaved rounds: the ratio and its interval
// are what comparisons rest on; the absolute figures are for budgets and the report.
struct CostScore {
    bool remote = false;  // served elsewhere: local memory does not apply, latency is the server's, cost is declared
    std::uint64_t file_bytes = 0;
    std::uint64_t peak_rss_bytes = 0;
    std::uint64_t kv_cache_bytes = 0;  // of that, the KV cache at the deployment's context (computed, exact)
    double prefill_tokens_per_s = 0;  // this model's tokens
    double decode_tokens_per_s = 0;
    double ttft_p95_ms = 0;
    double p95_latency_ms = 0;  // one query, prompt in and answer out, over the timed rounds
    double chars_per_token = 0;  // of the plan's text, by this model's tokenizer
    int query_prompt_tokens = 0;  // one query in this model's tokens
    int query_generate_tokens = 0;
    std::string reference;  // the model the ratio is against (empty for a served model)
    double ratio = 1;  // time per query over the reference's, with its 95% interval
    double ratio_lo = 1;
    double ratio_hi = 1;
    int rounds = 0;  // interleaved rounds timed
    double cost_per_query = 0;  // dollars at the deployment's price, with its 95% interval
    double cost_lo = 0;
    double cost_hi = 0;
    double cost_per_1m_tokens =
        0;  // dollars per 1M tokens of the query counted in the reference's tokens: what is printed and budgeted
    double cost_per_1m_chars = 0;  // dollars per 1M characters of the query's text
    double cost_per_1k_tokens =
        0;  // per 1k of this model's own tokens in the query's mix: the portfolio's estimate for serve's metrics
    double joules_per_token = 0;
    std::string energy_source;
    std::optional<DraftScore> draft;  // a drafted original's draft, as its speed pass measured it
    // Why the cost is not known: a failed measurement, an endpoint without a declared cost, no
    // price. An unknown cost is never 0: it passes no cost budget and never wins on cost.
    std::string unknown;
    bool cost_known() const { return unknown.empty() && cost_per_query > 0; }
};

void to_json(nlohmann::json & out, const CostScore & cost);

// Dollars with three significant digits, never an exponent: "$0.0132", "$1.41", "$12.3"; "$0" at or under 0.
std::string dollars(double amount);
// The cost per 1M tokens' 95% interval as " [0.0137, 0.0145]", or "" when the cost has none.
std::string cost_bounds_text(const CostScore & cost);

// "1.8× decode, acceptance 72%": a drafted original's speed-up in one phrase.
std::string describe_draft(const DraftScore & draft);

// "$0.0141 per 1M tokens [0.0137, 0.0145]" style: the cost per 1M (reference) tokens with its
// interval, or "unknown (why)".
std::string describe_cost(const CostScore & cost);

}  // namespace switchyard::decide
