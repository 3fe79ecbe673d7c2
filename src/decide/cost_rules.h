// The rules about cost: R4 (budgets) and R7 (the cheapest of the candidates that pass), the one
// comparison of two costs they rest on, and whether an unmeasured candidate could still win R7.
#pragma once

#include "decide/decision.h"

#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

// Two costs closer than this factor are a tie: the band R7 and the search judge costs by.
inline constexpr double kCostBand = 1.10;

enum class CostOrder { cheaper, tie, costlier, unknown };
const char * to_string(CostOrder order);

// a's cost over b's with its 95% interval (log scale), and what it says: `costlier` only when the
// whole interval lies above kCostBand, `cheaper` only when it lies below 1 / kCostBand, else a
// `tie`; `unknown` when either cost is. Two local candidates timed against the same reference are
// compared by their ratios to it (the reference's own noise cancels); otherwise by their costs
// per query.
struct CostComparison {
    CostOrder order = CostOrder::unknown;
    double ratio = 0;
    double lo = 0;
    double hi = 0;
    std::string text() const;  // "ratio 1.04 [0.98, 1.11]"
};
CostComparison compare_costs(const CostScore & a, const CostScore & b);

// R4: every budget the policy sets. An unknown cost fails a cost budget.
RuleVerdict rule_budgets(const Policy & policy, const CostScore & cost);

// R7 in two steps, each well defined: (1) when a price is set, the candidates not measurably
// costlier than the cheapest (compare_costs against the one with the lowest cost per query; an
// unknown cost never wins on cost, so it is kept only when no cost is known); (2) of those, the
// fewest bits per weight, then the smallest file (a served model ranks last), then the name.
struct CheapestChoice {
    const Candidate * chosen = nullptr;  // null for no candidates
    const Candidate * cheapest =
        nullptr;  // lowest cost per query among known costs; null when none is known or no price is set
    const Candidate * runner_up =
        nullptr;  // next after the chosen one in step 2 among those step 1 kept; null when it kept one
    std::size_t within_cost = 0;  // how many step 1 kept
    bool by_cost = false;  // step 1 alone decided: every other candidate is measurably costlier (or its cost unknown)
    bool tie = false;  // step 1 kept more than one: the tie was broken by step 2
    std::string decided_by;  // which step decided, with its numbers
};
CheapestChoice cheapest(const Policy & policy, const std::vector<const Candidate *> & candidates);

// Why `loser` comes after `winner` in R7's step 2: "bits per weight 8.5 vs 4.5", "size 2.00 vs
// 1.00 MiB", "served remotely (ranks after every local file)", "name".
std::string tie_break(const Candidate & loser, const Candidate & winner);

// Why measuring `candidate` for a class cannot change the choice among the `passing` candidates,
// even if it passed every rule: it is over a budget (R4, when its cost is known), or R7 would
// still choose the same one with it added. nullopt when it could change the choice (always when
// nothing passes yet, or when a price is set and its cost is not measured: measure that first).
std::optional<std::string> cannot_change_choice(const Policy & policy, const std::vector<const Candidate *> & passing,
                                                const Candidate & candidate);

}  // namespace switchyard::decide
