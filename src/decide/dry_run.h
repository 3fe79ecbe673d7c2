// `switchyard plan --dry-run`: the work a plan would do (variants to build, suites × candidates,
// tokens to score) and an estimate of its time from a short timed sample on this machine, with
// nothing built, measured or written.
#pragma once

#include "decide/plan_file.h"

#include <cstdint>
#include <string>
#include <vector>

namespace switchyard::decide {

struct SuiteWork {
    std::string name;
    std::size_t items = 0;
    std::size_t score_tokens = 0;  // tokens through the forward pass per candidate (contexts × choices)
    std::size_t generate_tokens = 0;  // tokens decoded one by one per candidate, at most
};

// What the plan names, counted (the pure core's input).
struct PlanWork {
    std::string base;  // its name; empty without a base
    std::uint64_t base_parameters = 0;
    int context = 0;
    std::size_t calibration_tokens = 0;  // 0: no importance matrix needed
    std::vector<std::string> variants;  // to build
    std::vector<std::string> variants_kept;  // already in the output folder (reused if their settings match)
    std::size_t mix_trials = 0;  // trial quantizations of the mix variants, all together
    std::size_t screen_tokens = 0;  // per model
    std::size_t local_candidates = 0;  // models run in process: original, variants, local alternatives
    std::size_t remote_candidates = 0;
    // The original drafted by each model that can draft for it: a speed pass each, no task runs
    // (its answers are the original's).
    std::size_t drafted_candidates = 0;
    std::vector<SuiteWork> suites;
    // Sequential tests: the share of the task items a candidate with no true drop is expected to
    // read (simulated: expected_share_read); 1 when every item is read.
    double expected_share = 1.0;
    std::size_t speed_prefill_tokens = 0;  // per local candidate
    std::size_t speed_decode_tokens = 0;
};

// Measured on the base model by a short sample.
struct WorkRates {
    double forward_tokens_per_s = 0;
    double decode_tokens_per_s = 0;
    double quantize_weights_per_s = 0;
    double sample_seconds = 0;
};

struct StageEstimate {
    std::string stage;
    std::string work;
    double seconds = 0;
};

// The time per stage: tokens and weights over the sampled rates. An upper bound for the task runs:
// the search skips runs that cannot change the answer, and results already in the store cost nothing.
std::vector<StageEstimate> estimate_stages(const PlanWork & work, const WorkRates & rates);

// The dry run's page: the counts, the sample and the estimates, one stage a line.
std::string format_dry_run(const PlanWork & work, const WorkRates & rates, const std::vector<StageEstimate> & stages);

// Counts the plan's work (loads the base's vocabulary to count tokens, builds cloze suites in a
// temporary folder) and times the sample. Throws switchyard::Error as `plan` would for a bad plan.
struct DryRunOptions {
    std::filesystem::path out_dir = "switchyard-out";
    int threads = 0;
};
std::string dry_run(const Plan & plan, const DryRunOptions & options);

}  // namespace switchyard::decide
