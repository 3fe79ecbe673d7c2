#include "decide/cost_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace switchyard::decide {

namespace {

std::string mebibytes(std::uint64_t bytes) { return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024.0)); }

// "2.00 MiB", "0.6 KiB": enough digits to tell the two sizes a tie-break compares apart.
std::string size_text(std::uint64_t bytes) {
    return bytes >= 1024 * 1024 ? fmt::format("{:.2f} MiB", bytes / (1024.0 * 1024.0))
                                : fmt::format("{:.1f} KiB", bytes / 1024.0);
}

// Half the width of a 95% interval on the log scale: 0 for a point (a declared cost, the
// reference against itself), infinite for an interval without bounds (too few rounds).
double log_half_width(double lo, double hi) {
    if (lo == hi) return 0;
    if (!(lo > 0) || !std::isfinite(hi) || hi < lo) return std::numeric_limits<double>::infinity();
    return (std::log(hi) - std::log(lo)) / 2;
}

std::string per_1m(const CostScore & c) { return dollars(c.cost_per_1m_tokens); }

bool priced(const Policy & policy) { return policy.deployment.price_per_hour > 0; }

bool known(const Candidate & c) { return c.cost && c.cost->cost_known(); }

// What a model takes to serve: its file, a drafted original's draft, and its KV cache at the
// deployment's context where its speed was measured (the same file with a q8_0 cache is the
// smaller one; the original with a draft, the larger).
std::uint64_t served_bytes(const Candidate & c) {
    return c.file_bytes + (c.draft ? c.draft->file_bytes : 0) + (c.cost ? c.cost->kv_cache_bytes : 0);
}

// Step 2's order: local before served, fewer bits per weight, smaller file and cache, then the name.
bool before(const Candidate * a, const Candidate * b) {
    if (a->remote() != b->remote()) return b->remote();
    if (std::abs(a->bits_per_weight - b->bits_per_weight) > 1e-6) return a->bits_per_weight < b->bits_per_weight;
    if (served_bytes(*a) != served_bytes(*b)) return served_bytes(*a) < served_bytes(*b);
    return a->name < b->name;
}

// The lowest cost per query among the known ones (the name settles an exact tie, so the order of the input does not).
const Candidate * lowest_cost(const std::vector<const Candidate *> & candidates) {
    const Candidate * best = nullptr;
    for (const auto * c : candidates) {
        if (!known(*c)) continue;
        if (best == nullptr || c->cost->cost_per_query < best->cost->cost_per_query ||
            (c->cost->cost_per_query == best->cost->cost_per_query && c->name < best->name))
            best = c;
    }
    return best;
}

}  // namespace

const char * to_string(CostOrder order) {
    switch (order) {
        case CostOrder::cheaper: return "cheaper";
        case CostOrder::tie: return "tie";
        case CostOrder::costlier: return "costlier";
        case CostOrder::unknown: return "unknown";
    }
    return "?";
}

std::string CostComparison::text() const {
    if (order == CostOrder::unknown) return "cost unknown";
    return fmt::format("ratio {:.2f} [{:.2f}, {:.2f}]", ratio, lo, hi);
}

CostComparison compare_costs(const CostScore & a, const CostScore & b) {
    CostComparison out;
    if (!a.cost_known() || !b.cost_known()) return out;
    double log_ratio = 0, half_width = 0;
    if (!a.remote && !b.remote && !a.reference.empty() && a.reference == b.reference && a.ratio > 0 && b.ratio > 0) {
        // Both against the same reference: the ratio of ratios; their intervals are independent
        // measurements, so the half-widths add in quadrature.
        log_ratio = std::log(a.ratio) - std::log(b.ratio);
        half_width = std::hypot(log_half_width(a.ratio_lo, a.ratio_hi), log_half_width(b.ratio_lo, b.ratio_hi));
    } else {
        log_ratio = std::log(a.cost_per_query) - std::log(b.cost_per_query);
        half_width = std::hypot(log_half_width(a.cost_lo, a.cost_hi), log_half_width(b.cost_lo, b.cost_hi));
    }
    out.ratio = std::exp(log_ratio);
    out.lo = std::exp(log_ratio - half_width);
    out.hi = std::exp(log_ratio + half_width);
    out.order = out.lo > kCostBand ? CostOrder::costlier : out.hi < 1 / kCostBand ? CostOrder::cheaper : CostOrder::tie;
    return out;
}

