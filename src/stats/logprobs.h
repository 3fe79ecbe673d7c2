// Log-probabilities from raw logits: the numeric primitive behind scoring, KLD and agreement.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace switchyard::stats {

// log(sum(exp(logits))), computed stably: each term in single precision, the sum in double.
double log_sum_exp(std::span<const float> logits);

struct IndexedLogprob {
    std::int32_t index;
    float logprob;
};

// The k entries with the highest logits, as log-probabilities, best first (ties: lower index first).
std::vector<IndexedLogprob> top_k_logprobs(std::span<const float> logits, double log_norm, int k);

// The same into `out` (k = out.size()), with `scratch` reused from call to call: no allocation once
// it has grown to the vocabulary, for loops that run once per position.
void top_k_logprobs(std::span<const float> logits, double log_norm, std::span<IndexedLogprob> out,
                    std::vector<std::int32_t> & scratch);

}  // namespace switchyard::stats
