#include "decide/decision.h"

#include "decide/cost_rules.h"
#include "support/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace switchyard::decide {

const char * to_string(CandidateKind kind) {
    switch (kind) {
        case CandidateKind::original: return "original";
        case CandidateKind::variant: return "variant";
        case CandidateKind::alternative: return "alternative";
        case CandidateKind::drafted: return "drafted";
    }
    return "?";
}

const char * to_string(Action action) {
    switch (action) {
        case Action::keep: return "keep";
        case Action::compress: return "compress";
        case Action::switch_model: return "switch";
    }
    return "?";
}

const SuiteScore * Candidate::suite(const std::string & name) const {
    for (const auto & s : suites)
        if (s.suite == name) return &s;
    return nullptr;
}

const RuleVerdict * Assessment::first(Outcome wanted) const {
    for (const auto & v : verdicts)
        if (v.outcome == wanted) return &v;
    return nullptr;
}

bool capable(const Candidate & c, const std::string & task_class, const std::vector<TaskRef> & tasks) {
    for (const auto & t : tasks)
        if (t.task_class == task_class &&
            rule_capability(t.suite, t.needs, c.capabilities, c.context_length).outcome == Outcome::fail)
            return false;
    return true;
}

std::vector<RuleVerdict> suite_verdicts(const Policy & policy, const Candidate & c, const TaskRef & t,
                                        const ClassContext & context) {
    std::vector<RuleVerdict> out;
    const auto * s = c.suite(t.suite);
    if (s == nullptr) return out;
    const double alpha = context.alpha_each(policy);
    // With no original to keep, the floor is all that says a model can do the class's work.
    if (t.critical || !context.original_serves) out.push_back(rule_floor(policy, *s, alpha));
    // A drafted original's suites are the original's own: its R3 is rule_same_answers, once.
    if (c.kind != CandidateKind::original && c.kind != CandidateKind::drafted && context.original_serves)
        out.push_back(rule_drop(policy, *s, alpha));
    return out;
}

std::optional<RuleVerdict> rule_same_answers(const Candidate & c) {
    if (!c.cost || !c.cost->draft) return std::nullopt;
    const auto & d = *c.cost->draft;
    RuleVerdict v{.rule = "R3-drop"};
    const std::string by = c.draft ? c.draft->name : "its draft";
    if (d.same_answers()) {
        v.message = fmt::format(
            "no drop: the original's answers (drafted by {}: greedy answers identical on {} of {} queries of the speed pass)",
            by, d.answers_identical, d.answers_compared);
        return v;
    }
    v.outcome = Outcome::fail;
    v.message = d.answers_compared == 0
        ? fmt::format("drafted by {}: no answer was compared with the original's, so its answers are not shown to be the original's", by)
        : fmt::format(
              "drafted by {}: {} of {} greedy answers differ from the original's ({}): not the original's answers, and its own accuracy was not measured",
              by, d.answers_compared - d.answers_identical, d.answers_compared, d.first_difference);
    return v;
}

Assessment assess(const Policy & policy, const Candidate & c, const std::string & task_class,
                  const std::vector<TaskRef> & tasks, const ClassContext & context) {
    Assessment a{.candidate = c.name, .task_class = task_class, .complete = true};
    // A drafted original is held to the original's answers themselves (rule_same_answers), not to agreement.
    const bool against_original =
        c.kind != CandidateKind::original && c.kind != CandidateKind::drafted && context.original_serves;
    const double alpha = context.alpha_each(policy);
    for (const auto & t : tasks) {
        if (t.task_class != task_class) continue;
        if (!t.needs.empty()) a.verdicts.push_back(rule_capability(t.suite, t.needs, c.capabilities, c.context_length));
        if (c.suite(t.suite) == nullptr) {
            a.complete = false;
            continue;
        }
        for (auto & v : suite_verdicts(policy, c, t, context)) a.verdicts.push_back(std::move(v));
    }
    if (c.kind == CandidateKind::drafted) {
        if (const auto same = rule_same_answers(c)) {
            a.verdicts.push_back(*same);
        } else {
            a.complete = false;
        }
    }
    if (policy.min_agreement && against_original)
        a.verdicts.push_back(rule_agreement(policy, c.same_vocabulary ? c.drift : std::nullopt, alpha));
    if (policy.budgets.any()) {
        if (c.cost) {
            a.verdicts.push_back(rule_budgets(policy, *c.cost));
        } else {
            a.complete = false;
        }
    }
    if (a.first(Outcome::fail)) {
        a.outcome = Outcome::fail;
    } else if (a.first(Outcome::insufficient) || !a.complete) {
        a.outcome = Outcome::insufficient;
    }
    return a;
}

