// Candidates, their assessment against the rules for each class of tasks, and the choice per class.
#pragma once

#include "decide/plan.h"
#include "decide/rules.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

enum class CandidateKind { original, variant, alternative };
const char * to_string(CandidateKind kind);

// A model the plan considered, with what was measured of it (absent: not measured).
struct Candidate {
    std::string name;
    CandidateKind kind = CandidateKind::variant;
    std::filesystem::path path;
    ModelRef served;  // set (endpoint non-empty) for a model measured through its server
    std::string description;  // how it was made: "Q4_0 with an importance matrix", "stories260K as given"
    std::vector<std::string> capabilities;
    int context_length = 0;
    std::uint64_t file_bytes = 0;
    double bits_per_weight = 0;
    std::uint64_t parameters = 0;
    bool same_vocabulary = false;  // as the original: drift (KLD, agreement) is measurable

    std::optional<DriftScore> drift;
    std::vector<SuiteScore> suites;
    std::optional<CostScore> cost;
    std::string skipped;  // why it was not evaluated at all (a duplicate, screened out); empty when it was
    std::map<std::string, std::string> not_run;  // class -> why its tasks were not run for that class

    const SuiteScore * suite(const std::string & name) const;
    bool remote() const { return !served.endpoint.empty(); }
};

// A suite as the decision sees it: its class of traffic, whether it is critical, what it needs.
struct TaskRef {
    std::string suite;
    std::string task_class;
    bool critical = false;
    std::string needs;  // "vision", "audio", "code", "context:N"
};

// One candidate judged for one class: every rule that applied, and the overall outcome.
struct Assessment {
    std::string candidate;
    std::string task_class;
    Outcome outcome = Outcome::pass;
    std::vector<RuleVerdict> verdicts;
    bool complete = false;  // every suite of the class was measured (and costs, when budgets are set)
    const RuleVerdict * first(Outcome outcome) const;
};

// What a class's verdicts are judged against.
struct ClassContext {
    // An original exists and can serve the class (R1): R3 (its accuracy to keep) and R6 (its answers
    // to stay consistent with) apply. Elsewhere (R1, R5) there is nothing of the original's to keep.
    bool original_serves = false;
    // Comparisons with the original the class's verdict may rest on (its suites x the variants and
    // alternatives that can be run for it): R3's Bonferroni correction.
    std::size_t comparisons = 1;
};

// Applies R1, R2, R3, R4 and R6 to what was measured of the candidate for the class's tasks.
Assessment assess(const Policy & policy, const Candidate & candidate, const std::string & task_class, const std::vector<TaskRef> & tasks,
                  const ClassContext & context);

// Whether the candidate has every capability the class's tasks require (R1).
bool capable(const Candidate & candidate, const std::string & task_class, const std::vector<TaskRef> & tasks);

enum class Action { keep, compress, switch_model };
const char * to_string(Action action);

struct ClassDecision {
    std::string task_class;
    Action action = Action::keep;
    std::string chosen;
    std::string backup;    // serves when the chosen model fails; empty when there is none
    std::string rule;      // the rule that settled it
    std::string reason;    // one line with the numbers
    bool flagged = false;  // no candidate passed every rule: a person should look
};

// R7 (and R5 with no original): the cheapest candidate that passes, the original as backup.
// `candidates` and `assessments` hold only what was considered for this class.
ClassDecision choose(const Policy & policy, const std::string & task_class, const std::vector<const Candidate *> & candidates,
                     const std::vector<Assessment> & assessments);

}  // namespace switchyard::decide
