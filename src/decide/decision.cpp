#include "decide/decision.h"

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

Assessment assess(const Policy & policy, const Candidate & c, const std::string & task_class, const std::vector<TaskRef> & tasks, bool judge_drop) {
    Assessment a{.candidate = c.name, .task_class = task_class, .complete = true};
    for (const auto & t : tasks) {
        if (t.task_class != task_class) continue;
        if (!t.needs.empty()) a.verdicts.push_back(rule_capability(t.suite, t.needs, c.capabilities, c.context_length));
        const auto * s = c.suite(t.suite);
        if (s == nullptr) {
            a.complete = false;
            continue;
        }
        if (t.critical) a.verdicts.push_back(rule_floor(policy, *s));
        if (c.kind != CandidateKind::original && judge_drop) a.verdicts.push_back(rule_drop(policy, *s));
    }
    if (policy.min_agreement && c.kind != CandidateKind::original) a.verdicts.push_back(rule_agreement(policy, c.same_vocabulary ? c.drift : std::nullopt));
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

bool cheaper(const Policy & policy, const Candidate & a, const Candidate & b) {
    if (policy.deployment.price_per_hour > 0 && a.cost && b.cost && a.cost->cost_per_1k_tokens > 0 && b.cost->cost_per_1k_tokens > 0) {
        const double ca = a.cost->cost_per_1k_tokens;
        const double cb = b.cost->cost_per_1k_tokens;
        if (std::max(ca, cb) > 1.1 * std::min(ca, cb)) return ca < cb;
    }
    // A served model has no file here: its size says nothing of its cost, so it ranks last by size.
    if (a.remote() != b.remote()) return b.remote();
    return a.file_bytes < b.file_bytes;
}

namespace {

const Assessment * assessment_of(const std::vector<Assessment> & assessments, const std::string & name, const std::string & task_class) {
    for (const auto & a : assessments)
        if (a.candidate == name && a.task_class == task_class) return &a;
    return nullptr;
}

std::string first_problem(const Assessment & a) {
    const auto * v = a.first(Outcome::fail);
    if (v == nullptr) v = a.first(Outcome::insufficient);
    if (v != nullptr) return v->rule + ": " + v->message;
    return a.complete ? "passes" : "not fully measured";
}

}  // namespace

ClassDecision choose(const Policy & policy, const std::string & task_class, const std::vector<const Candidate *> & candidates,
                     const std::vector<Assessment> & assessments) {
    ClassDecision d{.task_class = task_class};
    const Candidate * original = nullptr;
    std::vector<const Candidate *> passing;
    for (const auto * c : candidates) {
        if (c->kind == CandidateKind::original) original = c;
        const auto * a = assessment_of(assessments, c->name, task_class);
        if (a != nullptr && a->outcome == Outcome::pass && a->complete) passing.push_back(c);
    }
    std::stable_sort(passing.begin(), passing.end(), [&](const Candidate * a, const Candidate * b) { return cheaper(policy, *a, *b); });

    const Assessment * original_assessment = original ? assessment_of(assessments, original->name, task_class) : nullptr;
    // Which rule ruled out the models the team would rather keep: the original's own failure, else the variants'.
    auto settling_rule = [&]() -> std::string {
        if (original == nullptr) return "R5-no-original";
        if (original_assessment != nullptr && original_assessment->outcome == Outcome::fail) return original_assessment->first(Outcome::fail)->rule;
        for (const auto * c : candidates) {
            if (c->kind != CandidateKind::variant) continue;
            const auto * a = assessment_of(assessments, c->name, task_class);
            if (a != nullptr && a->first(Outcome::fail) != nullptr) return a->first(Outcome::fail)->rule;
        }
        return "R7-cheapest";
    };

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

    const Candidate * chosen = passing.front();
    d.chosen = chosen->name;
    if (chosen->kind == CandidateKind::original) {
        d.action = Action::keep;
        d.rule = settling_rule();
        d.reason = "the original passes and no cheaper candidate does";
        for (const auto * c : candidates) {
            const auto * a = assessment_of(assessments, c->name, task_class);
            if (c->kind == CandidateKind::variant && a != nullptr && a->outcome != Outcome::pass) {
                d.reason += " (" + c->name + ": " + first_problem(*a) + ")";
                break;
            }
        }
        if (passing.size() > 1) d.backup = passing[1]->name;
    } else {
        d.action = chosen->kind == CandidateKind::variant ? Action::compress : Action::switch_model;
        d.rule = chosen->kind == CandidateKind::variant ? "R7-cheapest" : settling_rule();
        const auto * a = assessment_of(assessments, chosen->name, task_class);
        std::string numbers;
        for (const auto & v : a->verdicts)
            if (v.rule == "R3-drop" || v.rule == "R2-floor" || v.rule == "R4-budget") numbers += (numbers.empty() ? "" : "; ") + v.message;
        d.reason = fmt::format("{} is the cheapest of {} passing candidate{} ({:.2f} MiB{}){}", chosen->name, passing.size(), passing.size() == 1 ? "" : "s",
                               chosen->file_bytes / (1024.0 * 1024.0),
                               chosen->cost && chosen->cost->cost_per_1k_tokens > 0 ? fmt::format(", {:.3g}/1k tokens", chosen->cost->cost_per_1k_tokens) : "",
                               numbers.empty() ? "" : ": " + numbers);
        if (chosen->kind == CandidateKind::alternative && original_assessment != nullptr && original_assessment->outcome != Outcome::pass)
            d.reason += "; the original: " + first_problem(*original_assessment);
        if (original != nullptr) {
            d.backup = original->name;
        } else if (passing.size() > 1) {
            d.backup = passing[1]->name;
        }
    }
    return d;
}

}  // namespace switchyard::decide
