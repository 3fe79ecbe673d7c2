#include "stats/divergence.h"
#include "stats/group_sequential.h"
#include "stats/intervals.h"
#include "stats/logprobs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

using namespace switchyard::stats;

namespace {

// Reference values below marked "Python" come from Python 3.11: Wilson bounds from the closed form
// with z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2); McNemar p-values exactly, as
// 2 * sum(comb(n, i) for i <= min(b, c)) / 2**n in integers, printed through decimal.

std::vector<float> random_logits(std::size_t vocab, std::uint64_t seed, double spread) {
    std::mt19937_64 rng(seed);
    std::vector<float> logits(vocab);
    for (float & logit : logits) {
        const double unit = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        logit = static_cast<float>(spread * (unit - 0.5));
    }
    return logits;
}

// The base row as a top-K store holds it: float log-probabilities, put back in vocabulary order.
std::vector<float> stored_row(const std::vector<IndexedLogprob> & top, std::size_t vocab) {
    std::vector<float> row(vocab);
    for (const IndexedLogprob & entry : top) row[static_cast<std::size_t>(entry.index)] = entry.logprob;
    return row;
}

}  // namespace

TEST(Wilson, MatchesHandComputedBounds) {
    // 8/10 at 95%: the textbook [0.4902, 0.9433]; Python: 0.490162471537, 0.943317848546.
    const Interval eight_of_ten = wilson_interval(8, 10);
    EXPECT_NEAR(eight_of_ten.lo, 0.4902, 1e-4);
    EXPECT_NEAR(eight_of_ten.hi, 0.9433, 1e-4);
    EXPECT_NEAR(eight_of_ten.lo, 0.490162471537, 1e-11);
    EXPECT_NEAR(eight_of_ten.hi, 0.943317848546, 1e-11);

    // At 99% z = 2.5758..., so a hard-coded 1.96 would fail here. Python: 0.400818696522, 0.959868847495.
    const Interval at_99 = wilson_interval(8, 10, 0.99);
    EXPECT_NEAR(at_99.lo, 0.400818696522, 1e-11);
    EXPECT_NEAR(at_99.hi, 0.959868847495, 1e-11);

    // 1/1000 at 99.9% reaches the tail branch of the quantile. Python: 0.000078441986, 0.012611720609.
    const Interval rare = wilson_interval(1, 1000, 0.999);
    EXPECT_NEAR(rare.lo, 0.000078441986, 1e-11);
    EXPECT_NEAR(rare.hi, 0.012611720609, 1e-11);
}

TEST(Wilson, HandlesTheEdges) {
    const Interval none = wilson_interval(0, 0);
    EXPECT_EQ(none.lo, 0.0);
    EXPECT_EQ(none.hi, 1.0);

    // 10/10 at 95%: Python 0.722467200137; 0/10 mirrors it.
    const Interval all = wilson_interval(10, 10);
    EXPECT_NEAR(all.lo, 0.722467200137, 1e-11);
    EXPECT_EQ(all.hi, 1.0);
    const Interval zero = wilson_interval(0, 10);
    EXPECT_EQ(zero.lo, 0.0);
    EXPECT_NEAR(zero.hi, 1.0 - 0.722467200137, 1e-11);

    EXPECT_THROW(wilson_interval(11, 10), std::invalid_argument);
    EXPECT_THROW(wilson_interval(5, 10, 1.0), std::invalid_argument);
    EXPECT_THROW(wilson_interval(5, 10, 0.0), std::invalid_argument);
}

TEST(McNemar, MatchesHandComputedSmallCases) {
    EXPECT_EQ(mcnemar_exact_p(0, 0), 1.0);
    // 2 * (1/2)^5 = 0.0625.
    EXPECT_NEAR(mcnemar_exact_p(0, 5), 0.0625, 1e-15);
    EXPECT_NEAR(mcnemar_exact_p(5, 0), 0.0625, 1e-15);
    // b == c: P[X <= n/2] >= 1/2, so the two-sided p is capped at 1.
    EXPECT_EQ(mcnemar_exact_p(3, 3), 1.0);
    // 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024 = 0.021484375.
    EXPECT_NEAR(mcnemar_exact_p(1, 9), 0.021484375, 1e-15);
    EXPECT_NEAR(mcnemar_exact_p(9, 1), 0.021484375, 1e-15);
    // Python (exact): 7.85013964559367e-05.
    EXPECT_NEAR(mcnemar_exact_p(30, 70) / 7.85013964559367e-05, 1.0, 1e-12);
}

