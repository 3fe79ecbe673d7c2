#include "decide/search.h"

#include "decide/cost_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

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
        std::stable_sort(rungs.begin(), rungs.end(), [](const Candidate * a, const Candidate * b) { return a->severity < b->severity; });
        out.push_back(std::move(rungs));
    }
    return out;
}

bool measured_for(const Candidate & c, const std::vector<TaskRef> & tasks, const std::string & task_class) {
    for (const auto & t : tasks)
        if (t.task_class == task_class && c.suite(t.suite) == nullptr) return false;
    return true;
}

ClassContext class_context(std::vector<Candidate> & candidates, const std::vector<TaskRef> & tasks, const std::string & task_class) {
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
    Search(const Policy & policy, std::vector<Candidate> & candidates, const std::vector<TaskRef> & tasks, MeasurementSource & source,
           const SearchOptions & options)
        : policy_(policy), candidates_(candidates), tasks_(tasks), source_(source), options_(options) {}

    Decisions run(const std::vector<std::string> & classes) {
        const bool has_original = !candidates_.empty() && candidates_.front().kind == CandidateKind::original;
        // The original first on every class: the reference for every comparison.
        if (has_original)
            for (const auto & cls : classes) source_.evaluate(candidates_.front(), cls);
        // Each class's context is fixed before anything is measured for it, and kept for its verdict.
        std::vector<ClassContext> contexts;
        for (const auto & cls : classes) {
            const auto & context = contexts.emplace_back(class_context(candidates_, tasks_, cls));
            note(fmt::format("{}: {} famil{} at {:.3g} each (alpha {} split by Bonferroni){}", cls, context.families, context.families == 1 ? "y" : "ies",
                             context.alpha_each(policy_), policy_.alpha,
                             context.original_serves ? "" : ": no original serves it, so every suite is judged against the floor"));
            walk_ladders(cls, context);
            measure_what_could_win(cls, context);
        }
        for (std::size_t i = 0; i < classes.size(); ++i) decide(classes[i], contexts[i]);
        return std::move(decisions_);
    }

private:
    void note(const std::string & line) {
        if (options_.note) options_.note(line);
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
                for (auto * v : ladder) v->not_run[cls] = "the original cannot serve this class (R1), and neither can a compression of it";
            return;
        }
        for (const auto & ladder : all) {
            std::size_t i = 0;
            for (; i < ladder.size(); ++i) {
                auto & c = *ladder[i];
                source_.evaluate(c, cls);
                const auto a = accuracy_assessment(c, cls, context);
                if (a.outcome == Outcome::pass) continue;
                const auto * why = a.first(Outcome::fail) ? a.first(Outcome::fail) : a.first(Outcome::insufficient);
                note(fmt::format("{}: {} for {}: the {} ladder stops here", c.name, why ? why->id() : "not fully measured", cls, c.ladder));
                break;
            }
            for (std::size_t j = i + 1; j < ladder.size(); ++j)
                ladder[j]->not_run[cls] = fmt::format(
                    "not measured: the milder {} did not pass here, and testing a ladder in fixed sequence claims no rung beyond the first that does not", ladder[i]->name);
            note(fmt::format("{}: the {} ladder passes {} of {} rung{}", cls, ladder.front()->ladder, i, ladder.size(), ladder.size() == 1 ? "" : "s"));
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
            if (!c.skipped.empty() || !measured_for(c, tasks_, cls)) continue;
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
            if (c.skipped.empty() && c.kind == CandidateKind::alternative && !measured_for(c, tasks_, cls)) pool.push_back(&c);
        std::stable_sort(pool.begin(), pool.end(), [](const Candidate * a, const Candidate * b) { return a->file_bytes < b->file_bytes; });
        for (bool measured = true; measured;) {
            measured = false;
            const auto passing = passing_for(cls, context);
            for (auto * c : pool) {
                if (measured_for(*c, tasks_, cls)) continue;
                if (!capable(*c, cls, tasks_)) {
                    c->not_run[cls] = "lacks a capability the class needs (R1), so it cannot pass";
                    continue;
                }
                if (!passing.empty()) ensure_cost(*c);
                if (const auto why = cannot_change_choice(policy_, passing, *c)) {
                    c->not_run[cls] = *why;
                    continue;
                }
                c->not_run.erase(cls);
                note(fmt::format("{}: {} could change the choice for {}: measuring it", cls, c->name, cls));
                source_.evaluate(*c, cls);
                measured = true;
                break;
            }
        }
        for (auto * c : pool)
            if (c->not_run.count(cls)) note(fmt::format("{}: {} not measured: {}", cls, c->name, c->not_run.at(cls)));
    }

    // Assesses every candidate measured for the class and picks.
    void decide(const std::string & cls, const ClassContext & context) {
        std::vector<const Candidate *> considered;
        for (auto & c : candidates_) {
            if (!c.skipped.empty() || !measured_for(c, tasks_, cls)) continue;
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
};

}  // namespace

Decisions search_and_decide(const Policy & policy, std::vector<Candidate> & candidates, const std::vector<TaskRef> & tasks,
                            const std::vector<std::string> & classes, MeasurementSource & source, const SearchOptions & options) {
    return Search(policy, candidates, tasks, source, options).run(classes);
}

}  // namespace switchyard::decide
