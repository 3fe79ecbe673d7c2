// Group-sequential testing: the nominal level of each look at accumulating data, so that a test
// repeated at every look still errs with probability at most alpha over all of them.
#pragma once

#include <vector>

namespace switchyard::stats {

// The alpha spent by information fraction t in (0, 1]: alpha * t^rho (Kim and DeMets' power
// family). rho 1 spends evenly (near Pocock's boundaries: early stops, a much stricter last look),
// rho 3 mostly at the end (near O'Brien and Fleming's: the last look close to a fixed test's).
double alpha_spent(double fraction, double alpha, double rho);

// The one-sided nominal level of each look at information fractions `fractions` (increasing, the
// last at most 1): a test that rejects at look k when its fixed-sample p-value is under the k-th
// level rejects a true hypothesis at some look with probability alpha_spent(last fraction), under
// the canonical joint distribution of the looks' statistics (Brownian motion: the increments
// between looks independent; Jennison and Turnbull 2000, ch. 19). Computed by recursive numerical
// integration (Armitage, McPherson and Rowe 1969); the spending makes each look's level depend on
// the looks before it only, so looks may stop short of the last. One look at fraction 1 is the
// fixed test's level, alpha itself. Cached: the same looks and alpha are computed once.
std::vector<double> nominal_levels(const std::vector<double> & fractions, double alpha, double rho);

}  // namespace switchyard::stats
