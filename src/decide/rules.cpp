#include "decide/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace switchyard::decide {

const char * to_string(Outcome outcome) {
    switch (outcome) {
    case Outcome::pass: return "pass";
    case Outcome::fail: return "fail";
    case Outcome::insufficient: return "insufficient evidence";
    }
    return "?";
}

namespace {

std::string percent(double share) { return fmt::format("{:.1f}%", 100.0 * share); }

std::string mebibytes(std::uint64_t bytes) { return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024.0)); }

}  // namespace

std::size_t items_needed(std::size_t n, double half_width, double margin) {
    if (n == 0 || margin <= 0 || half_width <= 0) return 0;
    // Interval width shrinks as 1/sqrt(n).
    const double needed = std::ceil(n * (half_width / margin) * (half_width / margin) - 1e-9);  // 16.000000000000004 is 16
    return static_cast<std::size_t>(std::min(needed, 1e9));
}

RuleVerdict rule_capability(const std::string & suite, const std::string & needs, const std::vector<std::string> & capabilities, int context_length) {
    RuleVerdict v{.rule = "R1-capability"};
    if (needs.empty()) {
        v.message = "`" + suite + "` needs no special capability";
        return v;
    }
    if (needs.rfind("context:", 0) == 0) {
        const long needed = std::stol(needs.substr(8));
        v.outcome = context_length >= needed ? Outcome::pass : Outcome::fail;
        v.message = fmt::format("`{}` needs a context of {} tokens; the model has {}", suite, needed, context_length);
        return v;
    }
    const bool has = std::find(capabilities.begin(), capabilities.end(), needs) != capabilities.end();
    v.outcome = has ? Outcome::pass : Outcome::fail;
    v.message = "`" + suite + "` needs " + needs + (has ? ", which the model has" : ", which the model lacks");
    return v;
}

RuleVerdict rule_floor(const Policy & policy, const SuiteScore & s) {
    RuleVerdict v{.rule = "R2-floor"};
    v.outcome = s.accuracy >= policy.accuracy_floor ? Outcome::pass : Outcome::fail;
    v.message = fmt::format("accuracy {} [{:.1f}, {:.1f}] on `{}` (critical, n={}) {} floor {}", percent(s.accuracy), 100 * s.ci95.lo, 100 * s.ci95.hi, s.suite,
                            s.n, v.outcome == Outcome::pass ? ">=" : "<", percent(policy.accuracy_floor));
    return v;
}

RuleVerdict rule_drop(const Policy & policy, const SuiteScore & s) {
    RuleVerdict v{.rule = "R3-drop"};
    if (!s.vs_original || s.vs_original->n == 0) {
        v.outcome = Outcome::insufficient;
        v.message = "no items of `" + s.suite + "` were scored for both this model and the original";
        return v;
    }
    const auto & c = *s.vs_original;
    const auto & d = policy.drop_relative ? c.drop_relative : c.drop_absolute;
    const auto shown = [&](double x) { return policy.drop_relative ? percent(x) : fmt::format("{:.1f} points", 100 * x); };
    const std::string numbers = fmt::format("drop {} [{:.1f}, {:.1f}] on `{}`{} (n={}, {} right->wrong, {} wrong->right), p={:.3g}", shown(d.mean_drop),
                                            100 * d.ci.lo, 100 * d.ci.hi, s.suite, s.critical ? " (critical)" : "", c.n, c.right_to_wrong.size(),
                                            c.wrong_to_right.size(), c.mcnemar_p);
    const std::string limit = "max_drop " + shown(policy.max_drop);
    if (d.ci.hi <= policy.max_drop) {
        v.message = numbers + " within " + limit;
    } else if (d.mean_drop > policy.max_drop && c.mcnemar_p < policy.alpha) {
        v.outcome = Outcome::fail;
        v.message = numbers + " > " + limit + " -> too compressed";
    } else {
        v.outcome = Outcome::insufficient;
        const bool below = d.mean_drop <= policy.max_drop;
        const double half_width = below ? d.ci.hi - d.mean_drop : d.mean_drop - d.ci.lo;
        v.items_needed = items_needed(c.n, half_width, std::abs(policy.max_drop - d.mean_drop));
        v.message = numbers + ": the interval straddles " + limit +
                    (v.items_needed > 0 ? fmt::format("; about {} items would settle it", v.items_needed) : std::string("; no number of items settles a drop equal to the limit"));
    }
    return v;
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

RuleVerdict rule_agreement(const Policy & policy, const std::optional<DriftScore> & drift) {
    RuleVerdict v{.rule = "R6-agreement"};
    if (!policy.min_agreement) {
        v.message = "no consistency requirement";
        return v;
    }
    if (!drift) {
        v.outcome = Outcome::fail;
        v.message = fmt::format("answers must agree with the original (top-1 >= {}), which only a compression of it can be judged by", percent(*policy.min_agreement));
        return v;
    }
    v.outcome = drift->top1_agreement >= *policy.min_agreement ? Outcome::pass : Outcome::fail;
    v.message = fmt::format("top-1 agreement with the original {} {} {}", percent(drift->top1_agreement), v.outcome == Outcome::pass ? ">=" : "<",
                            percent(*policy.min_agreement));
    return v;
}

RuleVerdict rule_screen(const Policy & policy, const DriftScore & drift) {
    RuleVerdict v{.rule = "screen"};
    v.outcome = drift.kld_mean <= policy.screen_max_kld ? Outcome::pass : Outcome::fail;
    v.message = fmt::format("mean KLD {:.4f} nats {} screen limit {:.2f} (top-1 agreement {})", drift.kld_mean, v.outcome == Outcome::pass ? "<=" : ">",
                            policy.screen_max_kld, percent(drift.top1_agreement));
    if (v.outcome == Outcome::fail) v.message += " -> not worth a task run";
    return v;
}

}  // namespace switchyard::decide