RuleVerdict rule_budgets(const Policy & policy, const CostScore & cost) {
    RuleVerdict v{.rule = "R4-budget"};
    std::vector<std::string> met;
    std::vector<std::string> missed;
    const auto & b = policy.budgets;
    if (b.memory_bytes && cost.remote) {
        met.push_back("memory not used here (served remotely)");
    } else if (b.memory_bytes) {
        const bool ok = cost.peak_rss_bytes <= *b.memory_bytes;
        (ok ? met : missed)
            .push_back(fmt::format("peak memory {} {} {}", mebibytes(cost.peak_rss_bytes), ok ? "<=" : ">",
                                   mebibytes(*b.memory_bytes)));
    }
    if (b.p95_latency_ms) {
        const bool ok = cost.p95_latency_ms > 0 && cost.p95_latency_ms <= *b.p95_latency_ms;
        (ok ? met : missed)
            .push_back(fmt::format("p95 latency {:.1f} ms {} {:.1f} ms", cost.p95_latency_ms, ok ? "<=" : ">",
                                   *b.p95_latency_ms));
    }
    if (b.cost_per_1k_tokens) {
        // Unknown is never 0: a cost that could not be measured cannot be shown to meet the budget.
        const std::string budget = dollars(1000 * *b.cost_per_1k_tokens);
        if (!cost.cost_known()) {
            missed.push_back(describe_cost(cost) + " cannot be shown to meet the cost budget " + budget +
                             " per 1M tokens");
        } else {
            const bool ok = cost.cost_per_1m_tokens <= 1000 * *b.cost_per_1k_tokens;
            (ok ? met : missed)
                .push_back(fmt::format("cost {} {} {} per 1M tokens", per_1m(cost), ok ? "<=" : ">", budget));
        }
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

std::string tie_break(const Candidate & loser, const Candidate & winner) {
    if (loser.remote() != winner.remote()) return "served remotely (ranks after every local file)";
    if (std::abs(loser.bits_per_weight - winner.bits_per_weight) > 1e-6)
        return fmt::format("bits per weight {:.3g} vs {:.3g}", loser.bits_per_weight, winner.bits_per_weight);
    if (loser.file_bytes != winner.file_bytes)
        return fmt::format("size {} vs {}", size_text(loser.file_bytes), size_text(winner.file_bytes));
    if (served_bytes(loser) != served_bytes(winner))
        return fmt::format("{} {} vs {}", loser.draft || winner.draft ? "file, draft and KV cache" : "file and KV cache",
                           size_text(served_bytes(loser)), size_text(served_bytes(winner)));
    return "name";
}

CheapestChoice cheapest(const Policy & policy, const std::vector<const Candidate *> & candidates) {
    CheapestChoice choice;
    if (candidates.empty()) return choice;
    // Step 1: not measurably costlier than the cheapest. A candidate whose cost was not measured
    // cannot be ruled out by it; one whose cost is unknown never wins on cost.
    std::vector<const Candidate *> kept = candidates;
    std::vector<const Candidate *> unknown;
    if (priced(policy)) choice.cheapest = lowest_cost(candidates);
    if (choice.cheapest != nullptr) {
        const auto & low = *choice.cheapest->cost;
        std::erase_if(kept, [&](const Candidate * c) {
            if (!c->cost) return false;
            if (!c->cost->cost_known()) {
                unknown.push_back(c);
                return true;
            }
            return compare_costs(*c->cost, low).order == CostOrder::costlier;
        });
    }
    choice.within_cost = kept.size();
    // Step 2: fewest bits per weight, smallest file and KV cache, then the name.
    std::sort(kept.begin(), kept.end(), before);
    choice.chosen = kept.front();
    if (kept.size() > 1) choice.runner_up = kept[1];
    choice.by_cost = choice.cheapest != nullptr && kept.size() == 1 && candidates.size() > 1;
    choice.tie = choice.cheapest != nullptr && kept.size() > 1;
    const std::string unknown_note =
        unknown.empty() ? "" : fmt::format("; {} with an unknown cost cannot win on cost", unknown.size());
    if (candidates.size() == 1) {
        choice.decided_by = "the only one";
        if (known(*choice.chosen) && priced(policy)) choice.decided_by += ": " + describe_cost(*choice.chosen->cost);
    } else if (choice.by_cost) {
        // The next cheapest: what the chosen one is measurably cheaper than, at the least.
        const Candidate * next = nullptr;
        for (const auto * c : candidates)
            if (c != choice.chosen && known(*c) &&
                (next == nullptr || c->cost->cost_per_query < next->cost->cost_per_query))
                next = c;
        choice.decided_by = fmt::format("cost decided: {} per 1M tokens, measurably cheaper than the other {}",
                                        per_1m(*choice.chosen->cost), candidates.size() - 1);
        if (next != nullptr)
            choice.decided_by += fmt::format(" (the next, {}: {} per 1M tokens, {})", next->name, per_1m(*next->cost),
                                             compare_costs(*next->cost, *choice.chosen->cost).text());
        choice.decided_by += unknown_note;
    } else if (choice.tie) {
        // Why the chosen one and not the runner-up, and how close its cost is to the cheapest.
        const auto * runner = kept[1];
        const auto * low = choice.cheapest;
        const auto * other = low != choice.chosen ? low : runner;
        const auto close =
            choice.chosen->cost && other->cost ? compare_costs(*choice.chosen->cost, *other->cost) : CostComparison{};
        choice.decided_by = fmt::format(
            "tie on cost among {} of {} (within {:.0f}% of the cheapest, {}: {} vs {} {}), broken by {} vs {}",
            kept.size(), candidates.size(), 100 * (kCostBand - 1), low->name, choice.chosen->name, other->name,
            close.text(), tie_break(*runner, *choice.chosen), runner->name);
        choice.decided_by += unknown_note;
    } else {
        const auto * runner = kept.size() > 1 ? kept[1] : nullptr;
        const std::string why =
            !priced(policy) ? "no price_per_hour: costs are not compared" : "no cost known" + unknown_note;
        choice.decided_by =
            fmt::format("{}; decided by step 2 of {}{}", why, candidates.size(),
                        runner != nullptr ? ": " + tie_break(*runner, *choice.chosen) + " vs " + runner->name : "");
    }
    return choice;
}

std::optional<std::string> cannot_change_choice(const Policy & policy, const std::vector<const Candidate *> & passing,
                                                const Candidate & candidate) {
    if (policy.budgets.any() && candidate.cost) {
        const auto budget = rule_budgets(policy, *candidate.cost);
        if (budget.outcome == Outcome::fail)
            return "over budget (R4-budget: " + budget.message + "), so it cannot pass";
    }
    if (passing.empty()) return std::nullopt;
    if (priced(policy) && !candidate.cost) return std::nullopt;
    const auto now = cheapest(policy, passing);
    auto with = passing;
    with.push_back(&candidate);
    const auto then = cheapest(policy, with);
    if (then.chosen != now.chosen) return std::nullopt;
    const auto * chosen = now.chosen;
    const std::string tail = ": R7 would not choose it even if it passed";
    // Out of the band: measurably costlier than the cheapest, both costs named.
    if (then.cheapest != nullptr && then.cheapest != &candidate && known(candidate)) {
        const auto c = compare_costs(*candidate.cost, *then.cheapest->cost);
        if (c.order == CostOrder::costlier)
            return fmt::format(
                "measurably costlier than {}, {} (the cheapest that passes: {} vs {} per 1M tokens, {}){}",
                then.cheapest->name,
                then.cheapest == chosen ? "which passes" : "which passes; " + chosen->name + " is chosen",
                per_1m(*candidate.cost), per_1m(*then.cheapest->cost), c.text(), tail);
    }
    if (then.cheapest != nullptr && candidate.cost && !candidate.cost->cost_known())
        return fmt::format("{}, so it cannot win on cost against {}, which passes{}", describe_cost(*candidate.cost),
                           chosen->name, tail);
    // In the band (or no price): step 2 puts it after the chosen one.
    const std::string tied = then.cheapest != nullptr && known(candidate) && known(*chosen)
        ? "; tie on cost: " + compare_costs(*candidate.cost, *chosen->cost).text()
        : "";
    if (candidate.remote() && !chosen->remote())
        return fmt::format("served remotely, so it ranks after {}, which passes (a local file ranks first{}){}",
                           chosen->name, tied, tail);
    const bool more_bits = std::abs(candidate.bits_per_weight - chosen->bits_per_weight) > 1e-6;
    const std::string how = more_bits               ? "more bits per weight than"
        : candidate.file_bytes > chosen->file_bytes ? "larger than"
                                                    : "after";
    return fmt::format("{} {}, which passes ({}{}){}", how, chosen->name, tie_break(candidate, *chosen), tied, tail);
}

}  // namespace switchyard::decide
