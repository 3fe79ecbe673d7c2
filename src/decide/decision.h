// Candidates, their assessment against the rules for each class of tasks, and the choice per class.
#pragma once

#include "decide/plan_file.h"
#include "decide/rules.h"

#include "model/kv_cache.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

// `drafted`: the original generating with a draft model's proposals (speculative decoding), which
// its own sampler accepts or replaces: the original's answers, judged on speed and cost.
enum class CandidateKind { original, variant, alternative, drafted };
const char * to_string(CandidateKind kind);

// The draft a drafted original generates with.
struct Draft {
    std::string name;  // the draft model: a variant's or alternative's name, or its file's stem
    std::filesystem::path path;
    std::uint64_t file_bytes = 0;
    int max_tokens = 8;  // tokens drafted per step at most
};

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
    model::KvCacheTypes kv_cache;  // served with this KV cache (a plan variant's `kv:`)
    // A variant's method ladder ("Q+imatrix", "prune:magnitude/unstructured+Q8_0", "mix", ...) and
    // its place on it (larger: more compressed); the search tests one ladder mild to aggressive.
    std::string ladder;
    double severity = 0;
    std::optional<Draft> draft;  // set for a drafted original (its path is the original's)

    std::optional<DriftScore> drift;
    std::vector<SuiteScore> suites;
    std::optional<CostScore> cost;
    std::string skipped;  // why it was not evaluated at all (a duplicate, screened out); empty when it was
    std::map<std::string, std::string> not_run;  // class -> why its tasks were not run for that class
    std::map<std::string, std::string>
        stopped;  // suite -> why its scoring stopped where it did (every suite the search scored or left)

    const SuiteScore * suite(const std::string & name) const;
    bool remote() const { return !served.endpoint.empty(); }
};

// A suite as the decision sees it: its class of traffic, whether it is critical, what it needs.
struct TaskRef {
    std::string suite;
    std::string task_class;
    bool critical = false;
    std::string needs;  // "vision", "audio", "code", "context:N"
    std::size_t items = 0;  // items the suite holds: a sequential run's looks are shares of it
    std::uint64_t order_seed = 0;  // what seeded the suite's item order (eval::item_order)
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
    // to stay consistent with) apply, and R2 on critical suites. Elsewhere (R1, R5) there is nothing
    // of the original's to keep, and every suite is judged against the floor.
    bool original_serves = false;
    // The families the class's error rate is split over, fixed before anything is measured: one per
    // method ladder that can run for the class (tested in fixed sequence, mild to aggressive, at
    // the family's full share) and one per alternative that can serve it (Bonferroni across them).
    std::size_t families = 1;
    // Each candidate's tests (R2, R3, R6; every suite at this level: a candidate passes only if
    // every suite does, an intersection-union test that needs no correction over suites).
    std::vector<std::string> suites;  // the class's suites
    double alpha_each(const Policy & policy) const {
        return policy.alpha / static_cast<double>(families == 0 ? 1 : families);
    }
};

// R2 and R3 on one suite the candidate has a score for: R2 where the suite is critical or no original
// serves the class, R3 against the original where one serves it.
std::vector<RuleVerdict> suite_verdicts(const Policy & policy, const Candidate & candidate, const TaskRef & task,
                                        const ClassContext & context);

// R3 for a drafted original, which is not scored on the suites (it gives the original's answers):
// its greedy answers in the speed pass must be the original's. Passes when every answer compared
// was identical, fails on any difference; nullopt until its speed pass has run.
std::optional<RuleVerdict> rule_same_answers(const Candidate & drafted);

// Applies R1, R2, R3, R4 and R6 to what was measured of the candidate for the class's tasks.
Assessment assess(const Policy & policy, const Candidate & candidate, const std::string & task_class,
                  const std::vector<TaskRef> & tasks, const ClassContext & context);

// Whether the candidate has every capability the class's tasks require (R1).
bool capable(const Candidate & candidate, const std::string & task_class, const std::vector<TaskRef> & tasks);

enum class Action { keep, compress, switch_model };
const char * to_string(Action action);

struct ClassDecision {
    std::string task_class;
    Action action = Action::keep;
    std::string chosen;
    std::string backup;  // serves when the chosen model fails; empty when there is none
    std::string rule;  // the rule that settled it
    std::string reason;  // one line with the numbers
    bool flagged =
        false;  // no candidate passed every rule, or the verdict rests on insufficient evidence: a person should look
    std::string guarantee;  // the statistical claim the verdict makes, with its error rate
    std::string draft;  // the chosen model is the original drafted by this one: "keep ORIGINAL, drafted by DRAFT"
};

// R7 (and R5 with no original): the cheapest candidate that passes, the original as backup.
// `candidates` and `assessments` hold only what was considered for this class.
ClassDecision choose(const Policy & policy, const std::string & task_class,
                     const std::vector<const Candidate *> & candidates, const std::vector<Assessment> & assessments,
                     const ClassContext & context);

}  // namespace switchyard::decide
