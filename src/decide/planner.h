// `switchyard plan`: builds the variants, measures every candidate as little as the decision
// needs (cheap signals first, results store reused), applies the rules per class of tasks, and
// proposes the portfolio.
#pragma once

#include "decide/decision.h"
#include "decide/measure.h"
#include "decide/plan_file.h"
#include "model/portfolio.h"

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace switchyard::decide {

struct PlanRunOptions {
    std::filesystem::path out_dir = "switchyard-out";
    std::filesystem::path results;  // the results store
    int threads = 0;
    bool progress = true;
    std::function<void(const std::string & line)> log;  // one line per step taken
};

// What the search did: how much it ran, how much it reused (the counts it inherits), against how
// much it could have run.
struct SearchStats : MeasureCounts {
    std::size_t candidates = 0;
    std::size_t suite_runs_possible = 0;  // every candidate on every suite
    std::size_t items_read =
        0;  // over the suite runs: the items the verdicts read (each run's prefix of its suite's order)
    std::size_t items_available = 0;  // the items those suites hold: what reading every item would read
    std::size_t variants_built = 0;
    std::size_t variants_reused = 0;
    std::vector<WorkerStats> workers;  // plan workers, when the plan has them
    std::size_t worker_runs_not_needed =
        0;  // candidates' suites workers measured ahead that the search never asked for
    double seconds = 0;
};

struct PlanResult {
    Plan plan;
    std::vector<Candidate> candidates;  // original first, then variants mild to aggressive, then alternatives
    std::vector<TaskRef> tasks;
    std::vector<std::string> classes;  // in the order the tasks name them
    std::vector<Assessment> assessments;
    std::vector<ClassDecision> decisions;
    model::Portfolio portfolio;
    SearchStats stats;
    std::vector<std::string> steps;  // what was done, in order, for the report
};

PlanResult run_plan(const Plan & plan, const PlanRunOptions & options);

// A candidate's or class's name as the portfolio writes it (a model or route name serve accepts).
std::string portfolio_name(const std::string & name);

}  // namespace switchyard::decide
