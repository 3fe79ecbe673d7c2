// One-sided tests behind the decision's claims: is a paired accuracy drop within a limit, is an
// accuracy above a floor. Each answers pass, fail or undecided at a stated error rate.
#pragma once

#include "stats/intervals.h"

#include <cstddef>

namespace switchyard::stats {

// The four cells of two models scored on the same items (the original first).
struct PairedCounts {
    std::size_t both_right = 0;
    std::size_t right_to_wrong = 0;  // the original right, the other model wrong
    std::size_t wrong_to_right = 0;
    std::size_t both_wrong = 0;
    std::size_t n() const { return both_right + right_to_wrong + wrong_to_right + both_wrong; }
};

// The drop of the other model versus the original: in points, p_original - p_other; relative,
// (p_original - p_other) / p_original.
double paired_drop(const PairedCounts & counts, bool relative);

// The score statistic for "the drop equals `drop`": Z > 0 when the observed drop is above it. The
// hypothesis is a linear contrast of the four cells (relative: (1 - d) p_original - p_other = 0,
// points: p_original - p_other - d = 0); its variance is taken at the cells' maximum-likelihood
// values under the hypothesis (Tango 1998 in points; Tang, Tang and Chan 2003 for the ratio), not
// at the observed ones, so a sample with few flips does not look more certain than it is.
double paired_drop_score(const PairedCounts & counts, double drop, bool relative);

enum class OneSided { below, above, undecided };

// Whether the drop lies below `limit` or above it, each claim at error rate `alpha` (a one-sided
// score test in each direction), or neither. n == 0 is undecided.
OneSided paired_drop_test(const PairedCounts & counts, double limit, bool relative, double alpha);

// The bounds the same tests give: `lo` is the largest drop the data reject from below at `alpha`,
// `hi` the smallest rejected from above; the drop lies under `hi` with confidence 1 - alpha, and
// paired_drop_test(limit) is `below` exactly when hi < limit (up to the root finder's 1e-10).
Interval paired_drop_bounds(const PairedCounts & counts, bool relative, double alpha);

// Clopper-Pearson bounds for a binomial proportion, each one-sided at `alpha`: the proportion is
// above `lo` with confidence 1 - alpha, and under `hi` likewise. Exact: never below its level.
Interval binomial_bounds(std::size_t successes, std::size_t n, double alpha);

}  // namespace switchyard::stats