TEST(McNemar, StaysAccurateForLargeCounts) {
    // Python (exact): 0.027972423571324382, 2.5887160383468979e-10, 0.20703897176422484.
    const double medium = mcnemar_exact_p(4000, 4200);
    EXPECT_TRUE(std::isfinite(medium));
    EXPECT_GT(medium, 0.0);
    EXPECT_LT(medium, 1.0);
    EXPECT_NEAR(medium / 0.027972423571324382, 1.0, 1e-9);
    EXPECT_NEAR(mcnemar_exact_p(49000, 51000) / 2.5887160383468979e-10, 1.0, 1e-9);
    EXPECT_NEAR(mcnemar_exact_p(49800, 50200) / 0.20703897176422484, 1.0, 1e-9);
}

TEST(Bootstrap, IdenticalOutcomesGiveNoDrop) {
    std::vector<std::uint8_t> outcomes(50);
    for (std::size_t i = 0; i < outcomes.size(); ++i) outcomes[i] = i % 3 != 0;
    for (const bool relative : {false, true}) {
        const PairedDifference result = paired_bootstrap_drop(outcomes, outcomes, relative);
        EXPECT_EQ(result.mean_drop, 0.0);
        EXPECT_EQ(result.ci.lo, 0.0);
        EXPECT_EQ(result.ci.hi, 0.0);
    }
}

TEST(Bootstrap, SupportsARealAbsoluteDrop) {
    // The base gets all 100 items right; the variant loses every fifth: a drop of 20 points.
    const std::vector<std::uint8_t> base(100, 1);
    std::vector<std::uint8_t> variant(100, 1);
    for (std::size_t i = 0; i < variant.size(); i += 5) variant[i] = 0;
    const PairedDifference result = paired_bootstrap_drop(base, variant, false);
    EXPECT_NEAR(result.mean_drop, 0.2, 1e-12);
    EXPECT_GT(result.ci.lo, 0.0);
    EXPECT_LT(result.ci.lo, 0.2);
    EXPECT_GT(result.ci.hi, 0.2);
}

TEST(Bootstrap, MeasuresTheRelativeDrop) {
    // Base: 80 of 100 right. Variant: loses 20 of those 80, so 0.2 absolute and 20/80 = 0.25 relative.
    std::vector<std::uint8_t> base(100);
    for (std::size_t i = 0; i < base.size(); ++i) base[i] = i % 5 != 0;
    std::vector<std::uint8_t> variant = base;
    std::size_t lost = 0;
    for (std::size_t i = 0; i < variant.size() && lost < 20; ++i) {
        if (variant[i] != 0 && i % 2 == 1) {
            variant[i] = 0;
            ++lost;
        }
    }
    ASSERT_EQ(lost, 20u);
    EXPECT_NEAR(paired_bootstrap_drop(base, variant, false).mean_drop, 0.2, 1e-12);
    const PairedDifference relative = paired_bootstrap_drop(base, variant, true);
    EXPECT_NEAR(relative.mean_drop, 0.25, 1e-12);
    EXPECT_GT(relative.ci.lo, 0.0);
    EXPECT_LT(relative.ci.lo, 0.25);
    EXPECT_GT(relative.ci.hi, 0.25);

    // With no base accuracy to lose, every resample counts as no drop.
    const std::vector<std::uint8_t> never(10, 0);
    const std::vector<std::uint8_t> sometimes = {1, 0, 1, 0, 0, 0, 1, 0, 0, 0};
    const PairedDifference from_zero = paired_bootstrap_drop(never, sometimes, true);
    EXPECT_EQ(from_zero.mean_drop, 0.0);
    EXPECT_EQ(from_zero.ci.lo, 0.0);
    EXPECT_EQ(from_zero.ci.hi, 0.0);
}

TEST(Bootstrap, IsDeterministicForASeed) {
    std::vector<std::uint8_t> base(37);
    std::vector<std::uint8_t> variant(37);
    for (std::size_t i = 0; i < base.size(); ++i) {
        base[i] = i % 4 != 0;
        variant[i] = i % 3 != 0;
    }
    const PairedDifference first = paired_bootstrap_drop(base, variant, false, 2000, 42);
    const PairedDifference second = paired_bootstrap_drop(base, variant, false, 2000, 42);
    EXPECT_EQ(first.mean_drop, second.mean_drop);
    EXPECT_EQ(first.ci.lo, second.ci.lo);
    EXPECT_EQ(first.ci.hi, second.ci.hi);
    // Recorded from this implementation. mt19937_64's sequence and the index draw are fully
    // specified, so every standard library must reproduce these; another seed draws other resamples.
    EXPECT_DOUBLE_EQ(first.ci.lo, -4.0 / 37.0);
    EXPECT_DOUBLE_EQ(first.ci.hi, 11.0 / 37.0);
    EXPECT_DOUBLE_EQ(paired_bootstrap_drop(base, variant, false, 2000, 43).ci.lo, -5.0 / 37.0);
}

