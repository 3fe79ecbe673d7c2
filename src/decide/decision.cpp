#include "decide/decision.h"

#include "decide/cost_rules.h"

#include <fmt/format.h>

#include <algorithm>

namespace switchyard::decide {

const char * to_string(CandidateKind kind) {
    switch (kind) {
    case CandidateKind::original: return "original";
    case CandidateKind::variant: return "variant";
    case CandidateKind::alternative: return "alternative";
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
        if (t.task_class == task_class && rule_capability(t.suite, t.needs, c.capabilities, c.context_length).outcome == Outcome::fail) return false;
    return true;
}

Assessment assess(const Policy & policy, const Candidate & c, const std::string & task_class, const std::vector<TaskRef> & tasks, const ClassContext & context) {
    Assessment a{.candidate = c.name, .task_class = task_class, .complete = true};
    const bool against_original = c.kind != CandidateKind::original && context.original_serves;
    for (const auto & t : tasks) {
        if (t.task_class != task_class) continue;
        if (!t.needs.empty()) a.verdicts.push_back(rule_capability(t.suite, t.needs, c.capabilities, c.context_length));
        const auto * s = c.suite(t.suite);
        if (s == nullptr) {
            a.complete = false;
            continue;
        }
        if (t.critical) a.verdicts.push_back(rule_floor(policy, *s));
        if (against_original) a.verdicts.push_back(rule_drop(policy, *s, context.comparisons));
    }
    if (policy.min_agreement && against_original) a.verdicts.push_back(rule_agreement(policy, c.same_vocabulary ? c.drift : std::nullopt));
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

const Assessment * assessment_of(const std::vector<Assessment> & assessments, const std::string & name, const std::string & task_class) {
    for (const auto & a : assessments)
        if (a.candidate == name && a.task_class == task_class) return &a;
    return nullptr;
}

const RuleVerdict * first_problem_verdict(const Assessment & a) {
    const auto * v = a.first(Outcome::fail);
    return v != nullptr ? v : a.first(Outcome::insufficient);
}

std::string first_problem(const Assessment & a) {
    if (const auto * v = first_problem_verdict(a)) return v->rule + ": " + v->message;
    return a.complete ? "passes" : "not fully measured";
}

std::string numbers_of(const Assessment & a) {
    std::string numbers;
    for (const auto & v : a.verdicts)
        if (v.rule == "R3-drop" || v.rule == "R2-floor" || v.rule == "R4-budget") numbers += (numbers.empty() ? "" : "; ") + v.message;
    return numbers;
}

}  // namespace

ClassDecision choose(const Policy & policy, const std::string & task_class, const std::vector<const Candidate *> & candidates,
                     const std::vector<Assessment> & assessments) {
    ClassDecision d{.task_class = task_class};
    const Candidate * original = nullptr;
    std::vector<const Candidate *> passing;
    // The variants assessed and not passing, mildest first: what ruled compression out.
    std::vector<std::pair<const Candidate *, const Assessment *>> failed_variants;
    bool variant_passes = false;
    for (const auto * c : candidates) {
        if (c->kind == CandidateKind::original) original = c;
        const auto * a = assessment_of(assessments, c->name, task_class);
        if (a == nullptr) continue;
        const bool passes = a->outcome == Outcome::pass && a->complete;
        if (passes) passing.push_back(c);
        if (c->kind == CandidateKind::variant) {
            variant_passes = variant_passes || passes;
            if (!passes && first_problem_verdict(*a) != nullptr) failed_variants.emplace_back(c, a);
        }
    }
    const Assessment * original_assessment = original ? assessment_of(assessments, original->name, task_class) : nullptr;

    if (passing.empty()) {
        d.flagged = true;
        d.rule = "none-passes";
        const Candidate * fallback = original;
        if (fallback == nullptr) {
            // No original to keep: the most accurate alternative on the class's first suite, as a stopgap.
            for (const auto * c : candidates)
                if (fallback == nullptr || (!c->suites.empty() && !fallback->suites.empty() && c->suites.front().accuracy > fallback->suites.front().accuracy)) fallback = c;
        }
        if (fallback == nullptr) {
            d.reason = "no candidate was measured for this class";
            return d;
        }
        d.action = fallback->kind == CandidateKind::original ? Action::keep : Action::switch_model;
        d.chosen = fallback->name;
        const auto * a = assessment_of(assessments, fallback->name, task_class);
        d.reason = "no candidate passes every rule; " + fallback->name + " stays as the least bad (" + (a ? first_problem(*a) : "not assessed") + ")";
        return d;
    }

    const auto pick = cheapest(policy, passing);
    const Candidate * chosen = pick.chosen;
    d.chosen = chosen->name;
    std::vector<const Candidate *> others;
    for (const auto * c : passing)
        if (c != chosen) others.push_back(c);
    if (chosen->kind != CandidateKind::original && original != nullptr) {
        d.backup = original->name;
    } else if (!others.empty()) {
        d.backup = cheapest(policy, others).chosen->name;
    }
    // Why no compression was chosen: the mildest variant's first problem (R2, R3 or R6, or too little evidence).
    const std::string ruled_out = failed_variants.empty() ? "" : first_problem_verdict(*failed_variants.front().second)->rule;
    const std::string compression = failed_variants.empty() ? ""
                                    : fmt::format("no compression passes ({}: {})", failed_variants.front().first->name, first_problem(*failed_variants.front().second));
    const std::string r7 = fmt::format("R7 among {} passing: {}", passing.size(), pick.decided_by);
    if (chosen->kind == CandidateKind::original) {
        d.action = Action::keep;
        d.rule = !variant_passes && !ruled_out.empty() ? ruled_out : "R7-cheapest";
        d.reason = (compression.empty() ? "the original passes and no cheaper candidate does" : compression + "; the original passes") + "; " + r7;
    } else if (chosen->kind == CandidateKind::variant) {
        d.action = Action::compress;
        d.rule = "R7-cheapest";
        const auto numbers = numbers_of(*assessment_of(assessments, chosen->name, task_class));
        d.reason = chosen->name + " passes" + (numbers.empty() ? "" : ": " + numbers) + "; " + r7;
    } else {
        d.action = Action::switch_model;
        const auto numbers = numbers_of(*assessment_of(assessments, chosen->name, task_class));
        if (original == nullptr) {
            d.rule = "R5-no-original";
        } else if (original_assessment != nullptr && original_assessment->outcome != Outcome::pass) {
            d.rule = first_problem_verdict(*original_assessment) ? first_problem_verdict(*original_assessment)->rule : "R7-cheapest";
        } else if (!variant_passes && !ruled_out.empty()) {
            d.rule = ruled_out;
        } else {
            d.rule = "R7-cheapest";
        }
        d.reason = chosen->name + " passes" + (numbers.empty() ? "" : ": " + numbers) + "; ";
        if (original_assessment != nullptr && original_assessment->outcome != Outcome::pass) d.reason += "the original: " + first_problem(*original_assessment) + "; ";
        if (!variant_passes && !compression.empty()) d.reason += compression + "; ";
        d.reason += r7;
    }
    return d;
}

}  // namespace switchyard::decide
