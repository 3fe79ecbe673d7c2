// The rules about cost: R4 (budgets) and R7 (the cheapest of the candidates that pass), and
// whether an unmeasured candidate could still win R7.
#pragma once

#include "decide/decision.h"

#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

// R4: every budget the policy sets.
RuleVerdict rule_budgets(const Policy & policy, const CostScore & cost);

// R7 in two steps, each well defined: (1) when a price is set, the candidates whose cost per 1k
// tokens is within 10% of the lowest (closer than that is measurement noise on a shared machine);
// (2) among them the smallest file (a served model has none here and ranks last; then by name).
struct CheapestChoice {
    const Candidate * chosen = nullptr;  // null for no candidates
    std::size_t within_cost = 0;         // how many step 1 kept
    bool by_cost = false;                // step 1 alone decided (one candidate within 10% of the lowest cost)
    std::string decided_by;              // which step decided, with its numbers
};
CheapestChoice cheapest(const Policy & policy, const std::vector<const Candidate *> & candidates);

// Why measuring `candidate` for a class cannot change the choice among the `passing` candidates,
// even if it passed every rule: it is over a budget (R4, when its cost is known), or R7 would
// still choose the same one with it added. nullopt when it could change the choice (always when
// nothing passes yet, or when a price is set and its cost is unknown: measure that first).
std::optional<std::string> cannot_change_choice(const Policy & policy, const std::vector<const Candidate *> & passing, const Candidate & candidate);

}  // namespace switchyard::decide