namespace {

const Assessment * assessment_of(const std::vector<Assessment> & assessments, const std::string & name,
                                 const std::string & task_class) {
    for (const auto & a : assessments)
        if (a.candidate == name && a.task_class == task_class) return &a;
    return nullptr;
}

const RuleVerdict * first_problem_verdict(const Assessment & a) {
    const auto * v = a.first(Outcome::fail);
    return v != nullptr ? v : a.first(Outcome::insufficient);
}

std::string first_problem(const Assessment & a) {
    if (const auto * v = first_problem_verdict(a)) return v->id() + ": " + v->message;
    return a.complete ? "passes" : "not fully measured";
}

std::string numbers_of(const Assessment & a) {
    std::string numbers;
    for (const auto & v : a.verdicts)
        if (v.rule == "R3-drop" || v.rule == "R2-floor" || v.rule == "R4-budget")
            numbers += (numbers.empty() ? "" : "; ") + v.message;
    return numbers;
}

// Where each method's ladder stopped for the class: its mildest rung assessed that does not pass.
// Fixed-sequence testing claims nothing beyond it, so the rungs after it are not measured.
std::vector<std::pair<const Candidate *, const Assessment *>> ladder_stops(
    const std::vector<const Candidate *> & candidates, const std::vector<Assessment> & assessments,
    const std::string & task_class) {
    std::map<std::string, std::pair<const Candidate *, const Assessment *>> stops;
    for (const auto * c : candidates) {
        if (c->kind != CandidateKind::variant) continue;
        const auto * a = assessment_of(assessments, c->name, task_class);
        if (a == nullptr || (a->outcome == Outcome::pass && a->complete) || first_problem_verdict(*a) == nullptr)
            continue;
        auto [it, added] = stops.try_emplace(c->ladder, c, a);
        if (!added && c->severity < it->second.first->severity) it->second = {c, a};
    }
    // In the order the candidates come (the plan's variants, more bits per weight first).
    std::vector<std::pair<const Candidate *, const Assessment *>> out;
    for (const auto * c : candidates)
        if (const auto it = stops.find(c->ladder);
            c->kind == CandidateKind::variant && it != stops.end() && it->second.first == c)
            out.push_back(it->second);
    return out;
}

// Where the original is ruled out by a declared capability alone (R1), whether it measurably
// scores higher than the chosen model on the class's suites: a missing label must not hide that.
std::string original_beats(const Policy & policy, const Candidate & chosen, const ClassContext & context) {
    std::string out;
    for (const auto & name : context.suites) {
        const auto * s = chosen.suite(name);
        if (s == nullptr || !s->vs_original) continue;
        const auto counts = paired_counts(*s->vs_original);
        if (stats::paired_drop_test(counts, 0.0, false, context.alpha_each(policy)) != stats::OneSided::above) continue;
        const auto bounds = stats::paired_drop_bounds(counts, false, context.alpha_each(policy));
        const double n = static_cast<double>(counts.n());
        out += fmt::format("{}`{}`: {:.1f}% vs {:.1f}% (by {:.1f} points [{:.1f}, {:.1f}])", out.empty() ? "" : "; ",
                           name, 100.0 * static_cast<double>(counts.both_right + counts.right_to_wrong) / n,
                           100.0 * static_cast<double>(counts.both_right + counts.wrong_to_right) / n,
                           100 * stats::paired_drop(counts, false), 100 * bounds.lo, 100 * bounds.hi);
    }
    return out.empty()
        ? out
        : "note: the original, ruled out only by a capability the class declares (R1), scores measurably higher on " +
            out;
}

// The rule a drafted original's keep rests on: the one that ruled out the original alone (a budget,
// usually), else the one that ruled out every compression, else R7 (it was simply cheaper).
void keep_drafted(ClassDecision & d, const Candidate & chosen, const Assessment * original,
                  const std::string & compressions_ruled_out, bool stopped_undecided) {
    d.action = Action::keep;
    d.draft = chosen.draft->name;
    const auto * problem =
        original != nullptr && original->outcome != Outcome::pass ? first_problem_verdict(*original) : nullptr;
    if (problem != nullptr) {
        d.rule = problem->id();
        d.flagged = problem->outcome == Outcome::insufficient;
    } else if (!compressions_ruled_out.empty()) {
        d.rule = compressions_ruled_out;
        d.flagged = stopped_undecided;
    } else {
        d.rule = "R7-cheapest";
    }
}

std::string guarantee_of(const Policy & policy, const ClassDecision & d, const ClassContext & context) {
    const std::string level =
        fmt::format("{} families ({} each), each ladder tested in fixed sequence, mild to aggressive", context.families,
                    fmt::format("{:.3g}", context.alpha_each(policy)));
    if (d.chosen.empty() || d.rule == "none-passes") return "none: no candidate passed every rule";
    if (d.action == Action::keep && !d.draft.empty())
        return "the original's answers are kept (drafted by " + d.draft +
            ", whose proposals its own sampler accepts or replaces; identical greedy answers checked in the speed pass), so no drop is claimed";
    if (d.action == Action::keep) return "the original is kept: it is the reference, so no drop is claimed";
    if (context.original_serves)
        return fmt::format(
            "the chance that {} in fact drops more than {} versus the original on some suite of `{}` is at most {} ({})",
            d.chosen,
            policy.drop_relative ? fmt::format("{:.1f}%", 100 * policy.max_drop)
                                 : fmt::format("{:.1f} points", 100 * policy.max_drop),
            d.task_class, policy.alpha, level);
    return fmt::format(
        "the chance that {} in fact scores under the floor {:.1f}% on some suite of `{}` is at most {} ({})", d.chosen,
        100 * policy.accuracy_floor, d.task_class, policy.alpha, level);
}

}  // namespace

