// How far a compressed model's next-token distributions drift from the base model's: KLD and its summary.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "stats/logprobs.h"

namespace switchyard::stats {

struct DivergenceSummary {
    double mean;
    double median;
    double p90;
    double p99;
    double max;
    std::size_t n;
};

// Percentiles interpolate linearly between the closest ranks (numpy's default). Empty input gives
// all zeros with n = 0.
DivergenceSummary summarize(std::vector<double> values);

// KL(P_base || P_other) between the distributions of two raw logit rows over the same vocabulary.
double kl_divergence(std::span<const float> base_logits, std::span<const float> other_logits);

// KL(P_base || P_other) when only the base's top-K log-probabilities were kept (indices distinct).
// The base mass outside the top K is one bucket, compared with the other model's mass on the same
// tokens. Exact when K covers the vocabulary (up to the float rounding of the stored log-probabilities);
// otherwise, by the log-sum inequality, never above the exact KLD, and close to it when the top K
// hold most of the base mass.
double kl_divergence_topk(std::span<const IndexedLogprob> base_top, std::span<const float> other_logits);

}  // namespace switchyard::stats
