// The plan's measurements of candidates, typed, through the results store: suite runs, drift from
// the original (the screen) and speed/cost. Each is run at most once per model and settings, and
// counted as run or reused for the search summary. This is the edge where models are loaded.
#pragma once

#include "decide/decision.h"
#include "decide/plan_file.h"
#include "decide/workers.h"
#include "engine/remote_engine.h"
#include "eval/drift.h"
#include "eval/results_store.h"
#include "eval/speed.h"
#include "eval/suite.h"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace switchyard::decide {

// Measurements run now and found finished in the results store.
struct MeasureCounts {
    std::size_t suite_runs = 0;  // (model, suite) pairs with items scored now
    std::size_t suite_runs_reused = 0;  // pairs read from the store alone
    std::size_t items_scored = 0;  // task items scored now, over every suite run
    std::size_t items_reused = 0;  // read back from the store
    std::size_t suite_runs_on_workers = 0;  // of suite_runs: measured by plan workers (`workers`)
    std::size_t drift_runs = 0;
    std::size_t drift_reused = 0;
    std::size_t speed_runs = 0;
    std::size_t speed_reused = 0;
};

class Measurements {
public:
    Measurements(const Plan & plan, const std::filesystem::path & results, int threads, bool progress);

    eval::ResultsStore & store() { return store_; }
    const MeasureCounts & counts() const { return counts_; }

    // The candidate's result on the first `items` items of the suite's order (eval::item_order),
    // from the store where scored before; the model is loaded only when some item is new, and
    // kept loaded for its next look (the original beside it: both are asked for in turn).
    eval::SuiteResult suite_items(const Candidate & candidate, const eval::TaskSuite & suite, std::size_t items);
    // With a worker pool: the candidate's whole suites measured there (a worker measures a suite
    // whole, ahead of the looks, while it would otherwise be idle), here when it cannot.
    void on_workers(const Candidate & candidate, const std::vector<const eval::TaskSuite *> & suites);
    // Where suites are measured when a worker pool is given: the pool first, here when it cannot.
    void use_workers(PlanWorkers * pool) { workers_ = pool; }
    // What a worker would run for the candidate's suites: those not finished in the store (none
    // for a model behind an endpoint, which workers do not serve).
    WorkerJob worker_job(const Candidate & candidate, const std::vector<const eval::TaskSuite *> & suites);
    // Drift of a variant from the original on the plan's screen text.
    DriftScore drift(const Candidate & original, const Candidate & variant);
    // Speed, memory, energy and cost at the plan's deployment, for one query of the plan's text:
    // a local model's time per query as a ratio to the reference's (eval::measure_speed_against),
    // a served model's latency through its server and its cost as the plan declares. A failed
    // measurement gives an unknown cost (CostScore::unknown), never 0.
    CostScore cost(const Candidate & candidate);

    int context_for(const Candidate & candidate) const;
    // The threads latency is measured with: the deployment's, else the run's (0: all).
    int speed_threads() const;

private:
    CostScore remote_cost(const Candidate & candidate);
    engine::Engine & engine_for(const Candidate & candidate);
    std::string machine_key() const;
    // What a candidate's measurements are stored under: its file's hash, and its KV cache's types
    // where they are not the file's default.
    std::string model_key(const Candidate & c);
    // Speed is timed against the plan's original when it is a local file, else its first local alternative.
    std::optional<ModelRef> speed_reference() const;
    const std::string & speed_text();
    eval::SpeedOptions speed_options();
    std::string speed_key(const std::string & reference);
    const eval::SpeedResult & reference_speed(const ModelRef & reference);

    const Plan & plan_;
    eval::ResultsStore store_;
    int threads_;
    bool progress_;
    MeasureCounts counts_;
    PlanWorkers * workers_ = nullptr;
    // Models loaded for task items: the original's and the last other one's (a look at a candidate
    // needs the original's items as far first, so the two alternate).
    std::vector<std::pair<std::string, std::unique_ptr<engine::Engine>>> engines_;
    std::map<std::string, std::vector<std::size_t>> orders_;  // suite content hash -> its item order
    std::set<std::string> runs_scored_, runs_read_, runs_on_workers_;  // "model key/suite hash"
    std::map<std::string, std::size_t> items_read_;  // "model key/suite hash" -> the prefix this plan has read
    std::optional<eval::Reference> reference_;  // the original's on the screen text, recorded once
    std::string drift_key_;
    std::optional<std::string> speed_text_;
    std::optional<eval::SpeedResult> reference_speed_;
};

// What the engine needs to reach a model the plan names behind an endpoint; throws when its API key
// variable is not set.
engine::RemoteEngineOptions remote_options(const ModelRef & model);

}  // namespace switchyard::decide
