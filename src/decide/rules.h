// The decision rules (DESIGN.md, "The rules the decision engine starts from"), each a pure
// function of measurements, so every verdict names its rule and the numbers behind it.
#pragma once

#include "decide/costs.h"
#include "eval/run_suite.h"
#include "stats/intervals.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

struct Policy {
    double accuracy_floor = 0.80;  // on critical tasks (rule 2)
    double max_drop = 0.10;        // versus the original (rule 3)
    bool drop_relative = true;     // drop as a share of the original's accuracy, else in points
    double alpha = 0.05;           // R3's error rate: intervals at 1 - alpha / comparisons (Bonferroni)
    std::optional<double> min_agreement;  // top-1 agreement with the original (rule 6)
    double screen_max_kld = 1.0;   // cheap signal: mean KLD (nats) above this is hopeless
    Budgets budgets;
    Deployment deployment;
};

// One suite's result for one candidate; `vs_original` is absent for the original itself.
struct SuiteScore {
    std::string suite;
    bool critical = false;
    std::size_t n = 0;         // items scored
    std::size_t excluded = 0;  // items it could not score (unencodable, too long for its context)
    double accuracy = 0;       // on the items it scored
    stats::Interval ci95{0, 1};
    std::optional<eval::PairedComparison> vs_original;  // on the items both scored
};

struct DriftScore {
    double kld_mean = 0;
    double kld_p99 = 0;
    double top1_agreement = 0;
    double ppl_ratio = 0;
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
    double drop = 0;         // relative or in points, as the policy says
    stats::Interval ci{0, 0};  // at `confidence`
    double confidence = 0.95;
};

struct RuleVerdict {
    std::string rule;  // "R1-capability", "R2-floor", "R3-drop", "R4-budget", "R6-agreement", "screen"
    Outcome outcome = Outcome::pass;
    std::string message;  // the numbers behind it, in one line
    std::size_t items_needed = 0;  // with `insufficient`: items that would likely settle it
    std::optional<DropEvidence> drop;  // R3 with items both scored
};

// R1: `needs` is "vision", "audio", "code" or "context:N"; `capabilities` what the model has.
RuleVerdict rule_capability(const std::string & suite, const std::string & needs, const std::vector<std::string> & capabilities, int context_length);
// R2: accuracy on a critical suite must reach the floor; a suite of which no item could be scored
// is `insufficient` ("not measurable"), never an accuracy of 0.
RuleVerdict rule_floor(const Policy & policy, const SuiteScore & score);
// R3, a test of the limit on the items both models scored: the drop's interval at confidence
// 1 - alpha / comparisons (Bonferroni over every comparison with the original the class's verdict
// may rest on) passes when its upper bound is within max_drop, fails when its lower bound exceeds
// it, and is otherwise `insufficient` with the items that would likely settle it. The interval is
// Agresti-Min's for the paired difference (never of zero width); a relative drop is that interval
// over the original's accuracy on the same items. McNemar's p and the flips are shown as evidence.
RuleVerdict rule_drop(const Policy & policy, const SuiteScore & score, std::size_t comparisons);
// R6: top-1 agreement with the original; a model with another vocabulary cannot be judged by it.
// Applies only where an original can serve the class (assess() leaves it out elsewhere).
RuleVerdict rule_agreement(const Policy & policy, const std::optional<DriftScore> & drift);
// Cheap signal before any task run: a mean KLD above screen_max_kld is not worth evaluating.
RuleVerdict rule_screen(const Policy & policy, const DriftScore & drift);

// Items needed for an interval of half-width `half_width` at `n` items to shrink to `margin`.
std::size_t items_needed(std::size_t n, double half_width, double margin);

}  // namespace switchyard::decide
