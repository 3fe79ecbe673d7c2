#include "decide/search.h"

#include "decide/cost_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

namespace switchyard::decide {

std::vector<std::vector<Candidate *>> ladders(std::vector<Candidate> & candidates) {
    std::map<std::string, std::vector<Candidate *>> by_method;
    std::vector<std::string> order;  // methods in the order their first variant comes
    for (auto & c : candidates) {
        if (c.kind != CandidateKind::variant || !c.skipped.empty()) continue;
        if (!by_method.count(c.ladder)) order.push_back(c.ladder);
        by_method[c.ladder].push_back(&c);
    }
    std::vector<std::vector<Candidate *>> out;
    for (const auto & method : order) {
        auto rungs = by_method.at(method);
        std::stable_sort(rungs.begin(), rungs.end(),
                         [](const Candidate * a, const Candidate * b) { return a->severity < b->severity; });
        out.push_back(std::move(rungs));
    }
    return out;
}

ClassContext class_context(std::vector<Candidate> & candidates, const std::vector<TaskRef> & tasks,
                           const std::string & task_class) {
    ClassContext context;
    const bool has_original = !candidates.empty() && candidates.front().kind == CandidateKind::original;
    context.original_serves = has_original && capable(candidates.front(), task_class, tasks);
    std::size_t families = context.original_serves ? ladders(candidates).size() : 0;
    for (const auto & c : candidates) families += c.kind == CandidateKind::alternative && capable(c, task_class, tasks);
    context.families = std::max<std::size_t>(1, families);
    for (const auto & t : tasks)
        if (t.task_class == task_class) context.suites.push_back(t.suite);
    return context;
}

namespace {

class Search {
public:
    Search(const Policy & policy, std::vector<Candidate> & candidates, const std::vector<TaskRef> & tasks,
           MeasurementSource & source, const SearchOptions & options)
        : policy_(policy), candidates_(candidates), tasks_(tasks), source_(source), options_(options) {}

    Decisions run(const std::vector<std::string> & classes) {
        const bool has_original = !candidates_.empty() && candidates_.front().kind == CandidateKind::original;
        // Each class's context is fixed before anything is measured for it, and kept for its verdict.
        std::vector<ClassContext> contexts;
        for (const auto & cls : classes) contexts.push_back(class_context(candidates_, tasks_, cls));
        // The original first on every class, until its own rules are decided: the reference for every
        // comparison (each candidate's looks then take it further where they need).
        if (has_original)
            for (std::size_t i = 0; i < classes.size(); ++i) measure(candidates_.front(), classes[i], contexts[i]);
        for (std::size_t i = 0; i < classes.size(); ++i) {
            const auto & cls = classes[i];
            const auto & context = contexts[i];
            // Also says how the suites are read: the reference along with the candidates, as far as
            // their looks need (a round that takes long has a line of its own).
            note(fmt::format(
                "{}: {} famil{} at {:.3g} each (alpha {} split by Bonferroni), {}{}", cls, context.families,
                context.families == 1 ? "y" : "ies", context.alpha_each(policy_), policy_.alpha,
                policy_.sequential ? fmt::format("read in rounds of {} items", kRoundItems) : "every item read",
                context.original_serves ? "" : ": no original serves it, so every suite is judged against the floor"));
            walk_ladders(cls, context);
            measure_what_could_win(cls, context);
        }
        if (has_original)
            for (std::size_t i = 0; i < classes.size(); ++i)
                explain_stops(candidates_.front(), classes[i], contexts[i]);
        for (std::size_t i = 0; i < classes.size(); ++i) decide(classes[i], contexts[i]);
        return std::move(decisions_);
    }

private:
    void note(const std::string & line) {
        if (options_.note) options_.note(line);
    }

    bool measured(const Candidate & c, const std::string & cls) const { return measured_.count({&c, cls}) > 0; }

    std::vector<const TaskRef *> suites_of(const std::string & cls) const {
        std::vector<const TaskRef *> out;
        for (const auto & t : tasks_)
            if (t.task_class == cls) out.push_back(&t);
        // Critical suites first: a candidate that fails one is not scored on the others.
        std::stable_sort(out.begin(), out.end(),
                         [](const TaskRef * a, const TaskRef * b) { return a->critical > b->critical; });
        return out;
    }

    static SuiteScore * score_of(Candidate & c, const std::string & suite) {
        for (auto & s : c.suites)
            if (s.suite == suite) return &s;
        return nullptr;
    }

