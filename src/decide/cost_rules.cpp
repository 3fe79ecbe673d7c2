#include "decide/cost_rules.h"

#include <fmt/format.h>

#include <algorithm>

namespace switchyard::decide {

namespace {

std::string mebibytes(std::uint64_t bytes) { return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024.0)); }

double mib(std::uint64_t bytes) { return bytes / (1024.0 * 1024.0); }

std::optional<double> cost_of(const Candidate & c) {
    if (!c.cost || (!c.remote() && c.cost->cost_per_1k_tokens <= 0)) return std::nullopt;
    return c.cost->cost_per_1k_tokens;
}

}  // namespace

RuleVerdict rule_budgets(const Policy & policy, const CostScore & cost) {
    RuleVerdict v{.rule = "R4-budget"};
    std::vector<std::string> met;
    std::vector<std::string> missed;
    const auto & b = policy.budgets;
    if (b.memory_bytes && cost.remote) {
        met.push_back("memory not used here (served remotely)");
    } else if (b.memory_bytes) {
        const bool ok = cost.peak_rss_bytes <= *b.memory_bytes;
        (ok ? met : missed).push_back(fmt::format("peak memory {} {} {}", mebibytes(cost.peak_rss_bytes), ok ? "<=" : ">", mebibytes(*b.memory_bytes)));
    }
    if (b.p95_latency_ms) {
        const bool ok = cost.p95_latency_ms <= *b.p95_latency_ms;
        (ok ? met : missed).push_back(fmt::format("p95 latency {:.1f} ms {} {:.1f} ms", cost.p95_latency_ms, ok ? "<=" : ">", *b.p95_latency_ms));
    }
    if (b.cost_per_1k_tokens) {
        const bool ok = cost.cost_per_1k_tokens <= *b.cost_per_1k_tokens;
        (ok ? met : missed).push_back(fmt::format("cost {:.3g}/1k tokens {} {:.3g}", cost.cost_per_1k_tokens, ok ? "<=" : ">", *b.cost_per_1k_tokens));
    }
    if (met.empty() && missed.empty()) {
        v.message = "no budget set";
        return v;
    }
    v.outcome = missed.empty() ? Outcome::pass : Outcome::fail;
    const auto & listed = missed.empty() ? met : missed;
    for (std::size_t i = 0; i < listed.size(); ++i) v.message += (i ? "; " : "") + listed[i];
    if (!missed.empty()) v.message += " -> over budget";
    return v;
}

CheapestChoice cheapest(const Policy & policy, const std::vector<const Candidate *> & candidates) {
    CheapestChoice choice;
    if (candidates.empty()) return choice;
    // Step 1: within 10% of the lowest known cost. A candidate whose cost is unknown cannot be ruled out by it.
    std::vector<const Candidate *> kept = candidates;
    std::optional<double> lowest;
    if (policy.deployment.price_per_hour > 0) {
        for (const auto * c : candidates)
            if (const auto cost = cost_of(*c); cost && (!lowest || *cost < *lowest)) lowest = cost;
        if (lowest) std::erase_if(kept, [&](const Candidate * c) { return cost_of(*c) && *cost_of(*c) > 1.1 * *lowest; });
    }
    choice.within_cost = kept.size();
    // Step 2: the smallest file; served models have none here, so they come last; the name settles exact ties.
    const auto smaller = [](const Candidate * a, const Candidate * b) {
        if (a->remote() != b->remote()) return b->remote();
        if (a->file_bytes != b->file_bytes) return a->file_bytes < b->file_bytes;
        return a->name < b->name;
    };
    choice.chosen = *std::min_element(kept.begin(), kept.end(), smaller);
    choice.by_cost = lowest && kept.size() == 1;
    if (choice.by_cost) {
        choice.decided_by = fmt::format("cost decided: {:.3g}/1k tokens, the only one of {} within 10% of the lowest cost", *cost_of(*choice.chosen), candidates.size());
    } else if (lowest) {
        choice.decided_by = fmt::format("size decided: {:.2f} MiB, the smallest of the {} (of {}) within 10% of the lowest cost {:.3g}/1k tokens", mib(choice.chosen->file_bytes),
                                        kept.size(), candidates.size(), *lowest);
    } else {
        choice.decided_by = fmt::format("size decided: {:.2f} MiB, the smallest of {}{}", mib(choice.chosen->file_bytes), candidates.size(),
                                        policy.deployment.price_per_hour > 0 ? " (no cost measured)" : " (no price_per_hour: costs are not compared)");
    }
    return choice;
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
