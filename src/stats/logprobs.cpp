#include "stats/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace switchyard::stats {

double log_sum_exp(std::span<const float> logits) {
    if (logits.empty()) return -std::numeric_limits<double>::infinity();
    const float max = *std::max_element(logits.begin(), logits.end());
    // Single-precision exponentials, summed in double, as llama-perplexity does: a double exp per
    // vocabulary entry and position cost several percent of a whole pass at 150k entries, for
    // digits below the sum's own rounding.
    double sum = 0.0;
    for (const float x : logits) sum += std::exp(x - max);
    return max + std::log(sum);
}

void top_k_logprobs(std::span<const float> logits, double log_norm, std::span<IndexedLogprob> out,
                    std::vector<std::int32_t> & scratch) {
    const auto n = static_cast<std::int32_t>(logits.size());
    const auto k = static_cast<std::ptrdiff_t>(std::min(out.size(), logits.size()));
    scratch.resize(logits.size());
    std::iota(scratch.begin(), scratch.end(), 0);
    std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.begin() + n, [&](std::int32_t a, std::int32_t b) {
        return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (std::ptrdiff_t i = 0; i < k; ++i) out[i] = {scratch[i], static_cast<float>(logits[scratch[i]] - log_norm)};
}

std::vector<IndexedLogprob> top_k_logprobs(std::span<const float> logits, double log_norm, int k) {
    std::vector<IndexedLogprob> top(static_cast<std::size_t>(std::clamp(k, 0, static_cast<int>(logits.size()))));
    std::vector<std::int32_t> scratch;
    top_k_logprobs(logits, log_norm, top, scratch);
    return top;
}

}  // namespace switchyard::stats