    // Whether the suite needs no more of the candidate's items: all read, or every rule on it decided.
    bool settled(const Candidate & c, const TaskRef & t, const ClassContext & context) const {
        const auto * s = c.suite(t.suite);
        if (s == nullptr) return false;
        if (s->items() >= t.items) return true;
        for (const auto & v : suite_verdicts(policy_, c, t, context))
            if (v.outcome == Outcome::insufficient) return false;
        return true;
    }

    // Where the candidate's next look at the suite is: the first look point past what it has read.
    std::optional<std::size_t> next_point(const Candidate & c, const TaskRef & t) const {
        const std::size_t read = c.suite(t.suite) ? c.suite(t.suite)->items() : 0;
        const auto points = look_points(t.items, policy_.sequential);
        const auto next = std::upper_bound(points.begin(), points.end(), read);
        if (next == points.end()) return std::nullopt;
        return *next;
    }

    // The candidate's next look at the suite: its score on more of the suite's order, kept with the looks before.
    void look_further(Candidate & c, const TaskRef & t, std::size_t items) {
        auto score = source_.score(c, t, items);
        auto * existing = score_of(c, t.suite);
        add_look(score, existing != nullptr ? std::move(existing->looks) : std::vector<Look>{}, t.items);
        if (existing != nullptr) {
            *existing = std::move(score);
        } else {
            c.suites.push_back(std::move(score));
        }
    }

    // The original as far into the suite as a candidate's look needs (its looks one round at a time,
    // so its own tests see every look).
    void original_to(const TaskRef & t, std::size_t items) {
        auto & original = candidates_.front();
        while (original.suite(t.suite) == nullptr || original.suite(t.suite)->items() < items) {
            const auto next = next_point(original, t);
            if (!next) return;
            look_further(original, t, *next);
        }
    }

    // Scores the candidate on the class's suites in rounds: each round one more look at every suite
    // not yet settled, until all are, or until a rule fails (the candidate then fails the class, and
    // its other suites are not scored further).
    void measure(Candidate & c, const std::string & cls, const ClassContext & context) {
        if (c.kind == CandidateKind::drafted) return measure_drafted(c, cls);
        const auto started = std::chrono::steady_clock::now();
        const auto suites = suites_of(cls);
        // Each look is paired with the original's items: R3 where the original serves the class, and
        // where it cannot (R1), the note that says whether it scores measurably higher.
        const bool paired = c.kind != CandidateKind::original && !candidates_.empty() &&
            candidates_.front().kind == CandidateKind::original;
        std::string failed;
        for (bool advanced = true; advanced && failed.empty();) {
            advanced = false;
            for (const auto * t : suites) {
                const auto next = next_point(c, *t);
                if (!next || settled(c, *t, context)) continue;
                if (paired) original_to(*t, *next);
                look_further(c, *t, *next);
                advanced = true;
                for (const auto & v : suite_verdicts(policy_, c, *t, context))
                    if (v.outcome == Outcome::fail)
                        failed = fmt::format("{} failed on `{}`{}", v.rule, t->suite,
                                             v.items_read < v.items_available
                                                 ? fmt::format(" after {} of {} items", v.items_read, v.items_available)
                                                 : "");
                if (!failed.empty()) break;
            }
        }
        measured_.insert({&c, cls});
        if (!failed.empty()) failures_[{&c, cls}] = failed;
        if (c.kind == CandidateKind::original) return;
        explain_stops(c, cls, context);
        std::size_t read = 0, available = 0;
        for (const auto * t : suites) {
            available += t->items;
            if (const auto * s = c.suite(t->suite)) read += s->items();
        }
        note(fmt::format("tasks: {} on {} ({}): {} of {} items read in {:.1f} s{}", c.name, cls, to_string(c.kind),
                         read, available,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                         failed.empty() ? "" : ": " + failed));
    }

    // A drafted original is not scored: its suites are the original's (as far as the original has
    // read them), and what it must show is in its speed pass, which compares its greedy answers
    // with the original's (rule_same_answers) beside timing it.
    void measure_drafted(Candidate & c, const std::string & cls) {
        adopt_original_suites(c);
        measured_.insert({&c, cls});
        for (const auto * t : suites_of(cls))
            c.stopped[t->suite] = "not scored: the original's answers (a drafted original generates its tokens)";
        ensure_cost(c);
        note(fmt::format("tasks: {} on {} (drafted): the original's scores; {}", c.name, cls,
                         c.cost && c.cost->draft ? describe_draft(*c.cost->draft) : "its speed pass failed"));
    }

