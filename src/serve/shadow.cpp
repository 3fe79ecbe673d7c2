#include "serve/shadow.h"

#include "stats/divergence.h"

#include <cmath>
#include <sstream>

namespace switchyard::serve {

std::vector<std::string> words(const std::string & text) {
    std::istringstream in(text);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

namespace {

// A full log-probability row rebuilt from a top-k list: what stats::kl_divergence_topk compares against.
std::vector<float> row_from_topk(const std::vector<engine::TopToken> & top, int vocab_size) {
    double kept = 0;
    for (const auto & t : top) kept += std::exp(static_cast<double>(t.logprob));
    const int rest_count = vocab_size - static_cast<int>(top.size());
    const double rest = std::max(1.0 - kept, 1e-12);
    std::vector<float> row(static_cast<std::size_t>(vocab_size),
                           static_cast<float>(std::log(rest / std::max(rest_count, 1))));
    for (const auto & t : top) {
        if (t.token >= 0 && t.token < vocab_size) row[static_cast<std::size_t>(t.token)] = t.logprob;
    }
    return row;
}

}  // namespace

std::optional<double> topk_kld(std::span<const engine::TokenLogprob> incumbent,
                               std::span<const engine::TokenLogprob> candidate, int vocab_size) {
    const std::size_t n = std::min(incumbent.size(), candidate.size());
    if (n == 0 || vocab_size <= 0) return std::nullopt;
    double sum = 0;
    std::size_t counted = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (incumbent[i].top.empty() || candidate[i].top.empty()) continue;
        std::vector<stats::IndexedLogprob> base;
        for (const auto & t : incumbent[i].top) base.push_back({t.token, t.logprob});
        sum += stats::kl_divergence_topk(base, row_from_topk(candidate[i].top, vocab_size));
        ++counted;
    }
    if (counted == 0) return std::nullopt;
    return sum / static_cast<double>(counted);
}

ShadowVerdict shadow_verdict(const model::Shadow & shadow, std::uint64_t samples, double agreement) {
    if (samples < static_cast<std::uint64_t>(std::max(shadow.min_samples, 1))) return ShadowVerdict::keep;
    if (shadow.promote_at && agreement >= *shadow.promote_at) return ShadowVerdict::promote;
    if (shadow.rollback_below && agreement < *shadow.rollback_below) return ShadowVerdict::roll_back;
    return ShadowVerdict::keep;
}

}  // namespace switchyard::serve
