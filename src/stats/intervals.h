// Uncertainty for accuracy figures: confidence intervals and paired tests between two models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace switchyard::stats {

struct Interval {
    double lo;
    double hi;
};

// The standard normal quantile: x with P(Z <= x) = p, for p in (0, 1) (Wichura's AS241).
double normal_quantile(double p);

// Wilson score interval for a binomial proportion. Unlike the normal approximation it stays inside
// [0, 1] and keeps its coverage at 0/n and n/n, which small task suites hit often. n == 0 gives [0, 1].
Interval wilson_interval(std::size_t successes, std::size_t n, double confidence = 0.95);

// Two-sided exact McNemar p-value from the discordant counts (b: only the first model right, c: only
// the second): a binomial test of b against p = 0.5 on b + c trials. b + c == 0 gives 1.
double mcnemar_exact_p(std::size_t b, std::size_t c);

struct PairedDifference {
    double mean_drop;  // on the items as given, not the mean of the resamples
    Interval ci;  // percentile interval of the resampled drops
};

// Accuracy drop base - variant with a paired bootstrap: each resample draws item indices with
// replacement and scores both models on the same indices, so per-item correlation is kept.
// A nonzero byte counts as correct. relative: (base - variant) / base, with a drop of 0 where base
// accuracy is 0. The same seed gives the same result on every platform.
PairedDifference paired_bootstrap_drop(std::span<const std::uint8_t> base_correct,
                                       std::span<const std::uint8_t> variant_correct, bool relative,
                                       std::size_t resamples = 10000, std::uint64_t seed = 1, double confidence = 0.95);

// Interval for the paired difference of two proportions, (right_to_wrong - wrong_to_right) / n, by
// Agresti and Min (2005): half an item added to each of the four cells, then Wald. Unlike the
// bootstrap it never collapses to a single point (no flips on 5 items still leaves +-28 points at
// 95%), and it keeps its coverage near the nominal level for small n. n == 0 gives [-1, 1].
Interval paired_difference_interval(std::size_t n, std::size_t right_to_wrong, std::size_t wrong_to_right,
                                    double confidence);

// Quantile q in [0, 1] of ascending values, interpolating linearly between the closest ranks
// (numpy's default method).
double quantile(std::span<const double> sorted_values, double q);

}  // namespace switchyard::stats