ClassDecision choose(const Policy & policy, const std::string & task_class,
                     const std::vector<const Candidate *> & candidates, const std::vector<Assessment> & assessments,
                     const ClassContext & context) {
    ClassDecision d{.task_class = task_class};
    const Candidate * original = nullptr;
    std::vector<const Candidate *> passing;
    bool variant_passes = false;
    for (const auto * c : candidates) {
        if (c->kind == CandidateKind::original) original = c;
        const auto * a = assessment_of(assessments, c->name, task_class);
        if (a == nullptr) continue;
        const bool passes = a->outcome == Outcome::pass && a->complete;
        if (passes) passing.push_back(c);
        variant_passes = variant_passes || (passes && c->kind == CandidateKind::variant);
    }
    const Assessment * original_assessment =
        original ? assessment_of(assessments, original->name, task_class) : nullptr;
    // Why no compression was chosen: where each ladder stopped (R2, R3 or R6, or too little evidence).
    const auto stops = ladder_stops(candidates, assessments, task_class);
    std::string ruled_out, compression;
    bool stopped_undecided = false;
    for (const auto & [rung, a] : stops) {
        const auto * v = first_problem_verdict(*a);
        stopped_undecided = stopped_undecided || v->outcome == Outcome::insufficient;
        if (ruled_out.empty() || v->outcome == Outcome::insufficient) ruled_out = v->id();
        compression += fmt::format("{}{}: {}", compression.empty() ? "" : "; ", rung->name, first_problem(*a));
    }
    if (!compression.empty()) compression = "no compression passes (" + compression + ")";

    if (passing.empty()) {
        d.flagged = true;
        d.rule = "none-passes";
        const Candidate * fallback = original;
        if (fallback == nullptr) {
            // No original to keep: the most accurate alternative on the class's first suite, as a stopgap.
            for (const auto * c : candidates)
                if (fallback == nullptr ||
                    (!c->suites.empty() && !fallback->suites.empty() &&
                     c->suites.front().accuracy > fallback->suites.front().accuracy))
                    fallback = c;
        }
        if (fallback == nullptr) {
            d.reason = "no candidate was measured for this class";
            d.guarantee = guarantee_of(policy, d, context);
            return d;
        }
        d.action = fallback->kind == CandidateKind::original ? Action::keep : Action::switch_model;
        d.chosen = fallback->name;
        const auto * a = assessment_of(assessments, fallback->name, task_class);
        d.reason = "no candidate passes every rule; " + fallback->name + " stays as the least bad (" +
            (a ? first_problem(*a) : "not assessed") + ")";
        for (const auto * c : candidates)
            if (const auto * other = assessment_of(assessments, c->name, task_class); c != fallback && other != nullptr)
                d.reason += "; " + c->name + ": " + first_problem(*other);
        d.guarantee = guarantee_of(policy, d, context);
        return d;
    }

    const auto pick = cheapest(policy, passing);
    const Candidate * chosen = pick.chosen;
    d.chosen = chosen->name;
    // A backup serves when the chosen model fails; the original drafted is the original's own
    // weights, so it backs up nothing the original does not.
    std::vector<const Candidate *> others;
    for (const auto * c : passing)
        if (c != chosen && c->kind != CandidateKind::drafted) others.push_back(c);
    if (chosen->kind != CandidateKind::original && original != nullptr) {
        d.backup = original->name;
    } else if (!others.empty()) {
        d.backup = cheapest(policy, others).chosen->name;
    }
    const std::string r7 = fmt::format("R7 among {} passing: {}", passing.size(), pick.decided_by);
    if (chosen->kind == CandidateKind::original) {
        d.action = Action::keep;
        d.rule = !variant_passes && !ruled_out.empty() ? ruled_out : "R7-cheapest";
        d.flagged = !variant_passes && stopped_undecided;
        d.reason = (compression.empty() ? "the original passes and no cheaper candidate does"
                                        : compression + "; the original passes") +
            "; " + r7;
    } else if (chosen->kind == CandidateKind::drafted) {
        // It passes only with its speed pass's answers compared (rule_same_answers), beside an original.
        SWITCHYARD_INVARIANT(original != nullptr && chosen->draft && chosen->cost && chosen->cost->draft,
                             "a drafted original passes only measured, beside its original");
        keep_drafted(d, *chosen, original_assessment, !variant_passes ? ruled_out : "", stopped_undecided);
        const auto numbers = numbers_of(*assessment_of(assessments, chosen->name, task_class));
        d.reason = fmt::format("{} drafted by {} ({}) passes: {}; ", original->name, d.draft,
                               describe_draft(*chosen->cost->draft), numbers);
        if (original_assessment != nullptr && original_assessment->outcome != Outcome::pass)
            d.reason += "the original alone: " + first_problem(*original_assessment) + "; ";
        if (!variant_passes && !compression.empty()) d.reason += compression + "; ";
        d.reason += r7;
    } else if (chosen->kind == CandidateKind::variant) {
        d.action = Action::compress;
        d.rule = "R7-cheapest";
        const auto numbers = numbers_of(*assessment_of(assessments, chosen->name, task_class));
        d.reason = chosen->name + " passes" + (numbers.empty() ? "" : ": " + numbers) + "; " + r7;
    } else {
        d.action = Action::switch_model;
        const auto numbers = numbers_of(*assessment_of(assessments, chosen->name, task_class));
        const auto * original_problem = original_assessment != nullptr && original_assessment->outcome != Outcome::pass
            ? first_problem_verdict(*original_assessment)
            : nullptr;
        if (original == nullptr) {
            d.rule = "R5-no-original";
        } else if (original_problem != nullptr) {
            d.rule = original_problem->id();
            d.flagged = original_problem->outcome == Outcome::insufficient;
        } else if (!variant_passes && !ruled_out.empty()) {
            d.rule = ruled_out;
            d.flagged = stopped_undecided;
        } else {
            d.rule = "R7-cheapest";
        }
        d.reason = chosen->name + " passes" + (numbers.empty() ? "" : ": " + numbers) + "; ";
        if (original_assessment != nullptr && original_assessment->outcome != Outcome::pass)
            d.reason += "the original: " + first_problem(*original_assessment) + "; ";
        if (!variant_passes && !compression.empty()) d.reason += compression + "; ";
        d.reason += r7;
        if (original != nullptr && !context.original_serves)
            if (const auto note = original_beats(policy, *chosen, context); !note.empty()) d.reason += "; " + note;
    }
    d.guarantee = guarantee_of(policy, d, context);
    return d;
}

}  // namespace switchyard::decide
