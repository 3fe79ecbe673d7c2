// The decision rules (DESIGN.md, "The rules the decision engine starts from"), each a pure
// function of measurements, so every verdict names its rule and the numbers behind it.
#pragma once

#include "decide/costs.h"
#include "eval/run_suite.h"
#include "stats/intervals.h"
#include "stats/noninferiority.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

struct Policy {
    double accuracy_floor = 0.80;  // on critical tasks (rule 2)
    double max_drop = 0.10;  // versus the original (rule 3)
    bool drop_relative = true;  // drop as a share of the original's accuracy, else in points
    // The verdict's error rate: the chance that a recommended model in fact drops more than max_drop
    // (or, where there is no original to keep, falls under the floor) on some suite of its class.
    double alpha = 0.05;
    std::optional<double> min_agreement;  // top-1 agreement with the original (rule 6)
    double screen_max_kld = 1.0;  // cheap signal: mean KLD (nats) above this is hopeless
    // Score each suite in rounds and stop a candidate's suite at the first look that decides its
    // rules (group-sequential tests, same alpha); false: every item, one look (`plan --full`).
    bool sequential = true;
    Budgets budgets;
    Hardware deployment;
};

// What one look at a suite saw: the first `items` items of the suite's fixed order.
struct Look {
    std::size_t items = 0;  // of the suite's order, scored or not
    std::size_t n = 0;  // scored
    std::size_t correct = 0;  // of those
    std::size_t excluded = 0;  // could not be scored (counted wrong by R2)
    std::optional<stats::PairedCounts> paired;  // R3's cells against the original on the same items
    std::size_t unscored = 0;  // of the paired cells: items the original scored and this model could not
    std::size_t base_excluded = 0;  // items the original could not score, left out of the pairs
    double mcnemar_p = 1.0;
};

// A sequential plan looks at a suite of `items` items after every round of kRoundItems and at its
// end (a last round under half a round joins the one before), each look's tests at their nominal
// level (look_levels); with `sequential` false, once, at the end.
constexpr std::size_t kRoundItems = 100;
std::vector<std::size_t> look_points(std::size_t items, bool sequential);

// The spending of alpha over a suite's looks: alpha * t^kSpendingRho at information fraction t
// (stats/group_sequential.h), so the last look stays close to a fixed test's level.
constexpr double kSpendingRho = 3.0;

// One suite's result for one candidate; `vs_original` is absent for the original itself.
struct SuiteScore {
    std::string suite;
    bool critical = false;
    std::size_t n = 0;  // items scored
    std::size_t correct = 0;  // of those
    std::size_t excluded = 0;  // items it could not score (unencodable, too long for its context)
    double accuracy = 0;  // on the items it scored
    stats::Interval ci95{0, 1};
    std::optional<eval::PairedComparison> vs_original;  // on the items both scored
    std::size_t available = 0;  // items the suite holds (0: as many as this score covers: a suite read whole)
    std::vector<Look> looks;  // a sequential run's looks, in order, the last this score's; empty: one look, this score
    // Accuracy as the rules count it: an item the model could not score is an item it got wrong.
    std::size_t items() const { return n + excluded; }
    double accuracy_counted() const { return items() > 0 ? static_cast<double>(correct) / items() : 0.0; }
    std::size_t items_available() const { return available > 0 ? available : items(); }
};

// The look a score is now: its counts and its cells against the original.
Look look_of(const SuiteScore & score);
// Makes `score` (the newest look at a suite of `available` items) carry the looks before it and its own.
void add_look(SuiteScore & score, std::vector<Look> before, std::size_t available);
// The nominal one-sided level of each of the score's looks (every look, or the one look it is) when
// the suite's tests are at `alpha` over all of them.
std::vector<double> look_levels(const SuiteScore & score, double alpha);

// A suite's result as the rules see it, paired with the original's result on the same suite
// (absent for the original itself); the planner, tests and the simulation all make it here.
SuiteScore suite_score(const std::string & suite, bool critical, const eval::SuiteResult & result,
                       const eval::SuiteResult * original, bool bootstrap = true);

// The paired cells R3 judges: the items the original scored, an item the other model could not
// score counted as wrong for it (else a model that cannot read the hard items looks better).
stats::PairedCounts paired_counts(const eval::PairedComparison & comparison);