    void adopt_original_suites(Candidate & c) const {
        c.suites = candidates_.front().suites;
        for (auto & s : c.suites) s.vs_original.reset();
    }

    // Why each of the class's suites stopped where it did, for the report and decision.json. The
    // original goes as far as the candidates' looks take it, past where its own rules decided.
    void explain_stops(Candidate & c, const std::string & cls, const ClassContext & context) {
        const auto failure = failures_.find({&c, cls});
        const std::string failed = failure == failures_.end() ? "" : failure->second;
        for (const auto * t : suites_of(cls)) {
            const auto * s = c.suite(t->suite);
            std::string why;
            if (s == nullptr) {
                why = failed.empty() ? "not scored" : "not scored: " + failed + " first";
            } else if (s->items() >= t->items) {
                why = policy_.sequential ? fmt::format("every item ({} looks)", s->looks.size())
                                         : "every item (sequential: false)";
            } else if (c.kind == CandidateKind::original) {
                why = "as far as the candidates' looks needed";
            } else if (settled(c, *t, context)) {
                why = fmt::format("decided after {} of {} items", s->items(), t->items);
            } else {
                why = failed.empty() ? "not decided"
                                     : fmt::format("stopped after {} of {} items: {}", s->items(), t->items, failed);
            }
            c.stopped[t->suite] = why;
        }
    }

    // Without budgets: what the task runs alone say (budgets need the speed pass).
    Assessment accuracy_assessment(const Candidate & c, const std::string & cls, const ClassContext & context) const {
        Policy accuracy_only = policy_;
        accuracy_only.budgets = {};
        return assess(accuracy_only, c, cls, tasks_, context);
    }

    // Each ladder mild to aggressive, every rung at the family's level, until the first that does
    // not pass: fixed-sequence testing, whose error rate is the family's whatever the true drops
    // are. Bisection would measure less but claim more than its level allows (a pass found in the
    // middle rests on rungs below it that nothing tested), so it is not used.
    void walk_ladders(const std::string & cls, const ClassContext & context) {
        const auto all = ladders(candidates_);
        if (all.empty()) return;
        if (!context.original_serves) {
            for (const auto & ladder : all)
                for (auto * v : ladder)
                    v->not_run[cls] = "the original cannot serve this class (R1), and neither can a compression of it";
            return;
        }
        for (const auto & ladder : all) {
            std::size_t i = 0;
            for (; i < ladder.size(); ++i) {
                auto & c = *ladder[i];
                measure(c, cls, context);
                const auto a = accuracy_assessment(c, cls, context);
                if (a.outcome == Outcome::pass) continue;
                const auto * why = a.first(Outcome::fail) ? a.first(Outcome::fail) : a.first(Outcome::insufficient);
                note(fmt::format("{}: {} for {}: the {} ladder stops here", c.name,
                                 why ? why->id() : "not fully measured", cls, c.ladder));
                break;
            }
            for (std::size_t j = i + 1; j < ladder.size(); ++j)
                ladder[j]->not_run[cls] = fmt::format(
                    "not measured: the milder {} did not pass here, and testing a ladder in fixed sequence claims no rung beyond the first that does not",
                    ladder[i]->name);
            note(fmt::format("{}: the {} ladder passes {} of {} rung{}", cls, ladder.front()->ladder, i, ladder.size(),
                             ladder.size() == 1 ? "" : "s"));
        }
    }

    bool costs_matter() const { return options_.costs_matter; }

    void ensure_cost(Candidate & c) {
        if (c.cost || !costs_matter()) return;
        source_.measure_cost(c);
    }

    void ensure_cost_if_passing(Candidate & c, const std::string & cls, const ClassContext & context) {
        if (!c.cost && costs_matter() && accuracy_assessment(c, cls, context).outcome == Outcome::pass) ensure_cost(c);
    }

    // The candidates measured for the class that pass every rule, costs measured where they count.
    std::vector<const Candidate *> passing_for(const std::string & cls, const ClassContext & context) {
        std::vector<const Candidate *> out;
        for (auto & c : candidates_) {
            if (!c.skipped.empty() || !measured(c, cls)) continue;
            ensure_cost_if_passing(c, cls, context);
            const auto a = assess(policy_, c, cls, tasks_, context);
            if (a.outcome == Outcome::pass && a.complete) out.push_back(&c);
        }
        return out;
    }

