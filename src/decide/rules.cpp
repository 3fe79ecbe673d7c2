#include "decide/rules.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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
    if (s.n == 0) {
        v.outcome = Outcome::insufficient;
        v.message = fmt::format("`{}` (critical) is not measurable: none of its {} items could be scored (unencodable or too long for the context)", s.suite,
                                s.excluded);
        return v;
    }
    v.outcome = s.accuracy >= policy.accuracy_floor ? Outcome::pass : Outcome::fail;
    v.message = fmt::format("accuracy {} [{:.1f}, {:.1f}] on `{}` (critical, n={}{}) {} floor {}", percent(s.accuracy), 100 * s.ci95.lo, 100 * s.ci95.hi, s.suite,
                            s.n, s.excluded > 0 ? fmt::format(", {} excluded", s.excluded) : "", v.outcome == Outcome::pass ? ">=" : "<",
                            percent(policy.accuracy_floor));
    return v;
}

RuleVerdict rule_drop(const Policy & policy, const SuiteScore & s, std::size_t comparisons) {
    RuleVerdict v{.rule = "R3-drop"};
    if (!s.vs_original || s.vs_original->n == 0) {
        v.outcome = Outcome::insufficient;
        v.message = "`" + s.suite + "` is not measurable against the original: no item was scored by both";
        return v;
    }
    const auto & c = *s.vs_original;
    comparisons = std::max<std::size_t>(comparisons, 1);
    const double confidence = 1.0 - policy.alpha / static_cast<double>(comparisons);
    const auto absolute = stats::paired_difference_interval(c.n, c.right_to_wrong.size(), c.wrong_to_right.size(), confidence);
    // Relative to the original's accuracy on the same items; an original that got none right has nothing to lose.
    const double scale = policy.drop_relative && c.base_accuracy() > 0 ? c.base_accuracy() : 1.0;
    const double drop = (static_cast<double>(c.right_to_wrong.size()) - static_cast<double>(c.wrong_to_right.size())) / c.n / scale;
    const stats::Interval ci{absolute.lo / scale, absolute.hi / scale};
    const auto shown = [&](double x) { return policy.drop_relative ? percent(x) : fmt::format("{:.1f} points", 100 * x); };
    const std::string numbers = fmt::format(
        "drop {} [{:.1f}, {:.1f}] on `{}`{} ({:.4g}% interval, alpha {} / {} comparison{}; n={} both scored{}, {} right->wrong, {} wrong->right, McNemar p={:.3g})",
        shown(drop), 100 * ci.lo, 100 * ci.hi, s.suite, s.critical ? " (critical)" : "", 100 * confidence, policy.alpha, comparisons, comparisons == 1 ? "" : "s",
        c.n,
        c.base_excluded + c.other_excluded > 0 ? fmt::format(" (left out: {} the original could not score, {} this model could not)", c.base_excluded, c.other_excluded) : "", c.right_to_wrong.size(), c.wrong_to_right.size(), c.mcnemar_p);
    v.drop = DropEvidence{.suite = s.suite, .drop = drop, .ci = ci, .confidence = confidence};
    const std::string limit = "max_drop " + shown(policy.max_drop);
    if (ci.hi <= policy.max_drop) {
        v.message = numbers + ": upper bound within " + limit;
    } else if (ci.lo > policy.max_drop) {
        v.outcome = Outcome::fail;
        v.message = numbers + ": lower bound above " + limit + " -> too compressed";
    } else {
        v.outcome = Outcome::insufficient;
        const bool below = drop <= policy.max_drop;
        const double half_width = below ? ci.hi - drop : drop - ci.lo;
        v.items_needed = items_needed(c.n, half_width, std::abs(policy.max_drop - drop));
        v.message = numbers + ": the interval straddles " + limit +
                    (v.items_needed > 0 ? fmt::format("; about {} items would settle it", v.items_needed) : std::string("; no number of items settles a drop equal to the limit"));
    }
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

namespace {

nlohmann::json interval_json(const stats::Interval & i) { return nlohmann::json::array({i.lo, i.hi}); }

}  // namespace

void to_json(nlohmann::json & out, const SuiteScore & s) {
    out = {{"suite", s.suite}, {"critical", s.critical}, {"n", s.n}, {"excluded", s.excluded}, {"accuracy", s.accuracy}, {"ci95", interval_json(s.ci95)}};
    if (s.vs_original) out["vs_original"] = *s.vs_original;
}

void to_json(nlohmann::json & out, const DriftScore & d) {
    out = {{"kld_mean", d.kld_mean}, {"kld_p99", d.kld_p99}, {"top1_agreement", d.top1_agreement}, {"ppl_ratio", d.ppl_ratio}};
}

void from_json(const nlohmann::json & in, DriftScore & d) {
    d = DriftScore{.kld_mean = in.at("kld_mean"), .kld_p99 = in.at("kld_p99"), .top1_agreement = in.at("top1_agreement"), .ppl_ratio = in.at("ppl_ratio")};
}


}  // namespace switchyard::decide
