// Runs a task suite on a model: accuracy with a 95% Wilson interval and per-item outcomes, and the
// paired comparison of two models on the same items.
#pragma once

#include "engine/engine.h"
#include "eval/suite.h"
#include "stats/intervals.h"

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::eval {

struct ItemOutcome {
    std::size_t line = 0;
    bool unencodable = false;  // the vocabulary cannot encode the item: not scored, counted apart
    bool too_long = false;  // does not fit the context window even after trimming: not scored
    bool correct = false;
    bool correct_norm = false;  // multiple choice by log-likelihood per byte (acc_norm)
    std::string output;  // generation and consistency items: what the model wrote
    // Consistency items: the reference answer's mean token log-probability under this model,
    // teacher-forced; nullopt when it was not scored (it does not fit the context).
    std::optional<double> reference_logprob;

    bool scored() const { return !unencodable && !too_long; }
};

struct SuiteResult {
    TaskSuite suite;  // what was run (items, settings, skipped lines, content hash)
    std::vector<ItemOutcome> outcomes;  // one per item, in order
    std::size_t scored = 0;
    std::size_t correct = 0;
    std::size_t correct_norm = 0;
    std::size_t unencodable = 0;
    std::size_t too_long = 0;
    bool has_norm = false;  // any multiple-choice items
    stats::Interval ci95{0, 1};
    stats::Interval ci95_norm{0, 1};
    // Consistency items: the mean over items of the reference's mean token log-probability.
    std::optional<double> mean_reference_logprob;
    std::size_t reference_scored = 0;
    double seconds = 0;
    // Scoring work: tokens run through the model, the distinct tokens the items hold (shared
    // prefixes once), and what one sequence per choice would run.
    std::uint64_t tokens_evaluated = 0;
    std::uint64_t tokens_unique = 0;
    std::uint64_t tokens_naive = 0;

    double accuracy() const { return scored > 0 ? static_cast<double>(correct) / scored : 0.0; }
    double accuracy_norm() const { return scored > 0 ? static_cast<double>(correct_norm) / scored : 0.0; }
};

struct RunOptions {
    bool normalize = false;  // make text encodable instead of counting it unencodable
    bool progress = true;
    // Outcomes already known (a resumed run, indexed like the items): those items are not run again.
    const std::vector<std::optional<ItemOutcome>> * known = nullptr;
    // Called after each batch with the items it settled, e.g. to record them as they come.
    std::function<void(const std::vector<std::size_t> & items, const SuiteResult & partial)> on_batch;
};

// In process, suites are scored with llama.cpp's plain CPU kernels (LlamaEngineOptions::repack
// false): the kernels an rpc-server worker runs. With repacked weights the same model scores a few
// items differently, and a plan's numbers must not depend on where a candidate was measured.
SuiteResult run_suite(engine::Engine & engine, const TaskSuite & suite, const RunOptions & options);
// The suite's result from outcomes measured before (one per item, in order): a run finished in the
// results store by another process.
SuiteResult suite_result(const TaskSuite & suite, std::vector<ItemOutcome> outcomes);
// The result on the first `items` items only (a shorter prefix of a sequential plan's order).
SuiteResult first_items(const SuiteResult & result, std::size_t items);

// Two models on the items both scored (an item one of them could not score is left out of both, so
// neither is judged on an easier subset): flips, exact McNemar p-value, paired-bootstrap drop intervals.
struct PairedComparison {
    std::size_t n = 0;  // items scored for both
    std::size_t both_right = 0;
    std::vector<std::size_t> right_to_wrong;  // source lines: the base was right, the other model wrong
    std::vector<std::size_t> wrong_to_right;
    std::size_t base_excluded = 0;  // items the base could not score (unencodable, too long), left out
    std::size_t other_excluded = 0;  // items the other model could not score, left out
    // Of those, the ones the base scored, by whether it got them right: what the other model
    // missed by not scoring them (the decision counts them wrong for it).
    std::size_t other_excluded_base_right = 0;
    std::size_t other_excluded_base_wrong = 0;
    double mcnemar_p = 1.0;
    stats::PairedDifference drop_absolute{};
    stats::PairedDifference drop_relative{};

    double base_accuracy() const { return n > 0 ? static_cast<double>(both_right + right_to_wrong.size()) / n : 0.0; }
    double other_accuracy() const { return n > 0 ? static_cast<double>(both_right + wrong_to_right.size()) / n : 0.0; }
};

// `bootstrap`: the paired-bootstrap drop intervals, shown in reports as evidence (the decision's
// rules use the counts); off where only the counts are wanted (the decision's simulation).
PairedComparison compare_outcomes(const SuiteResult & base, const SuiteResult & other, bool bootstrap = true);

// The one JSON form of each result type, written and read alike by `eval --json`, the plan's
// decision.json and report.
void to_json(nlohmann::json & out, const PairedComparison & comparison);
void from_json(const nlohmann::json & in, PairedComparison & comparison);
void to_json(nlohmann::json & out, const SuiteResult & result);  // the summary: counts, accuracy, interval, work

}  // namespace switchyard::eval
