// The search's next step as pure functions of what is known so far: which variant of the ladder to
// run next, and whether an unmeasured candidate could still change a class's choice.
#pragma once

#include "decide/decision.h"

#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

// The ladder's variants mild to aggressive, each with its accuracy outcome for one class so far
// (nullopt: not run). Assuming accuracy falls as compression grows, a failure bounds the search from
// above and a pass from below; `insufficient` bounds nothing (a noisy midpoint must not discard
// the variants beyond it). Returns the middle of the most aggressive stretch of variants not yet
// run between the highest pass and the lowest failure, or nullopt when none is left.
std::optional<std::size_t> next_probe(const std::vector<std::optional<Outcome>> & ladder);
// Every index of a ladder of n in the order next_probe may reach it: its first probe, then the
// probes after either outcome of it, breadth first. What plan workers measure ahead of the search.
std::vector<std::size_t> probe_order(std::size_t n);


}  // namespace switchyard::decide