struct DriftScore {
    double kld_mean = 0;
    double kld_p99 = 0;
    double top1_agreement = 0;
    double ppl_ratio = 0;
    std::size_t positions = 0;  // predictions compared (0 in results recorded before it was kept)
};

// The one JSON form of each measurement: the results store, decision.json and the report alike.
void to_json(nlohmann::json & out, const SuiteScore & score);
void to_json(nlohmann::json & out, const DriftScore & drift);
void from_json(const nlohmann::json & in, DriftScore & drift);

enum class Outcome { pass, fail, insufficient };
const char * to_string(Outcome outcome);

// R3's numbers as the verdict used them, so the report can list them without reparsing the message.
struct DropEvidence {
    std::string suite;
    double drop = 0;  // relative or in points, as the policy says
    stats::Interval ci{0, 0};  // each bound one-sided at `alpha`
    double alpha = 0.05;  // the candidate's share of the class's error rate
    std::size_t n = 0;  // items paired (the other model's unscored ones counted wrong)
    std::size_t unscored = 0;  // of those, items the original scored and this model could not
};

struct RuleVerdict {
    std::string rule;  // "R1-capability", "R2-floor", "R3-drop", "R4-budget", "R6-agreement", "screen"
    Outcome outcome = Outcome::pass;
    // The rule and outcome in one id for decision.json: `rule` itself, or "R3-insufficient" (R2, R6
    // likewise) when the evidence decides neither way, so it never reads as a failure.
    std::string id() const;
    std::string message;  // the numbers behind it, in one line
    std::size_t items_needed = 0;  // with `insufficient`: items that would likely settle it
    std::optional<DropEvidence> drop;  // R3 with items both scored
    // R2 and R3: the look that gave the verdict (the first that decided, else the last) and the
    // suite's size, so a reader sees how much of the suite the verdict read.
    std::size_t look = 0;
    std::size_t looks = 1;
    std::size_t items_read = 0;
    std::size_t items_available = 0;
};

// R1: `needs` is "vision", "audio", "code" or "context:N"; `capabilities` what the model has.
RuleVerdict rule_capability(const std::string & suite, const std::string & needs,
                            const std::vector<std::string> & capabilities, int context_length);
// R2 and R3 are judged at each of the score's looks in order, each at its nominal level
// (look_levels): the verdict is the first look's that decides, else the last look's, so a test
// repeated as items come in errs no more often than one test at the end (at `alpha`).
//
// R2: accuracy (an item the model could not score counted wrong) against the floor, one-sided at
// `alpha` each way with Clopper-Pearson bounds: passes when the lower bound reaches the floor, fails
// when the upper bound is under it, else `insufficient`. A suite of which no item could be scored
// is `insufficient` ("not measurable"), never an accuracy of 0.
RuleVerdict rule_floor(const Policy & policy, const SuiteScore & score, double alpha);
// R3, a one-sided test of the limit on the items the original scored (paired_counts): passes when
// the data reject "the drop is max_drop or more" at `alpha` (a score test: stats/noninferiority.h),
// fails when they reject "the drop is max_drop or less", and is otherwise `insufficient` with the
// items that would likely settle it. The relative drop is tested as (1 - max_drop) * p_original -
// p_candidate directly, so the original's own error counts. McNemar's p and the flips are evidence.
RuleVerdict rule_drop(const Policy & policy, const SuiteScore & score, double alpha);
// R6: top-1 agreement with the original on the screen's positions, one-sided at `alpha` each way
// like R2; a model with another vocabulary cannot be judged by it. Applies only where an original
// can serve the class (assess() leaves it out elsewhere).
RuleVerdict rule_agreement(const Policy & policy, const std::optional<DriftScore> & drift, double alpha);
// Cheap signal before any task run: a mean KLD above screen_max_kld is not worth evaluating.
RuleVerdict rule_screen(const Policy & policy, const DriftScore & drift);

// Items needed for an interval of half-width `half_width` at `n` items to shrink to `margin`.
std::size_t items_needed(std::size_t n, double half_width, double margin);

}  // namespace switchyard::decide
