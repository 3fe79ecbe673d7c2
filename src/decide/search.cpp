#include "decide/search.h"

#include <fmt/format.h>

#include <cstddef>
#include <deque>

namespace switchyard::decide {

std::optional<std::size_t> next_probe(const std::vector<std::optional<Outcome>> & ladder) {
    const auto n = static_cast<std::ptrdiff_t>(ladder.size());
    std::ptrdiff_t failing = n;
    for (std::ptrdiff_t i = 0; i < n; ++i)
        if (ladder[i] == Outcome::fail) {
            failing = i;
            break;
        }
    std::ptrdiff_t passing = -1;
    for (std::ptrdiff_t i = 0; i < failing; ++i)
        if (ladder[i] == Outcome::pass) passing = i;
    // The most aggressive stretch first: a pass there makes everything below it moot.
    for (std::ptrdiff_t hi = failing - 1; hi > passing; --hi) {
        if (ladder[hi]) continue;
        std::ptrdiff_t lo = hi;
        while (lo - 1 > passing && !ladder[lo - 1]) --lo;
        return static_cast<std::size_t>((lo + hi) / 2);
    }
    return std::nullopt;
}

std::vector<std::size_t> probe_order(std::size_t n) {
    std::vector<std::size_t> order;
    std::vector<bool> seen(n, false);
    std::deque<std::vector<std::optional<Outcome>>> states{std::vector<std::optional<Outcome>>(n)};
    while (!states.empty()) {
        auto state = std::move(states.front());
        states.pop_front();
        const auto probe = next_probe(state);
        if (!probe) continue;
        if (!seen[*probe]) {
            seen[*probe] = true;
            order.push_back(*probe);
        }
        for (const auto outcome : {Outcome::pass, Outcome::fail}) {
            state[*probe] = outcome;
            states.push_back(state);
        }
    }
    return order;
}

std::optional<std::string> cannot_change_choice(const Policy & policy, const std::vector<const Candidate *> & passing, const Candidate & candidate) {
    if (policy.budgets.any() && candidate.cost) {
        const auto budget = rule_budgets(policy, *candidate.cost);
        if (budget.outcome == Outcome::fail) return "over budget (R4-budget: " + budget.message + "), so it cannot pass";
    }
    if (passing.empty()) return std::nullopt;
    if (policy.deployment.price_per_hour > 0 && !candidate.cost) return std::nullopt;
    const auto now = cheapest(policy, passing);
    auto with = passing;
    with.push_back(&candidate);
    if (cheapest(policy, with).chosen != now.chosen) return std::nullopt;
    const auto * chosen = now.chosen;
    const bool costlier = candidate.cost && chosen->cost && candidate.cost->cost_per_1k_tokens > chosen->cost->cost_per_1k_tokens;
    std::string numbers = candidate.remote() ? "served remotely, so it ranks after every local file by size"
                                             : fmt::format("{:.2f} vs {:.2f} MiB", candidate.file_bytes / 1048576.0, chosen->file_bytes / 1048576.0);
    if (policy.deployment.price_per_hour > 0 && candidate.cost && chosen->cost)
        numbers += fmt::format("; {:.3g} vs {:.3g}/1k tokens", candidate.cost->cost_per_1k_tokens, chosen->cost->cost_per_1k_tokens);
    const bool larger = candidate.remote() || candidate.file_bytes >= chosen->file_bytes;
    const std::string how = larger && costlier ? "larger and costlier" : larger ? "larger" : costlier ? "costlier" : "no cheaper";
    return fmt::format("{} than {}, which passes ({}): R7 would not choose it even if it passed", how, chosen->name, numbers);
}

}  // namespace switchyard::decide
