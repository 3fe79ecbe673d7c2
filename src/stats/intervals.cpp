#include "stats/intervals.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

namespace switchyard::stats {

// Standard normal quantile by Wichura's AS241 (PPND16), accurate to about 1e-16 for p in (0, 1).
double normal_quantile(double p) {
    const double q = p - 0.5;
    if (std::fabs(q) <= 0.425) {
        const double r = 0.180625 - q * q;
        const double num =
            (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r +
                 4.5921953931549871457e+4) *
                    r +
                1.3731693765509461125e+4) *
                   r +
               1.9715909503065514427e+3) *
                  r +
              1.3314166789178437745e+2) *
                 r +
             3.3871328727963666080e+0) *
            q;
        const double den =
            (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r +
                 2.1213794301586595867e+4) *
                    r +
                5.3941960214247511077e+3) *
                   r +
               6.8718700749205790830e+2) *
                  r +
              4.2313330701600911252e+1) *
                 r +
             1.0);
        return num / den;
    }
    double r = std::sqrt(-std::log(q < 0.0 ? p : 1.0 - p));
    double x;
    if (r <= 5.0) {
        r -= 1.6;
        const double num =
            (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r +
                 1.27045825245236838258e+0) *
                    r +
                3.64784832476320460504e+0) *
                   r +
               5.76949722146069140550e+0) *
                  r +
              4.63033784615654529590e+0) *
                 r +
             1.42343711074968357734e+0);
        const double den =
            (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r +
                 1.48103976427480074590e-1) *
                    r +
                6.89767334985100004550e-1) *
                   r +
               1.67638483018380384940e+0) *
                  r +
              2.05319162663775882187e+0) *
                 r +
             1.0);
        x = num / den;
    } else {
        r -= 5.0;
        const double num =
            (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.24266094738807843860e-3) * r +
                 2.65321895265761230930e-2) *
                    r +
                2.96560571828504891230e-1) *
                   r +
               1.78482653991729133580e+0) *
                  r +
              5.46378491116411436990e+0) *
                 r +
             6.65790464350110377720e+0);
        const double den =
            (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r + 1.84631831751005468180e-5) * r +
                 7.86869131145613259100e-4) *
                    r +
                1.48753612908506148525e-2) *
                   r +
               1.36929880922735805310e-1) *
                  r +
              5.99832206555887937690e-1) *
                 r +
             1.0);
        x = num / den;
    }
    return q < 0.0 ? -x : x;
}

namespace {

void require_confidence(double confidence) {
    if (!(confidence > 0.0 && confidence < 1.0)) {
        throw std::invalid_argument("confidence must lie strictly between 0 and 1");
    }
}

// Uniform in [0, n) by rejection: std::uniform_int_distribution would be simpler, but its output
// differs between standard libraries and a seed must reproduce the same interval everywhere.
std::size_t uniform_index(std::mt19937_64 & rng, std::size_t n) {
    const std::uint64_t bound = n;
    // Accepting only draws at or above 2^64 mod n leaves a range whose length is a multiple of n.
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        const std::uint64_t draw = rng();
        if (draw >= threshold) return static_cast<std::size_t>(draw % bound);
    }
}

double drop(std::size_t base_hits, std::size_t variant_hits, std::size_t items, bool relative) {
    const double difference = static_cast<double>(base_hits) - static_cast<double>(variant_hits);
    if (!relative) return difference / static_cast<double>(items);
    return base_hits == 0 ? 0.0 : difference / static_cast<double>(base_hits);
}

}  // namespace

Interval wilson_interval(std::size_t successes, std::size_t n, double confidence) {
    require_confidence(confidence);
    if (successes > n) throw std::invalid_argument("successes exceed trials");
    if (n == 0) return {0.0, 1.0};
    const double z = normal_quantile(0.5 + confidence / 2.0);
    const double trials = static_cast<double>(n);
    const double p = static_cast<double>(successes) / trials;
    const double z2 = z * z;
    const double denominator = 1.0 + z2 / trials;
    const double center = (p + z2 / (2.0 * trials)) / denominator;
    const double half_width = z * std::sqrt(p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)) / denominator;
    // At 0/n and n/n the bound is exactly 0 or 1 in theory; rounding would leave it a hair off.
    const double lo = successes == 0 ? 0.0 : std::max(0.0, center - half_width);
    const double hi = successes == n ? 1.0 : std::min(1.0, center + half_width);
    return {lo, hi};
}