TEST(Bootstrap, RejectsUnpairedInput) {
    const std::vector<std::uint8_t> ten(10, 1);
    const std::vector<std::uint8_t> nine(9, 1);
    const std::vector<std::uint8_t> none;
    EXPECT_THROW(paired_bootstrap_drop(ten, nine, false), std::invalid_argument);
    EXPECT_THROW(paired_bootstrap_drop(none, none, false), std::invalid_argument);
    EXPECT_THROW(paired_bootstrap_drop(ten, ten, false, 0), std::invalid_argument);
}

// Agresti-Min: half an item in each cell, then Wald. 30 flips down and 10 up on 1000 items:
// centre (30.5 - 10.5) / 1002, half-width 1.96 * sqrt(41 - 20^2 / 1002) / 1002.
TEST(PairedDifference, MatchesHandComputedBounds) {
    const Interval i = paired_difference_interval(1000, 30, 10, 0.95);
    const double centre = 20.0 / 1002.0;
    const double half = 1.959963984540054 * std::sqrt(41.0 - 400.0 / 1002.0) / 1002.0;
    EXPECT_NEAR(i.lo, centre - half, 1e-9);
    EXPECT_NEAR(i.hi, centre + half, 1e-9);
    // No flips is never a zero-width interval, and fewer items widen it.
    const Interval five = paired_difference_interval(5, 0, 0, 0.95);
    EXPECT_NEAR(five.hi, 1.959963984540054 / 7.0, 1e-9);
    EXPECT_NEAR(five.lo, -five.hi, 1e-12);
    EXPECT_LT(paired_difference_interval(400, 0, 0, 0.95).hi, five.hi);
    // A higher level is a wider interval; nothing scored says nothing.
    EXPECT_GT(paired_difference_interval(1000, 30, 10, 0.999).hi, i.hi);
    EXPECT_EQ(paired_difference_interval(0, 0, 0, 0.95).lo, -1.0);
    EXPECT_THROW(paired_difference_interval(3, 2, 2, 0.95), std::invalid_argument);
}

TEST(Divergence, SummarizesWithInterpolatedPercentiles) {
    // Sorted {1, 2, 3, 4, 10}: mean 4; p50 at rank 2 = 3; p90 at rank 3.6 = 4 + 0.6 * 6 = 7.6;
    // p99 at rank 3.96 = 4 + 0.96 * 6 = 9.76 (numpy.percentile gives the same).
    const DivergenceSummary odd = summarize({10.0, 3.0, 1.0, 4.0, 2.0});
    EXPECT_DOUBLE_EQ(odd.mean, 4.0);
    EXPECT_DOUBLE_EQ(odd.median, 3.0);
    EXPECT_NEAR(odd.p90, 7.6, 1e-12);
    EXPECT_NEAR(odd.p99, 9.76, 1e-12);
    EXPECT_EQ(odd.max, 10.0);
    EXPECT_EQ(odd.n, 5u);

    // An even count puts the median halfway between the middle two.
    EXPECT_DOUBLE_EQ(summarize({4.0, 1.0, 2.0, 3.0}).median, 2.5);

    const DivergenceSummary empty = summarize({});
    EXPECT_EQ(empty.n, 0u);
    EXPECT_EQ(empty.mean, 0.0);
    EXPECT_EQ(empty.median, 0.0);
    EXPECT_EQ(empty.p90, 0.0);
    EXPECT_EQ(empty.p99, 0.0);
    EXPECT_EQ(empty.max, 0.0);
}

TEST(Divergence, KlOfIdenticalRowsIsZero) {
    const std::vector<float> logits = random_logits(300, 7, 12.0);
    EXPECT_EQ(kl_divergence(logits, logits), 0.0);
}

TEST(Divergence, KlMatchesTwoTokenHandComputation) {
    // P = (1/2, 1/2), Q = (e, 1) / (1 + e):
    // KL = 1/2 ln((1 + e) / (2e)) + 1/2 ln((1 + e) / 2) = ln(1 + e) - ln 2 - 1/2 = 0.12011450695827752,
    // to single precision: the normalizers sum single-precision exponentials, as llama-perplexity's do.
    const std::vector<float> base = {0.0f, 0.0f};
    const std::vector<float> other = {1.0f, 0.0f};
    EXPECT_NEAR(kl_divergence(base, other), 0.12011450695827752, 1e-7);
    // Only the distributions matter, not the logits' offset.
    const std::vector<float> shifted_base = {-5.0f, -5.0f};
    const std::vector<float> shifted_other = {3.0f, 2.0f};
    EXPECT_NEAR(kl_divergence(shifted_base, shifted_other), 0.12011450695827752, 1e-7);

    EXPECT_THROW(kl_divergence(base, std::vector<float>{1.0f}), std::invalid_argument);
}

