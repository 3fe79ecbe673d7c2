#include "decide/costs.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace switchyard::decide {

void to_json(nlohmann::json & out, const CostScore & c) {
    out = {{"remote", c.remote},
           {"file_bytes", c.file_bytes},
           {"peak_rss_bytes", c.peak_rss_bytes},
           {"kv_cache_bytes", c.kv_cache_bytes},
           {"prefill_tokens_per_s", c.prefill_tokens_per_s},
           {"decode_tokens_per_s", c.decode_tokens_per_s},
           {"ttft_p95_ms", c.ttft_p95_ms},
           {"p95_latency_ms", c.p95_latency_ms},
           {"chars_per_token", c.chars_per_token},
           {"query_prompt_tokens", c.query_prompt_tokens},
           {"query_generate_tokens", c.query_generate_tokens},
           {"reference", c.reference},
           {"ratio", c.ratio},
           {"ratio_ci95", {c.ratio_lo, c.ratio_hi}},
           {"rounds", c.rounds},
           {"cost_per_query", c.cost_per_query},
           {"cost_per_query_ci95", {c.cost_lo, c.cost_hi}},
           {"cost_per_1m_tokens", c.cost_per_1m_tokens},
           {"cost_per_1m_chars", c.cost_per_1m_chars},
           {"cost_per_1k_tokens", c.cost_per_1k_tokens},
           {"joules_per_token", c.joules_per_token},
           {"energy_source", c.energy_source}};
    if (c.draft) {
        const auto & d = *c.draft;
        // The speed-up per query is the inverse of the time ratio to the reference (the original undrafted).
        out["draft"] = {{"drafted_tokens", d.drafted},
                        {"accepted_tokens", d.accepted},
                        {"acceptance", d.acceptance()},
                        {"decode_speedup", d.decode_speedup},
                        {"query_speedup", c.ratio > 0 ? 1 / c.ratio : 0},
                        {"query_speedup_ci95", {c.ratio_hi > 0 ? 1 / c.ratio_hi : 0, c.ratio_lo > 0 ? 1 / c.ratio_lo : 0}},
                        {"answers_compared", d.answers_compared},
                        {"answers_identical", d.answers_identical},
                        {"first_difference", d.first_difference}};
    }
    if (!c.cost_known()) out["cost_unknown"] = c.unknown.empty() ? "not measured" : c.unknown;
}

std::string dollars(double v) {
    if (v <= 0) return "$0";
    if (v >= 100) return fmt::format("${:.0f}", v);
    const int decimals = std::max(0, 2 - static_cast<int>(std::floor(std::log10(v))));
    return fmt::format("${:.{}f}", v, decimals);
}

std::string cost_bounds_text(const CostScore & c) {
    if (!(c.cost_lo > 0 && c.cost_hi > c.cost_lo)) return "";
    const double scale = c.cost_per_1m_tokens / c.cost_per_query;
    return fmt::format(" [{}, {}]", dollars(c.cost_lo * scale).substr(1), dollars(c.cost_hi * scale).substr(1));
}

std::string describe_draft(const DraftScore & d) {
    return fmt::format("{:.2f}× decode, acceptance {:.0f}%", d.decode_speedup, 100 * d.acceptance());
}

std::string describe_cost(const CostScore & c) {
    if (!c.cost_known()) return "cost unknown (" + (c.unknown.empty() ? std::string("not measured") : c.unknown) + ")";
    std::string out = dollars(c.cost_per_1m_tokens) + " per 1M tokens" + cost_bounds_text(c);
    if (!c.reference.empty() && c.ratio_lo == c.ratio_hi) {
        out += fmt::format(", the reference ({} rounds)", c.rounds);
    } else if (!c.reference.empty()) {
        out += fmt::format(", {:.2f}x {} [{:.2f}, {:.2f}] over {} rounds", c.ratio, c.reference, c.ratio_lo, c.ratio_hi,
                           c.rounds);
    }
    return out;
}

}  // namespace switchyard::decide
