#include "stats/noninferiority.h"

#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace switchyard::stats {

namespace {

void require_alpha(double alpha) {
    if (!(alpha > 0.0 && alpha < 0.5)) throw std::invalid_argument("alpha must lie strictly between 0 and 0.5");
}

// The hypothesis "drop = d" as sum_k p_k a_k = 0 over the cells (both right, right->wrong,
// wrong->right, both wrong).
std::array<double, 4> contrast(double d, bool relative) {
    if (relative) return {-d, 1.0 - d, -1.0, 0.0};
    return {-d, 1.0 - d, -1.0 - d, -d};
}

// The cells' maximum-likelihood probabilities under sum_k p_k a_k = 0: p_k = m_k / (M + mu a_k),
// with mu the root of sum_k m_k a_k / (M + mu a_k), which falls from +inf to -inf between the
// poles. An empty cell gets a vanishing count, so the limit is found where the hypothesis needs
// mass on a cell nothing was seen in (no flips at all, for instance).
std::array<double, 4> restricted_cells(const std::array<double, 4> & observed, const std::array<double, 4> & a) {
    std::array<double, 4> m{};
    double total = 0;
    for (std::size_t k = 0; k < 4; ++k) total += observed[k];
    for (std::size_t k = 0; k < 4; ++k) m[k] = observed[k] > 0 ? observed[k] : 1e-9 * total;
    double mass = 0;
    for (const double x : m) mass += x;
    double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < 4; ++k) {
        if (a[k] > 0) lo = std::max(lo, -mass / a[k]);
        if (a[k] < 0) hi = std::min(hi, -mass / a[k]);
    }
    std::array<double, 4> p{};
    if (!std::isfinite(lo) || !std::isfinite(hi)) {
        // Every a_k has one sign (or is 0): only the cells with a_k == 0 can hold the hypothesis.
        for (std::size_t k = 0; k < 4; ++k) p[k] = a[k] == 0 ? m[k] : 0;
    } else {
        // g falls from +inf to -inf between the poles: Newton's steps from the observed point
        // (mu = 0), kept inside the bracket, with bisection where a step would leave it.
        double mu = 0;
        for (int i = 0; i < 100; ++i) {
            double g = 0, slope = 0;
            for (std::size_t k = 0; k < 4; ++k) {
                const double denominator = mass + mu * a[k];
                g += m[k] * a[k] / denominator;
                slope -= m[k] * a[k] * a[k] / (denominator * denominator);
            }
            (g > 0 ? lo : hi) = mu;
            if (std::abs(g) <= 1e-12 * mass || hi - lo <= 1e-15 * std::max(1.0, std::abs(mu))) break;
            double next = slope < 0 ? mu - g / slope : lo + (hi - lo) / 2;
            if (!(next > lo && next < hi)) next = lo + (hi - lo) / 2;
            mu = next;
        }
        for (std::size_t k = 0; k < 4; ++k) p[k] = m[k] / (mass + mu * a[k]);
    }
    double sum = 0;
    for (const double x : p) sum += x;
    if (sum > 0)
        for (double & x : p) x /= sum;
    return p;
}

// The regularized incomplete beta function I_x(a, b) by its continued fraction (Lentz), as in
// Numerical Recipes' betai: a few dozen steps whatever n is.
double incomplete_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    const double front =
        std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
    const auto fraction = [](double a, double b, double x) {
        constexpr double tiny = 1e-300;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = 1 / (std::abs(d) < tiny ? tiny : d);
        double h = d;
        for (int m = 1; m <= 10000; ++m) {
            const double m2 = 2.0 * m;
            for (const double term : {m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                                      -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))}) {
                d = 1 + term * d;
                d = 1 / (std::abs(d) < tiny ? tiny : d);
                c = 1 + term / c;
                if (std::abs(c) < tiny) c = tiny;
                h *= d * c;
            }
            if (std::abs(d * c - 1) < 1e-15) break;
        }
        return h;
    };
    // The fraction converges fast on the side of the mean it is evaluated on.
    if (x < (a + 1) / (a + b + 2)) return front * fraction(a, b, x) / a;
    return 1 - front * fraction(b, a, 1 - x) / b;
}

// P(X <= k) for X ~ Binomial(n, p) = I_{1-p}(n - k, k + 1).
double binomial_cdf(std::size_t k, std::size_t n, double p) {
    if (k >= n || p <= 0) return 1.0;
    if (p >= 1) return 0.0;
    return incomplete_beta(static_cast<double>(n - k), static_cast<double>(k) + 1, 1 - p);
}