TEST(Divergence, TopKWithTheWholeVocabularyIsExact) {
    const std::size_t vocab = 256;
    const std::vector<float> base = random_logits(vocab, 1, 10.0);
    const std::vector<float> other = random_logits(vocab, 2, 10.0);
    const std::vector<IndexedLogprob> top = top_k_logprobs(base, log_sum_exp(base), static_cast<int>(vocab));
    // Against the distribution the store actually holds (float log-probabilities), exact to rounding.
    EXPECT_NEAR(kl_divergence_topk(top, other), kl_divergence(stored_row(top, vocab), other), 1e-9);
    // Against the raw base logits, only the float storage of the log-probabilities differs.
    EXPECT_NEAR(kl_divergence_topk(top, other), kl_divergence(base, other), 1e-6);
}

TEST(Divergence, TopKNeverExceedsTheExactKl) {
    // A peaked base and a lightly perturbed copy of it, as a compressed model would be.
    const std::size_t vocab = 512;
    const std::vector<float> base = random_logits(vocab, 3, 24.0);
    const std::vector<float> noise = random_logits(vocab, 4, 1.0);
    std::vector<float> other(vocab);
    for (std::size_t i = 0; i < vocab; ++i) other[i] = base[i] + noise[i];
    const double base_norm = log_sum_exp(base);
    const double exact = kl_divergence(stored_row(top_k_logprobs(base, base_norm, 512), vocab), other);
    // K stops short of the vocabulary: once the tail is a few millionths of the mass, the float
    // storage of the log-probabilities (about 1e-7 relative) outweighs what the bucket loses.
    for (const int k : {1, 8, 32, 64, 128}) {
        const double approximate = kl_divergence_topk(top_k_logprobs(base, base_norm, k), other);
        EXPECT_LE(approximate, exact + 1e-12) << "k = " << k;
    }
    // The top 128 tokens hold 99.8% of this base's mass.
    EXPECT_NEAR(kl_divergence_topk(top_k_logprobs(base, base_norm, 128), other), exact, 0.01 * exact);
}

// The group-sequential levels: one look at the end is the fixed test; over several looks a test
// at each look's level errs at most alpha in all (checked on Brownian motion, the looks' joint law).
TEST(GroupSequential, LooksSpendAlphaAndOneLookIsTheFixedTest) {
    EXPECT_EQ(switchyard::stats::nominal_levels({1.0}, 0.025, 3.0), std::vector<double>{0.025});
    std::vector<double> t;
    for (int k = 1; k <= 10; ++k) t.push_back(k / 10.0);
    const auto levels = switchyard::stats::nominal_levels(t, 0.025, 3.0);
    ASSERT_EQ(levels.size(), 10u);
    for (std::size_t k = 1; k < levels.size(); ++k) EXPECT_GT(levels[k], levels[k - 1]) << "strict early, loose late";
    EXPECT_LT(levels.front(), 1e-4);
    EXPECT_GT(levels.back(), 0.015);
    EXPECT_LT(levels.back(), 0.025) << "looking costs the last look some of its level";
    // A look's level depends on the looks before it only: stopping short changes nothing before.
    const auto first5 = switchyard::stats::nominal_levels({0.1, 0.2, 0.3, 0.4, 0.5}, 0.025, 3.0);
    for (std::size_t k = 0; k < 5; ++k) EXPECT_NEAR(first5[k], levels[k], 1e-12);

    std::mt19937_64 rng(11);
    std::normal_distribution<double> normal;
    std::size_t rejected = 0;
    const std::size_t runs = 200000;
    for (std::size_t run = 0; run < runs; ++run) {
        double w = 0, before = 0;
        for (std::size_t k = 0; k < t.size(); ++k) {
            w += std::sqrt(t[k] - before) * normal(rng);
            before = t[k];
            if (w / std::sqrt(t[k]) >= switchyard::stats::normal_quantile(1 - levels[k])) {
                ++rejected;
                break;
            }
        }
    }
    const double rate = static_cast<double>(rejected) / runs;
    EXPECT_NEAR(rate, 0.025, 3 * std::sqrt(0.025 * 0.975 / runs));
    EXPECT_THROW(switchyard::stats::nominal_levels({0.5, 0.4}, 0.025, 3.0), std::invalid_argument);
}
