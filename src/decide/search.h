// The search and the decision per class of tasks, over a measurement layer it asks for numbers:
// which candidates to measure (each method's ladder in fixed sequence, then whatever could still
// win), the assessments, and the choice. Models, files and the results store stay behind
// MeasurementSource, so tests and the simulation run this same code on scripted numbers.
#pragma once

#include "decide/decision.h"

#include <functional>
#include <string>
#include <vector>

namespace switchyard::decide {

// What the search asks the measurement layer for.
class MeasurementSource {
public:
    virtual ~MeasurementSource() = default;
    // The candidate's score on the first `items` items of the suite's fixed order (of `task.items`),
    // `vs_original` set on the same items for every model but the original. The search asks for the
    // original's items before anyone else's and for each model's in increasing counts, so items
    // scored before are read back, never scored again.
    virtual SuiteScore score(const Candidate & candidate, const TaskRef & task, std::size_t items) = 0;
    // Measures what serving the candidate costs (Candidate::cost).
    virtual void measure_cost(Candidate & candidate) = 0;
};

// The variants of each method ladder, mild to aggressive (screened-out and duplicate ones left
// out: the screen reads other text than the tasks, so leaving them out spends no error rate).
std::vector<std::vector<Candidate *>> ladders(std::vector<Candidate> & candidates);

// The class's context, fixed before anything is measured for it: whether the original serves it,
// and the families its error rate is split over (ladders that can run, alternatives that can serve).
ClassContext class_context(std::vector<Candidate> & candidates, const std::vector<TaskRef> & tasks,
                           const std::string & task_class);

struct Decisions {
    std::vector<Assessment> assessments;
    std::vector<ClassDecision> decisions;
};

struct SearchOptions {
    bool costs_matter = false;  // a price or a budget is set: passing candidates need their cost measured
    std::function<void(const std::string & line)> note;  // one line per step taken
};

// Per class: the original first (the reference), each ladder of variants mild to aggressive until
// its first rung that does not pass (fixed-sequence testing claims nothing beyond it), then every
// candidate that could still change the choice (cost_rules.h: cannot_change_choice), then the
// assessments and the choice. Each candidate's suites are scored in rounds (look_points), and a
// suite stops at the first look that decides its rules, every suite of the candidate at its first
// failing rule; the original is scored as far as the candidates' looks need. `candidates` holds the
// original first when there is one; what was not measured for a class, and why, is left in
// Candidate::not_run, and where each suite's scoring stopped, and why, in Candidate::stopped.
Decisions search_and_decide(const Policy & policy, std::vector<Candidate> & candidates,
                            const std::vector<TaskRef> & tasks, const std::vector<std::string> & classes,
                            MeasurementSource & source, const SearchOptions & options);

}  // namespace switchyard::decide