    // Every candidate not yet measured for the class that could still change its choice: the
    // alternatives (the ladders were walked already). One is skipped only when it cannot pass (R1,
    // R4) or R7 would not choose it even if it passed; measuring one can change the answer, so the
    // rest are looked at again after each.
    void measure_what_could_win(const std::string & cls, const ClassContext & context) {
        std::vector<Candidate *> pool;
        for (auto & c : candidates_)
            if (c.skipped.empty() && !measured(c, cls) &&
                (c.kind == CandidateKind::alternative ||
                 (c.kind == CandidateKind::drafted && drafted_could_pass(c, cls, context))))
                pool.push_back(&c);
        std::stable_sort(pool.begin(), pool.end(),
                         [](const Candidate * a, const Candidate * b) { return a->file_bytes < b->file_bytes; });
        for (bool any = true; any;) {
            any = false;
            const auto passing = passing_for(cls, context);
            for (auto * c : pool) {
                if (measured(*c, cls)) continue;
                if (!capable(*c, cls, tasks_)) {
                    c->not_run[cls] = "lacks a capability the class needs (R1), so it cannot pass";
                    continue;
                }
                // A drafted original's tasks cost nothing (they are the original's) and its speed pass
                // is its whole measurement: once timed, it is judged, never left "not run".
                if (c->kind == CandidateKind::drafted) {
                    measure(*c, cls, context);
                    any = true;
                    break;
                }
                if (!passing.empty()) ensure_cost(*c);
                if (const auto why = cannot_change_choice(policy_, passing, *c)) {
                    c->not_run[cls] = *why;
                    continue;
                }
                c->not_run.erase(cls);
                note(fmt::format("{}: {} could change the choice for {}: measuring it", cls, c->name, cls));
                measure(*c, cls, context);
                any = true;
                break;
            }
        }
        for (auto * c : pool)
            if (c->not_run.count(cls)) note(fmt::format("{}: {} not measured: {}", cls, c->name, c->not_run.at(cls)));
    }

    // Whether a drafted original could pass the class; if not, why is left in its not_run. It
    // answers as the original does, so it cannot pass where the original's accuracy fails, and it
    // changes only speed and cost, which a plan without a budget or a price does not judge.
    bool drafted_could_pass(Candidate & c, const std::string & cls, const ClassContext & context) {
        const auto & original = candidates_.front();
        if (!context.original_serves) {
            c.not_run[cls] = "the original cannot serve this class (R1), and it gives the original's answers";
        } else if (!costs_matter()) {
            c.not_run[cls] =
                "no budget and no price_per_hour: a draft changes only speed and cost, which this plan does not judge";
        } else if (const auto a = accuracy_assessment(original, cls, context); a.outcome != Outcome::pass) {
            const auto * why = a.first(Outcome::fail) ? a.first(Outcome::fail) : a.first(Outcome::insufficient);
            c.not_run[cls] = fmt::format("the original does not pass here ({}), and a drafted original gives its answers",
                                         why ? why->id() : "not fully measured");
        } else {
            return true;
        }
        return false;
    }

    // Assesses every candidate measured for the class and picks.
    void decide(const std::string & cls, const ClassContext & context) {
        std::vector<const Candidate *> considered;
        for (auto & c : candidates_) {
            if (!c.skipped.empty() || !measured(c, cls)) continue;
            // The original may have read further since (for later candidates' looks).
            if (c.kind == CandidateKind::drafted) adopt_original_suites(c);
            ensure_cost_if_passing(c, cls, context);
            considered.push_back(&c);
            decisions_.assessments.push_back(assess(policy_, c, cls, tasks_, context));
        }
        decisions_.decisions.push_back(choose(policy_, cls, considered, decisions_.assessments, context));
    }

    const Policy & policy_;
    std::vector<Candidate> & candidates_;
    const std::vector<TaskRef> & tasks_;
    MeasurementSource & source_;
    const SearchOptions & options_;
    Decisions decisions_;
    std::set<std::pair<const Candidate *, std::string>> measured_;  // (candidate, class) measured
    std::map<std::pair<const Candidate *, std::string>, std::string>
        failures_;  // (candidate, class) -> the rule that failed first
};

}  // namespace

Decisions search_and_decide(const Policy & policy, std::vector<Candidate> & candidates,
                            const std::vector<TaskRef> & tasks, const std::vector<std::string> & classes,
                            MeasurementSource & source, const SearchOptions & options) {
    return Search(policy, candidates, tasks, source, options).run(classes);
}

}  // namespace switchyard::decide
