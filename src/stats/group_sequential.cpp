#include "stats/group_sequential.h"

#include "stats/intervals.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

namespace switchyard::stats {

namespace {

double upper_tail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

double density(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI); }

// Boundaries above this many standard deviations are never crossed in practice.
constexpr double kNever = 12.0;
constexpr double kStep = 0.01;  // the integration grid on the Brownian motion's scale

// The sub-density of the Brownian motion W(t) at one look, on the paths that have not crossed any
// boundary yet: values at w_i = top - i * kStep, down to -kNever.
struct Continuation {
    double top = kNever;
    std::vector<double> values;
};

// Trapezoid weights of a grid of `size` points.
double weight(std::size_t i, std::size_t size) { return (i == 0 || i + 1 == size) ? 0.5 * kStep : kStep; }

// P(no crossing before, W(t) >= b) for the step of variance `step` from the continuation.
double crossing(const Continuation & g, double step, double b) {
    const double sd = std::sqrt(step);
    double sum = 0;
    for (std::size_t i = 0; i < g.values.size(); ++i)
        sum +=
            weight(i, g.values.size()) * g.values[i] * upper_tail((b - (g.top - static_cast<double>(i) * kStep)) / sd);
    return sum;
}

Continuation advance(const Continuation & g, double step, double top) {
    const double sd = std::sqrt(step);
    Continuation next{.top = top};
    for (double w = top; w >= -kNever; w -= kStep) {
        double sum = 0;
        for (std::size_t i = 0; i < g.values.size(); ++i)
            sum += weight(i, g.values.size()) * g.values[i] *
                density((w - (g.top - static_cast<double>(i) * kStep)) / sd) / sd;
        next.values.push_back(sum);
    }
    return next;
}

std::vector<double> compute(const std::vector<double> & t, double alpha, double rho) {
    std::vector<double> levels;
    Continuation g;
    double spent_before = 0;
    for (std::size_t k = 0; k < t.size(); ++k) {
        const double spend = alpha_spent(t[k], alpha, rho) - spent_before;
        spent_before += spend;
        double b = kNever * std::sqrt(t[k]);  // on W's scale
        if (k == 0) {
            if (spend > 1e-300) b = std::sqrt(t[0]) * normal_quantile(1.0 - spend);
            for (double w = std::min(b, kNever); w >= -kNever; w -= kStep)
                g.values.push_back(density(w / std::sqrt(t[0])) / std::sqrt(t[0]));
            g.top = std::min(b, kNever);
        } else {
            const double step = t[k] - t[k - 1];
            if (spend > 1e-15) {
                // The crossing probability falls as the boundary rises: bisect for the spend.
                double lo = -kNever, hi = kNever;
                for (int i = 0; i < 100 && hi - lo > 1e-9; ++i) {
                    const double mid = 0.5 * (lo + hi);
                    (crossing(g, step, mid) > spend ? lo : hi) = mid;
                }
                b = 0.5 * (lo + hi);
            }
            if (k + 1 < t.size()) g = advance(g, step, std::min(b, kNever));
        }
        levels.push_back(std::clamp(upper_tail(b / std::sqrt(t[k])), 0.0, alpha));
    }
    return levels;
}

}  // namespace

double alpha_spent(double fraction, double alpha, double rho) {
    return alpha * std::pow(std::clamp(fraction, 0.0, 1.0), rho);
}

std::vector<double> nominal_levels(const std::vector<double> & fractions, double alpha, double rho) {
    for (std::size_t k = 0; k < fractions.size(); ++k)
        if (!(fractions[k] > 0 && fractions[k] <= 1 + 1e-12) || (k > 0 && fractions[k] <= fractions[k - 1]))
            throw std::invalid_argument("nominal_levels: the looks' fractions must increase within (0, 1]");
    // One look at the end is the fixed test: its level exactly, with no integration error.
    if (fractions.size() == 1 && fractions[0] >= 1 - 1e-12) return {alpha};
    static std::mutex mutex;
    static std::map<std::tuple<std::vector<double>, double, double>, std::vector<double>> cache;
    const auto key = std::make_tuple(fractions, alpha, rho);
    {
        const std::lock_guard lock(mutex);
        if (const auto it = cache.find(key); it != cache.end()) return it->second;
    }
    auto levels = compute(fractions, alpha, rho);
    const std::lock_guard lock(mutex);
    return cache.emplace(key, std::move(levels)).first->second;
}

}  // namespace switchyard::stats