double mcnemar_exact_p(std::size_t b, std::size_t c) {
    const std::size_t n = b + c;
    const std::size_t k = std::min(b, c);
    if (n == 0) return 1.0;
    // P[X <= k] = pmf(k) * (1 + pmf(k-1)/pmf(k) + ...). Only pmf(k) goes through lgamma; the tail is
    // a sum of ratios i / (n - i + 1) <= 1, so nothing overflows and 2^-n never appears on its own.
    const double trials = static_cast<double>(n);
    const double log_pmf_k = std::lgamma(trials + 1.0) - std::lgamma(static_cast<double>(k) + 1.0) -
        std::lgamma(static_cast<double>(n - k) + 1.0) - trials * std::log(2.0);
    double tail_over_pmf_k = 1.0;
    double term = 1.0;
    for (std::size_t i = k; i > 0; --i) {
        term *= static_cast<double>(i) / static_cast<double>(n - i + 1);
        tail_over_pmf_k += term;
    }
    const double one_sided = std::exp(log_pmf_k + std::log(tail_over_pmf_k));
    return std::min(1.0, 2.0 * one_sided);
}

PairedDifference paired_bootstrap_drop(std::span<const std::uint8_t> base_correct,
                                       std::span<const std::uint8_t> variant_correct, bool relative,
                                       std::size_t resamples, std::uint64_t seed, double confidence) {
    require_confidence(confidence);
    if (base_correct.size() != variant_correct.size()) {
        throw std::invalid_argument("base and variant outcomes cover different numbers of items");
    }
    if (base_correct.empty()) throw std::invalid_argument("no items to compare");
    if (resamples == 0) throw std::invalid_argument("at least one bootstrap resample is needed");

    const std::size_t items = base_correct.size();
    std::size_t base_hits = 0;
    std::size_t variant_hits = 0;
    for (std::size_t i = 0; i < items; ++i) {
        base_hits += base_correct[i] != 0;
        variant_hits += variant_correct[i] != 0;
    }

    std::mt19937_64 rng(seed);
    std::vector<double> drops(resamples);
    for (double & resampled : drops) {
        std::size_t resampled_base = 0;
        std::size_t resampled_variant = 0;
        for (std::size_t draw = 0; draw < items; ++draw) {
            const std::size_t i = uniform_index(rng, items);
            resampled_base += base_correct[i] != 0;
            resampled_variant += variant_correct[i] != 0;
        }
        resampled = drop(resampled_base, resampled_variant, items, relative);
    }
    std::sort(drops.begin(), drops.end());
    const double tail = (1.0 - confidence) / 2.0;
    return {drop(base_hits, variant_hits, items, relative), {quantile(drops, tail), quantile(drops, 1.0 - tail)}};
}

Interval paired_difference_interval(std::size_t n, std::size_t right_to_wrong, std::size_t wrong_to_right,
                                    double confidence) {
    require_confidence(confidence);
    if (right_to_wrong + wrong_to_right > n) throw std::invalid_argument("more flips than items");
    if (n == 0) return {-1.0, 1.0};
    const double b = static_cast<double>(right_to_wrong) + 0.5;
    const double c = static_cast<double>(wrong_to_right) + 0.5;
    const double items = static_cast<double>(n) + 2.0;
    const double center = (b - c) / items;
    const double half_width =
        normal_quantile(0.5 + confidence / 2.0) * std::sqrt((b + c) - (b - c) * (b - c) / items) / items;
    return {std::max(-1.0, center - half_width), std::min(1.0, center + half_width)};
}

double quantile(std::span<const double> sorted_values, double q) {
    if (sorted_values.empty()) throw std::invalid_argument("quantile of no values");
    if (!(q >= 0.0 && q <= 1.0)) throw std::invalid_argument("quantile must lie in [0, 1]");
    const double position = q * static_cast<double>(sorted_values.size() - 1);
    const auto below = static_cast<std::size_t>(position);
    if (below + 1 >= sorted_values.size()) return sorted_values.back();
    const double fraction = position - static_cast<double>(below);
    return sorted_values[below] + fraction * (sorted_values[below + 1] - sorted_values[below]);
}

}  // namespace switchyard::stats
