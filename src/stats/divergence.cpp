#include "stats/divergence.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "stats/intervals.h"

namespace switchyard::stats {

namespace {

// Stands in for a zero probability mass so the remainder term stays finite.
constexpr double kTinyMass = 1e-10;

}  // namespace

DivergenceSummary summarize(std::vector<double> values) {
    if (values.empty()) return {0.0, 0.0, 0.0, 0.0, 0.0, 0};
    std::sort(values.begin(), values.end());
    const double mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
    return {mean, quantile(values, 0.5), quantile(values, 0.9), quantile(values, 0.99), values.back(), values.size()};
}

double kl_divergence(std::span<const float> base_logits, std::span<const float> other_logits) {
    if (base_logits.size() != other_logits.size()) {
        throw std::invalid_argument("logit rows cover different vocabularies");
    }
    if (base_logits.empty()) throw std::invalid_argument("empty logit rows");
    const double base_norm = log_sum_exp(base_logits);
    const double other_norm = log_sum_exp(other_logits);
    double kl = 0.0;
    for (std::size_t i = 0; i < base_logits.size(); ++i) {
        const double log_p = base_logits[i] - base_norm;
        const double p = std::exp(log_p);
        // A token the base never produces contributes nothing, even where the other row is -inf.
        if (p == 0.0) continue;
        kl += p * (log_p - (other_logits[i] - other_norm));
    }
    // KL is never negative; rounding can leave a near-identical pair a hair below zero.
    return std::max(0.0, kl);
}

double kl_divergence_topk(std::span<const IndexedLogprob> base_top, std::span<const float> other_logits) {
    if (other_logits.empty()) throw std::invalid_argument("empty logit row");
    // Called once per scored position: the marks reuse one buffer per thread instead of allocating
    // a vocabulary-sized one each time.
    thread_local std::vector<bool> stored;
    stored.assign(other_logits.size(), false);
    double stored_base_mass = 0.0;
    for (const IndexedLogprob & entry : base_top) {
        if (entry.index < 0 || static_cast<std::size_t>(entry.index) >= other_logits.size()) {
            throw std::invalid_argument("top-k index outside the vocabulary");
        }
        const auto token = static_cast<std::size_t>(entry.index);
        if (stored[token]) throw std::invalid_argument("top-k index stored twice");
        stored[token] = true;
        stored_base_mass += std::exp(static_cast<double>(entry.logprob));
    }

    // The other model's mass off the base's top K, summed directly: 1 - (mass on the top K) would
    // cancel to noise exactly when that mass is small and matters.
    // Single-precision terms, double sums: as in log_sum_exp.
    const float other_max = *std::max_element(other_logits.begin(), other_logits.end());
    double other_total = 0.0;
    double other_rest = 0.0;
    std::size_t rest_tokens = 0;
    for (std::size_t i = 0; i < other_logits.size(); ++i) {
        const double weight = std::exp(other_logits[i] - other_max);
        other_total += weight;
        if (!stored[i]) {
            other_rest += weight;
            ++rest_tokens;
        }
    }
    const double other_norm = other_max + std::log(other_total);

    // With the whole vocabulary stored there is no remainder bucket, so the stored probabilities carry
    // all the mass: renormalising absorbs the float rounding of the stored log-probabilities, which
    // would otherwise surface as a spurious remainder of about 1e-7.
    const double log_base_scale = rest_tokens == 0 ? -std::log(stored_base_mass) : 0.0;
    double kl = 0.0;
    for (const IndexedLogprob & entry : base_top) {
        const double log_p = entry.logprob + log_base_scale;
        const double p = std::exp(log_p);
        if (p == 0.0) continue;
        kl += p * (log_p - (other_logits[static_cast<std::size_t>(entry.index)] - other_norm));
    }
    if (rest_tokens > 0) {
        const double base_rest = std::max(1.0 - stored_base_mass, kTinyMass);
        const double other_rest_mass = std::max(other_rest / other_total, kTinyMass);
        kl += base_rest * (std::log(base_rest) - std::log(other_rest_mass));
    }
    // Stored log-probabilities that overstate the mass slightly can pull a tiny KL below zero.
    return std::max(0.0, kl);
}

}  // namespace switchyard::stats
