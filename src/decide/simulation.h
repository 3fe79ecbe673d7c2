// Checks the verdict's guarantee by simulation: candidates with known true accuracy drops, item
// outcomes drawn at random, the real search and choice (search_and_decide) run on them many times,
// and the share of runs that recommend a candidate whose true drop is at or over the limit.
#pragma once

#include "decide/rules.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace switchyard::decide {

// One grid point. The class has `suites` suites of `items` items each, the original right on each
// item with probability `original_accuracy`. Every other candidate (a ladder of `rungs` variants
// and `alternatives` small models, all smaller than the original) has the true drop
// `true_drop` (relative, or in points, as the policy says) on the first suite and none on the
// others: the case where an intersection-union test is least protected by its other suites.
// `recovered`: the chance that a candidate gets right an item the original got wrong (the pairs'
// discordance besides the drop; 0 is strongly correlated pairs).
struct SimulationPoint {
    double true_drop = 0;
    std::size_t items = 400;
    double original_accuracy = 0.8;
    double recovered = 0.0;
    std::size_t suites = 2;
    std::size_t rungs = 3;
    std::size_t alternatives = 2;
};

struct SimulationResult {
    std::size_t runs = 0;
    std::size_t recommended_other = 0;  // runs whose verdict is not the original (a compression or a switch)
    std::size_t false_recommendations = 0;  // of those, runs whose recommended model truly drops max_drop or more
    std::size_t items_scored = 0;  // over all runs, every candidate's suites
    double false_rate() const {
        return runs ? static_cast<double>(false_recommendations) / static_cast<double>(runs) : 0.0;
    }
    double power() const { return runs ? static_cast<double>(recommended_other) / static_cast<double>(runs) : 0.0; }
    // The Monte-Carlo error of false_rate() at a true rate of `alpha`: one standard error.
    double standard_error(double alpha) const;
};

// Runs the point `runs` times with the seed; the same seed gives the same result everywhere.
SimulationResult simulate(const Policy & policy, const SimulationPoint & point, std::size_t runs, std::uint64_t seed);

// The share of a suite of `items` items that R3's sequential test is expected to read for one
// candidate (at level `alpha`) before it decides, when the candidate truly drops `true_drop` from
// an original right on `original_accuracy` of the items (and `recovered` as SimulationPoint says):
// the mean over `runs` simulated suites, the same everywhere. 1 when the policy is not sequential.
double expected_share_read(const Policy & policy, std::size_t items, double alpha, double true_drop,
                           double original_accuracy, double recovered, std::size_t runs = 200);

}  // namespace switchyard::decide
