// The results store: every evaluation recorded in SQLite (models by sha256, suites by content
// hash, per-item outcomes, metrics), so finished runs are reused, interrupted ones resume, and
// later runs can be paired with earlier ones.
#pragma once

#include "eval/run_suite.h"
#include "support/sqlite_statement.h"

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::eval {

// Where results go unless told otherwise: ${XDG_DATA_HOME:-~/.local/share}/switchyard/results.sqlite
std::filesystem::path default_results_path();

// A model as runs are recorded against it: `key` decides which results are its own, `label` is
// what listings show. A file is known by its sha256 (a copied or moved model keeps its results); a
// remote endpoint says nothing that identifies its weights, so its URL and model name stand in.
struct RecordedModel {
    std::string key;
    std::string label;
};

RecordedModel remote_model(const std::string & endpoint,
                           const std::string & name);  // key remote:NAME@URL, label NAME@URL

struct RunSummary {
    std::int64_t id = 0;
    std::string model_path;  // the RecordedModel's label: a file's absolute path, or NAME@URL
    std::string model_sha256;  // the RecordedModel's key
    std::string suite_name;
    std::string suite_hash;
    std::string options;
    std::string
        status;  // "running" (not every item recorded: in progress, interrupted, or a sequential plan's prefix) or "finished"
    std::string started;
    std::size_t items_done = 0;
    std::size_t items_total = 0;  // the suite's items
    std::map<std::string, double> metrics;

    std::string model_short() const;  // a file's name, or a remote model's NAME@URL
};

class ResultsStore {
public:
    // Opens (creating if needed) the database. Throws switchyard::Error if it cannot.
    explicit ResultsStore(const std::filesystem::path & path);
    ResultsStore(const ResultsStore &) = delete;
    ResultsStore & operator=(const ResultsStore &) = delete;

    // sha256 of a model file, cached by path, size and modification time (hashing gigabytes on
    // every run would cost more than some evaluations).
    std::string model_hash(const std::filesystem::path & model);
    // key: sha256, label: absolute path. A quantized KV cache answers differently: it is another
    // model here ("+kv=K/V" on both), so its runs never mix with the file's own.
    RecordedModel file_model(const std::filesystem::path & model, const model::KvCacheTypes & kv_cache = {});

    // The run of this model on this suite with these options: created if new, else returned with
    // the outcomes recorded so far (all of them when it finished).
    std::int64_t open_run(const RecordedModel & model, const TaskSuite & suite, const std::string & options,
                          std::vector<std::optional<ItemOutcome>> & known);
    void record_outcomes(std::int64_t run, const std::vector<std::size_t> & items, const SuiteResult & result);
    void record_outcomes(
        std::int64_t run,
        const std::vector<std::pair<std::size_t, const ItemOutcome *>> & outcomes);  // (item index, outcome)
    void finish_run(std::int64_t run, const std::map<std::string, double> & metrics);
    // Whether the model's run on the suite with these options has finished (another process may
    // have run it: plan workers).
    bool has_finished_run(const RecordedModel & model, const TaskSuite & suite, const std::string & options);

    // Whole-model measurements (drift from an original on a text, speed) as JSON text, keyed by
    // what they depend on beyond the model (`key`: the original's hash, the text's, the options).
    std::optional<std::string> find_measurement(const std::string & model_sha256, const std::string & kind,
                                                const std::string & key);
    void record_measurement(const std::string & model_sha256, const std::string & kind, const std::string & key,
                            const std::string & value);

    std::vector<RunSummary> list_runs();
    std::vector<ItemOutcome> outcomes(std::int64_t run);

private:
    void exec(const std::string & sql);
    sqlite::Database db_;
    std::filesystem::path path_;
};

// The model's finished run on the suite, from the store alone (no engine): what another process
// (a plan worker) measured. Empty when the run is not finished.
std::optional<SuiteResult> finished_result(ResultsStore & store, const RecordedModel & model, const TaskSuite & suite,
                                           const RunOptions & options);

// The options a run is recorded under: what changes its outcomes.
std::string recorded_options(const RunOptions & options);

// Runs a suite through the store: reuses a finished run, resumes an interrupted one, records as it goes.
SuiteResult run_suite_recorded(ResultsStore & store, engine::Engine & engine, const RecordedModel & model,
                               const TaskSuite & suite, const RunOptions & options, bool * reused = nullptr);
SuiteResult run_suite_recorded(ResultsStore & store, engine::Engine & engine, const std::filesystem::path & model,
                               const TaskSuite & suite, const RunOptions & options, bool * reused = nullptr);

// The model's outcomes on some items of the suite (indices into suite.items, in the order given: a
// sequential plan's prefix of item_order), through the store: items recorded before are read back,
// the rest scored with `engine` (called only when some are missing, so a model is loaded only for
// new work) and recorded batch by batch. The run stays open (a partial run, resumed by the next
// call) until every item of the suite is recorded. `scored_now`: the items scored by this call.
SuiteResult run_items_recorded(ResultsStore & store, const std::function<engine::Engine &()> & engine,
                               const RecordedModel & model, const TaskSuite & suite,
                               const std::vector<std::size_t> & items, const RunOptions & options,
                               std::size_t * scored_now = nullptr);

}  // namespace switchyard::eval
