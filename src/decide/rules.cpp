#include "decide/rules.h"

#include "stats/group_sequential.h"

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
    const double needed =
        std::ceil(n * (half_width / margin) * (half_width / margin) - 1e-9);  // 16.000000000000004 is 16
    return static_cast<std::size_t>(std::min(needed, 1e9));
}

RuleVerdict rule_capability(const std::string & suite, const std::string & needs,
                            const std::vector<std::string> & capabilities, int context_length) {
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

std::string RuleVerdict::id() const {
    if (outcome != Outcome::insufficient) return rule;
    return rule.substr(0, rule.find('-')) + "-insufficient";
}

SuiteScore suite_score(const std::string & suite, bool critical, const eval::SuiteResult & r,
                       const eval::SuiteResult * original, bool bootstrap) {
    SuiteScore score{.suite = suite,
                     .critical = critical,
                     .n = r.scored,
                     .correct = r.correct,
                     .excluded = r.unencodable + r.too_long,
                     .accuracy = r.accuracy(),
                     .ci95 = r.ci95};
    if (original != nullptr) score.vs_original = eval::compare_outcomes(*original, r, bootstrap);
    return score;
}

stats::PairedCounts paired_counts(const eval::PairedComparison & c) {
    const std::size_t right_to_wrong = c.right_to_wrong.size(), wrong_to_right = c.wrong_to_right.size();
    return {.both_right = c.both_right,
            .right_to_wrong = right_to_wrong + c.other_excluded_base_right,
            .wrong_to_right = wrong_to_right,
            .both_wrong = c.n - c.both_right - right_to_wrong - wrong_to_right + c.other_excluded_base_wrong};
}

namespace {

// "one-sided at 0.0125 (alpha 0.05 over 4 tests)" style: the level a bound was taken at.
std::string level(double alpha) { return fmt::format("each bound one-sided at {:.3g}", alpha); }

// A proportion against a threshold with Clopper-Pearson bounds: R2 and R6 alike.
struct ProportionCheck {
    Outcome outcome = Outcome::insufficient;
    stats::Interval bounds{0, 1};
    std::size_t items_needed = 0;
};

ProportionCheck check_proportion(std::size_t successes, std::size_t n, double threshold, double alpha) {
    ProportionCheck c;
    c.bounds = stats::binomial_bounds(successes, n, alpha);
    if (c.bounds.lo >= threshold) {
        c.outcome = Outcome::pass;
    } else if (c.bounds.hi < threshold) {
        c.outcome = Outcome::fail;
    } else {
        const double share = n > 0 ? static_cast<double>(successes) / n : 0.0;
        const double half_width = share >= threshold ? share - c.bounds.lo : c.bounds.hi - share;
        c.items_needed = items_needed(n, half_width, std::abs(share - threshold));
    }
    return c;
}

}  // namespace

std::vector<std::size_t> look_points(std::size_t items, bool sequential) {
    std::vector<std::size_t> points;
    if (sequential)
        for (std::size_t at = kRoundItems; at + kRoundItems / 2 < items; at += kRoundItems)
            points.push_back(at);  // no last round under half a round
    if (items > 0) points.push_back(items);
    return points;
}

Look look_of(const SuiteScore & s) {
    Look look{.items = s.items(), .n = s.n, .correct = s.correct, .excluded = s.excluded};
    if (s.vs_original) {
        const auto & c = *s.vs_original;
        look.paired = paired_counts(c);
        look.unscored = c.other_excluded_base_right + c.other_excluded_base_wrong;
        look.base_excluded = c.base_excluded;
        look.mcnemar_p = c.mcnemar_p;
    }
    return look;
}

namespace {

std::vector<Look> looks_of(const SuiteScore & s) { return s.looks.empty() ? std::vector<Look>{look_of(s)} : s.looks; }

// The suite as a verdict's message names it: with where it was read, unless read whole at once.
std::string named(const SuiteScore & s, const RuleVerdict & v) {
    if (v.looks <= 1 && v.items_read >= v.items_available) return "`" + s.suite + "`";
    return fmt::format("`{}` after {} of {} items (look {})", s.suite, v.items_read, v.items_available, v.look + 1);
}

}  // namespace

std::vector<double> look_levels(const SuiteScore & s, double alpha) {
    const auto looks = looks_of(s);
    const auto available = static_cast<double>(std::max({s.items_available(), looks.back().items, std::size_t{1}}));
    std::vector<double> fractions;
    for (const auto & look : looks)
        fractions.push_back(static_cast<double>(std::max(look.items, std::size_t{1})) / available);
    return stats::nominal_levels(fractions, alpha, kSpendingRho);
}

void add_look(SuiteScore & score, std::vector<Look> before, std::size_t available) {
    score.available = available;
    score.looks = std::move(before);
    score.looks.push_back(look_of(score));
}

namespace {

// R2 at one look; `v` comes with where it was read (over_looks), `name` the suite as the message names it.
RuleVerdict floor_at(const Policy & policy, const SuiteScore & s, const Look & look, double alpha, RuleVerdict v,
                     const std::string & name) {
    v.rule = "R2-floor";
    if (look.n == 0) {
        v.outcome = Outcome::insufficient;
        v.message = fmt::format(
            "{} is not measurable: none of its {} items could be scored (unencodable or too long for the context)",
            name, look.excluded);
        return v;
    }
    const std::size_t items = look.n + look.excluded;
    const auto check = check_proportion(look.correct, items, policy.accuracy_floor, alpha);
    v.outcome = check.outcome;
    v.items_needed = check.items_needed;
    v.message = fmt::format(
        "accuracy {} [{:.1f}, {:.1f}] on {}{} (n={}{}; {}) {} floor {}",
        percent(static_cast<double>(look.correct) / items), 100 * check.bounds.lo, 100 * check.bounds.hi, name,
        s.critical ? " (critical)" : "", items,
        look.excluded > 0 ? fmt::format(", {} it could not score counted wrong", look.excluded) : "", level(alpha),
        v.outcome == Outcome::pass       ? "lower bound >="
            : v.outcome == Outcome::fail ? "upper bound <"
                                         : "straddles the",
        percent(policy.accuracy_floor));
    if (v.outcome == Outcome::insufficient && v.items_needed > 0)
        v.message += fmt::format("; about {} items would settle it", v.items_needed);
    return v;
}

// R3 at one look, like floor_at.
RuleVerdict drop_at(const Policy & policy, const SuiteScore & s, const Look & look, double alpha, RuleVerdict v,
                    const std::string & name) {
    v.rule = "R3-drop";
    if (!look.paired || look.paired->n() == 0) {
        v.outcome = Outcome::insufficient;
        v.message = name + " is not measurable against the original: it scored none of the items";
        return v;
    }
    const auto & counts = *look.paired;
    const bool relative = policy.drop_relative;
    const double drop = stats::paired_drop(counts, relative);
    const auto ci = stats::paired_drop_bounds(counts, relative, alpha);
    const auto shown = [&](double x) { return relative ? percent(x) : fmt::format("{:.1f} points", 100 * x); };
    const std::string numbers = fmt::format(
        "drop {} [{:.1f}, {:.1f}] on {}{} ({}; n={} paired{}{}, {} right->wrong, {} wrong->right, McNemar p={:.3g})",
        shown(drop), 100 * ci.lo, 100 * ci.hi, name, s.critical ? " (critical)" : "", level(alpha), counts.n(),
        look.unscored > 0 ? fmt::format(", {} this model could not score counted wrong", look.unscored) : "",
        look.base_excluded > 0 ? fmt::format(", {} the original could not score left out", look.base_excluded) : "",
        counts.right_to_wrong, counts.wrong_to_right, look.mcnemar_p);
    v.drop = DropEvidence{
        .suite = s.suite, .drop = drop, .ci = ci, .alpha = alpha, .n = counts.n(), .unscored = look.unscored};
    const std::string limit = "max_drop " + shown(policy.max_drop);
    switch (stats::paired_drop_test(counts, policy.max_drop, relative, alpha)) {
        case stats::OneSided::below: v.message = numbers + ": the drop is below " + limit; break;
        case stats::OneSided::above:
            v.outcome = Outcome::fail;
            v.message = numbers + ": the drop is above " + limit + " -> too compressed";
            break;
        case stats::OneSided::undecided: {
            v.outcome = Outcome::insufficient;
            const bool below = drop <= policy.max_drop;
            const double half_width = below ? ci.hi - drop : drop - ci.lo;
            v.items_needed = items_needed(counts.n(), half_width, std::abs(policy.max_drop - drop));
            v.message = numbers + ": the interval straddles " + limit +
                (v.items_needed > 0 ? fmt::format("; about {} items would settle it", v.items_needed)
                                    : std::string("; no number of items settles a drop equal to the limit"));
            break;
        }
    }
    return v;
}

// Whether the look decides the rule at its level: the cheap test alone (no bounds, no message).
bool floor_decides(const Policy & policy, const Look & look, double alpha) {
    return look.n > 0 &&
        check_proportion(look.correct, look.n + look.excluded, policy.accuracy_floor, alpha).outcome !=
        Outcome::insufficient;
}

bool drop_decides(const Policy & policy, const Look & look, double alpha) {
    return look.paired && look.paired->n() > 0 &&
        stats::paired_drop_test(*look.paired, policy.max_drop, policy.drop_relative, alpha) !=
        stats::OneSided::undecided;
}

// The first look that decides the rule, else the last, judged at its level.
template <typename Decides, typename Judge>
RuleVerdict over_looks(const SuiteScore & s, double alpha, Decides decides, Judge judge) {
    const auto looks = looks_of(s);
    const auto levels = look_levels(s, alpha);
    std::size_t k = 0;
    while (k + 1 < looks.size() && !decides(looks[k], levels[k])) ++k;
    const RuleVerdict where{.look = k,
                            .looks = looks.size(),
                            .items_read = looks[k].items,
                            .items_available = std::max(s.items_available(), looks.back().items)};
    return judge(looks[k], levels[k], where, named(s, where));
}

}  // namespace

RuleVerdict rule_floor(const Policy & policy, const SuiteScore & s, double alpha) {
    return over_looks(
        s, alpha, [&](const Look & look, double a) { return floor_decides(policy, look, a); },
        [&](const Look & look, double a, const RuleVerdict & where, const std::string & name) {
            return floor_at(policy, s, look, a, where, name);
        });
}

RuleVerdict rule_drop(const Policy & policy, const SuiteScore & s, double alpha) {
    return over_looks(
        s, alpha, [&](const Look & look, double a) { return drop_decides(policy, look, a); },
        [&](const Look & look, double a, const RuleVerdict & where, const std::string & name) {
            return drop_at(policy, s, look, a, where, name);
        });
}

RuleVerdict rule_agreement(const Policy & policy, const std::optional<DriftScore> & drift, double alpha) {
    RuleVerdict v{.rule = "R6-agreement"};
    if (!policy.min_agreement) {
        v.message = "no consistency requirement";
        return v;
    }
    if (!drift) {
        v.outcome = Outcome::fail;
        v.message = fmt::format(
            "answers must agree with the original (top-1 >= {}), which only a compression of it can be judged by",
            percent(*policy.min_agreement));
        return v;
    }
    if (drift->positions == 0) {
        v.outcome = Outcome::insufficient;
        v.message = fmt::format(
            "top-1 agreement with the original {} was recorded without its number of positions: measure the screen again",
            percent(drift->top1_agreement));
        return v;
    }
    // Positions of one text are not independent draws: the bounds are narrower than the truth.
    const auto agreeing =
        static_cast<std::size_t>(std::llround(drift->top1_agreement * static_cast<double>(drift->positions)));
    const auto check = check_proportion(agreeing, drift->positions, *policy.min_agreement, alpha);
    v.outcome = check.outcome;
    v.items_needed = check.items_needed;
    v.message = fmt::format(
        "top-1 agreement with the original {} [{:.1f}, {:.1f}] over {} positions of the screen ({}) {} {}",
        percent(drift->top1_agreement), 100 * check.bounds.lo, 100 * check.bounds.hi, drift->positions, level(alpha),
        v.outcome == Outcome::pass       ? "lower bound >="
            : v.outcome == Outcome::fail ? "upper bound <"
                                         : "straddles",
        percent(*policy.min_agreement));
    return v;
}

RuleVerdict rule_screen(const Policy & policy, const DriftScore & drift) {
    RuleVerdict v{.rule = "screen"};
    v.outcome = drift.kld_mean <= policy.screen_max_kld ? Outcome::pass : Outcome::fail;
    v.message =
        fmt::format("mean KLD {:.4f} nats {} screen limit {:.2f} (top-1 agreement {})", drift.kld_mean,
                    v.outcome == Outcome::pass ? "<=" : ">", policy.screen_max_kld, percent(drift.top1_agreement));
    if (v.outcome == Outcome::fail) v.message += " -> not worth a task run";
    return v;
}

namespace {

nlohmann::json interval_json(const stats::Interval & i) { return nlohmann::json::array({i.lo, i.hi}); }

}  // namespace

void to_json(nlohmann::json & out, const SuiteScore & s) {
    out = {{"suite", s.suite},
           {"critical", s.critical},
           {"n", s.n},
           {"correct", s.correct},
           {"excluded", s.excluded},
           {"accuracy", s.accuracy},
           {"ci95", interval_json(s.ci95)}};
    if (s.vs_original) out["vs_original"] = *s.vs_original;
    out["items_read"] = s.items();
    out["items_available"] = s.items_available();
    out["looks"] = std::max<std::size_t>(1, s.looks.size());
}

void to_json(nlohmann::json & out, const DriftScore & d) {
    out = {{"kld_mean", d.kld_mean},
           {"kld_p99", d.kld_p99},
           {"top1_agreement", d.top1_agreement},
           {"ppl_ratio", d.ppl_ratio},
           {"positions", d.positions}};
}

void from_json(const nlohmann::json & in, DriftScore & d) {
    d = DriftScore{.kld_mean = in.at("kld_mean"),
                   .kld_p99 = in.at("kld_p99"),
                   .top1_agreement = in.at("top1_agreement"),
                   .ppl_ratio = in.at("ppl_ratio"),
                   .positions = in.value("positions", std::size_t{0})};
}

}  // namespace switchyard::decide
