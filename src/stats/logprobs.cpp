#include "stats/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace switchyard::stats {

double log_sum_exp(std::span<const float> logits) {
    if (logits.empty()) return -std::numeric_limits<double>::infinity();
    const double max = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (const float x : logits) sum += std::exp(static_cast<double>(x) - max);
    return max + std::log(sum);
}

std::vector<IndexedLogprob> top_k_logprobs(std::span<const float> logits, double log_norm, int k) {
    const auto n = static_cast<std::int32_t>(logits.size());
    k = std::clamp(k, 0, static_cast<int>(n));
    std::vector<std::int32_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int32_t a, std::int32_t b) {
        return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    std::vector<IndexedLogprob> top;
    top.reserve(k);
    for (int i = 0; i < k; ++i) {
        top.push_back({order[i], static_cast<float>(logits[order[i]] - log_norm)});
    }
    return top;
}

}  // namespace switchyard::stats