// The root of a decreasing function f on [lo, hi] by the Illinois variant of false position (a
// dozen evaluations where bisection takes fifty); an end when f keeps one sign there.
template <class F>
double falling_root(F f, double lo, double hi) {
    double f_lo = f(lo), f_hi = f(hi);
    if (f_lo <= 0) return lo;
    if (f_hi >= 0) return hi;
    int side = 0;
    for (int i = 0; i < 100 && hi - lo > 1e-10; ++i) {
        double x = hi - f_hi * (hi - lo) / (f_hi - f_lo);
        if (!(x > lo && x < hi)) x = (lo + hi) / 2;
        const double f_x = f(x);
        if (f_x == 0) return x;
        if (f_x > 0) {
            lo = x, f_lo = f_x;
            if (side == 1) f_hi /= 2;
            side = 1;
        } else {
            hi = x, f_hi = f_x;
            if (side == -1) f_lo /= 2;
            side = -1;
        }
    }
    return (lo + hi) / 2;
}

}  // namespace

double paired_drop(const PairedCounts & c, bool relative) {
    const double n = static_cast<double>(c.n());
    if (n == 0) return 0;
    const double difference = (static_cast<double>(c.right_to_wrong) - static_cast<double>(c.wrong_to_right)) / n;
    if (!relative) return difference;
    const double original = static_cast<double>(c.both_right + c.right_to_wrong) / n;
    return original > 0 ? difference / original : 0.0;
}

namespace {

// The score with the observed mean moved `shift` toward (or, negative, away from) the hypothesis.
double shifted_score(const PairedCounts & c, double drop, bool relative, double shift) {
    const std::size_t n = c.n();
    if (n == 0) return 0;
    const std::array<double, 4> observed = {static_cast<double>(c.both_right), static_cast<double>(c.right_to_wrong),
                                            static_cast<double>(c.wrong_to_right), static_cast<double>(c.both_wrong)};
    const auto a = contrast(drop, relative);
    double mean = 0;
    for (std::size_t k = 0; k < 4; ++k) mean += observed[k] * a[k];
    mean /= static_cast<double>(n);
    mean = mean > 0 ? std::max(0.0, mean - shift) : std::min(0.0, mean + shift);
    const auto p = restricted_cells(observed, a);
    double variance = 0;
    for (std::size_t k = 0; k < 4; ++k) variance += p[k] * a[k] * a[k];
    if (variance <= 1e-300)
        return mean > 0 ? std::numeric_limits<double>::infinity()
            : mean < 0  ? -std::numeric_limits<double>::infinity()
                        : 0.0;
    return mean * std::sqrt(static_cast<double>(n)) / std::sqrt(variance);
}

// Half a flip toward the hypothesis (Yates's correction on the paired difference): the counts move
// in whole items, and without it the test claims a little more often than alpha at some n.
double corrected_score(const PairedCounts & c, double drop, bool relative) {
    return shifted_score(c, drop, relative, 0.5 / static_cast<double>(c.n()));
}

}  // namespace

double paired_drop_score(const PairedCounts & c, double drop, bool relative) {
    return shifted_score(c, drop, relative, 0.0);
}

OneSided paired_drop_test(const PairedCounts & c, double limit, bool relative, double alpha) {
    require_alpha(alpha);
    if (c.n() == 0) return OneSided::undecided;
    const double z = normal_quantile(1.0 - alpha);
    const double score = corrected_score(c, limit, relative);
    if (score < -z) return OneSided::below;
    if (score > z) return OneSided::above;
    return OneSided::undecided;
}

Interval paired_drop_bounds(const PairedCounts & c, bool relative, double alpha) {
    require_alpha(alpha);
    // A relative drop is at most 1 (the other model gets nothing right) and may be far below 0
    // when the original is weak; in points it lies in [-1, 1].
    const double lowest = relative ? -100.0 : -1.0, highest = relative ? 1.0 - 1e-12 : 1.0;
    if (c.n() == 0) return {lowest, highest};
    const double z = normal_quantile(1.0 - alpha);
    const auto score = [&](double d) { return corrected_score(c, d, relative); };
    return {falling_root([&](double d) { return score(d) - z; }, lowest, highest),
            falling_root([&](double d) { return score(d) + z; }, lowest, highest)};
}

Interval binomial_bounds(std::size_t k, std::size_t n, double alpha) {
    require_alpha(alpha);
    if (k > n) throw std::invalid_argument("successes exceed trials");
    if (n == 0) return {0.0, 1.0};
    // lo: P(X >= k | lo) = alpha; hi: P(X <= k | hi) = alpha. Both tails rise or fall with p.
    const double lo =
        k == 0 ? 0.0 : falling_root([&](double p) { return alpha - (1.0 - binomial_cdf(k - 1, n, p)); }, 0.0, 1.0);
    const double hi = k == n ? 1.0 : falling_root([&](double p) { return binomial_cdf(k, n, p) - alpha; }, 0.0, 1.0);
    return {lo, hi};
}

}  // namespace switchyard::stats
