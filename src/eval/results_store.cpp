#include "eval/results_store.h"

#include "support/clock.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/sha256.h"
#include "support/sqlite_statement.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>

namespace switchyard::eval {

namespace {

using sqlite::bind_value;
using sqlite::prepare;
using sqlite::Statement;
using sqlite::step_done;
using sqlite::text;

constexpr const char * kSchema = R"(
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS file_hashes(path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, sha256 TEXT);
CREATE TABLE IF NOT EXISTS models(sha256 TEXT PRIMARY KEY, path TEXT, file_bytes INTEGER);
CREATE TABLE IF NOT EXISTS suites(hash TEXT PRIMARY KEY, spec TEXT, name TEXT, items INTEGER);
CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY, model_sha256 TEXT, suite_hash TEXT, options TEXT, model_path TEXT,
                                started TEXT, finished TEXT, status TEXT, UNIQUE(model_sha256, suite_hash, options));
CREATE TABLE IF NOT EXISTS outcomes(run_id INTEGER, item INTEGER, line INTEGER, unencodable INTEGER, too_long INTEGER,
                                    correct INTEGER, correct_norm INTEGER, output TEXT, reference_logprob REAL, PRIMARY KEY(run_id, item));
CREATE TABLE IF NOT EXISTS metrics(run_id INTEGER, name TEXT, value REAL, PRIMARY KEY(run_id, name));
CREATE TABLE IF NOT EXISTS measurements(model_sha256 TEXT, kind TEXT, key TEXT, value TEXT, recorded TEXT, PRIMARY KEY(model_sha256, kind, key));
)";

std::string now() { return clock::utc_iso8601(clock::unix_now()); }

constexpr std::string_view kRemoteKey = "remote:";

}  // namespace

RecordedModel remote_model(const std::string & endpoint, const std::string & name) {
    const std::string label = name + "@" + endpoint;
    return {std::string(kRemoteKey) + label, label};
}

std::string RunSummary::model_short() const {
    return model_sha256.starts_with(kRemoteKey) ? model_path : std::filesystem::path(model_path).filename().string();
}

std::filesystem::path default_results_path() {
    if (const char * data = std::getenv("XDG_DATA_HOME"); data != nullptr && *data != '\0')
        return std::filesystem::path(data) / "switchyard" / "results.sqlite";
    const char * home = std::getenv("HOME");
    return std::filesystem::path(home != nullptr ? home : ".") / ".local" / "share" / "switchyard" / "results.sqlite";
}

ResultsStore::ResultsStore(const std::filesystem::path & path) : path_(path) {
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    db_ = sqlite::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "results store");
    // Plan workers (`plan --workers`) write into the same store from other processes.
    sqlite3_busy_timeout(db_.get(), 30000);
    exec(kSchema);
    // Stores written before consistency items lack the column; their rows read it as NULL.
    if (sqlite3_table_column_metadata(db_.get(), nullptr, "outcomes", "reference_logprob", nullptr, nullptr, nullptr,
                                      nullptr, nullptr) != SQLITE_OK) {
        exec("ALTER TABLE outcomes ADD COLUMN reference_logprob REAL");
    }
}

void ResultsStore::exec(const std::string & sql) {
    char * message = nullptr;
    if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
        const std::string why = message != nullptr ? message : "unknown error";
        sqlite3_free(message);
        throw Error("{}: results store: {}", path_.string(), why);
    }
}

namespace {

// Reads line, unencodable, too_long, correct, correct_norm, output, reference_logprob from columns
// first.. of a row.
ItemOutcome outcome_from_row(sqlite3_stmt * s, int first) {
    ItemOutcome o;
    o.line = static_cast<std::size_t>(sqlite3_column_int64(s, first));
    o.unencodable = sqlite3_column_int(s, first + 1) != 0;
    o.too_long = sqlite3_column_int(s, first + 2) != 0;
    o.correct = sqlite3_column_int(s, first + 3) != 0;
    o.correct_norm = sqlite3_column_int(s, first + 4) != 0;
    o.output = text(s, first + 5);
    if (sqlite3_column_type(s, first + 6) != SQLITE_NULL) o.reference_logprob = sqlite3_column_double(s, first + 6);
    return o;
}

}  // namespace

std::string ResultsStore::model_hash(const std::filesystem::path & model) {
    const auto absolute = std::filesystem::weakly_canonical(model).string();
    const auto size = static_cast<std::int64_t>(std::filesystem::file_size(model));
    const auto mtime = static_cast<std::int64_t>(std::filesystem::last_write_time(model).time_since_epoch().count());
    auto find = prepare(db_.get(), "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime = ?");
    bind_value(find.get(), 1, absolute);
    bind_value(find.get(), 2, size);
    bind_value(find.get(), 3, mtime);
    if (sqlite3_step(find.get()) == SQLITE_ROW) return text(find.get(), 0);
    const std::string sha = cached_sha256_file(model);
    auto put = prepare(db_.get(), "INSERT OR REPLACE INTO file_hashes(path, size, mtime, sha256) VALUES (?, ?, ?, ?)");
    bind_value(put.get(), 1, absolute);
    bind_value(put.get(), 2, size);
    bind_value(put.get(), 3, mtime);
    bind_value(put.get(), 4, sha);
    step_done(db_.get(), put.get());
    auto model_row = prepare(db_.get(), "INSERT OR IGNORE INTO models(sha256, path, file_bytes) VALUES (?, ?, ?)");
    bind_value(model_row.get(), 1, sha);
    bind_value(model_row.get(), 2, absolute);
    bind_value(model_row.get(), 3, size);
    step_done(db_.get(), model_row.get());
    return sha;
}

RecordedModel ResultsStore::file_model(const std::filesystem::path & model, const model::KvCacheTypes & kv_cache) {
    const std::string kv = kv_cache.key_suffix();
    return {model_hash(model) + kv, std::filesystem::weakly_canonical(model).string() + kv};
}

std::int64_t ResultsStore::open_run(const RecordedModel & model, const TaskSuite & suite, const std::string & options,
                                    std::vector<std::optional<ItemOutcome>> & known) {
    const std::string & sha = model.key;
    auto suite_row = prepare(db_.get(), "INSERT OR IGNORE INTO suites(hash, spec, name, items) VALUES (?, ?, ?, ?)");
    bind_value(suite_row.get(), 1, suite.content_hash);
    bind_value(suite_row.get(), 2, suite.spec);
    bind_value(suite_row.get(), 3, suite.settings.name);
    bind_value(suite_row.get(), 4, static_cast<std::int64_t>(suite.items.size()));
    step_done(db_.get(), suite_row.get());

    auto create = prepare(
        db_.get(),
        "INSERT OR IGNORE INTO runs(model_sha256, suite_hash, options, model_path, started, status) VALUES (?, ?, ?, ?, ?, 'running')");
    bind_value(create.get(), 1, sha);
    bind_value(create.get(), 2, suite.content_hash);
    bind_value(create.get(), 3, options);
    bind_value(create.get(), 4, model.label);
    bind_value(create.get(), 5, now());
    step_done(db_.get(), create.get());
    auto find = prepare(db_.get(), "SELECT id FROM runs WHERE model_sha256 = ? AND suite_hash = ? AND options = ?");
    bind_value(find.get(), 1, sha);
    bind_value(find.get(), 2, suite.content_hash);
    bind_value(find.get(), 3, options);
    if (sqlite3_step(find.get()) != SQLITE_ROW) throw Error("results store: the run just created is missing");
    const std::int64_t run = sqlite3_column_int64(find.get(), 0);

    known.assign(suite.items.size(), std::nullopt);
    auto stored = prepare(
        db_.get(),
        "SELECT item, line, unencodable, too_long, correct, correct_norm, output, reference_logprob FROM outcomes WHERE run_id = ?");
    bind_value(stored.get(), 1, run);
    while (sqlite3_step(stored.get()) == SQLITE_ROW) {
        const auto item = static_cast<std::size_t>(sqlite3_column_int64(stored.get(), 0));
        if (item < known.size()) known[item] = outcome_from_row(stored.get(), 1);
    }
    return run;
}

void ResultsStore::record_outcomes(std::int64_t run, const std::vector<std::size_t> & items,
                                   const SuiteResult & result) {
    std::vector<std::pair<std::size_t, const ItemOutcome *>> rows;
    for (const std::size_t i : items) rows.emplace_back(i, &result.outcomes[i]);
    record_outcomes(run, rows);
}

void ResultsStore::record_outcomes(std::int64_t run,
                                   const std::vector<std::pair<std::size_t, const ItemOutcome *>> & outcomes) {
    exec("BEGIN");
    auto put = prepare(
        db_.get(),
        "INSERT OR REPLACE INTO outcomes(run_id, item, line, unencodable, too_long, correct, correct_norm, output, reference_logprob) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const auto & [i, outcome] : outcomes) {
        const auto & o = *outcome;
        sqlite3_reset(put.get());
        bind_value(put.get(), 1, run);
        bind_value(put.get(), 2, static_cast<std::int64_t>(i));
        bind_value(put.get(), 3, static_cast<std::int64_t>(o.line));
        bind_value(put.get(), 4, static_cast<std::int64_t>(o.unencodable));
        bind_value(put.get(), 5, static_cast<std::int64_t>(o.too_long));
        bind_value(put.get(), 6, static_cast<std::int64_t>(o.correct));
        bind_value(put.get(), 7, static_cast<std::int64_t>(o.correct_norm));
        bind_value(put.get(), 8, o.output);
        if (o.reference_logprob) {
            bind_value(put.get(), 9, *o.reference_logprob);
        } else {
            sqlite3_bind_null(put.get(), 9);
        }
        step_done(db_.get(), put.get());
    }
    exec("COMMIT");
}

void ResultsStore::finish_run(std::int64_t run, const std::map<std::string, double> & metrics) {
    exec("BEGIN");
    auto put = prepare(db_.get(), "INSERT OR REPLACE INTO metrics(run_id, name, value) VALUES (?, ?, ?)");
    for (const auto & [name, value] : metrics) {
        sqlite3_reset(put.get());
        bind_value(put.get(), 1, run);
        bind_value(put.get(), 2, name);
        bind_value(put.get(), 3, value);
        step_done(db_.get(), put.get());
    }
    auto done = prepare(db_.get(), "UPDATE runs SET status = 'finished', finished = ? WHERE id = ?");
    bind_value(done.get(), 1, now());
    bind_value(done.get(), 2, run);
    step_done(db_.get(), done.get());
    exec("COMMIT");
}

bool ResultsStore::has_finished_run(const RecordedModel & model, const TaskSuite & suite, const std::string & options) {
    auto find =
        prepare(db_.get(),
                "SELECT 1 FROM runs WHERE model_sha256 = ? AND suite_hash = ? AND options = ? AND status = 'finished'");
    bind_value(find.get(), 1, model.key);
    bind_value(find.get(), 2, suite.content_hash);
    bind_value(find.get(), 3, options);
    return sqlite3_step(find.get()) == SQLITE_ROW;
}

std::vector<RunSummary> ResultsStore::list_runs() {
    std::vector<RunSummary> runs;
    auto q = prepare(
        db_.get(),
        "SELECT r.id, r.model_path, r.model_sha256, s.name, r.suite_hash, r.options, r.status, r.started, "
        "(SELECT COUNT(*) FROM outcomes o WHERE o.run_id = r.id), s.items FROM runs r LEFT JOIN suites s ON s.hash = r.suite_hash ORDER BY r.id");
    while (sqlite3_step(q.get()) == SQLITE_ROW) {
        RunSummary r;
        r.id = sqlite3_column_int64(q.get(), 0);
        r.model_path = text(q.get(), 1);
        r.model_sha256 = text(q.get(), 2);
        r.suite_name = text(q.get(), 3);
        r.suite_hash = text(q.get(), 4);
        r.options = text(q.get(), 5);
        r.status = text(q.get(), 6);
        r.started = text(q.get(), 7);
        r.items_done = static_cast<std::size_t>(sqlite3_column_int64(q.get(), 8));
        r.items_total = static_cast<std::size_t>(sqlite3_column_int64(q.get(), 9));
        runs.push_back(std::move(r));
    }
    auto m = prepare(db_.get(), "SELECT run_id, name, value FROM metrics");
    while (sqlite3_step(m.get()) == SQLITE_ROW) {
        const auto id = sqlite3_column_int64(m.get(), 0);
        for (auto & r : runs) {
            if (r.id == id) r.metrics[text(m.get(), 1)] = sqlite3_column_double(m.get(), 2);
        }
    }
    return runs;
}

std::vector<ItemOutcome> ResultsStore::outcomes(std::int64_t run) {
    std::vector<ItemOutcome> out;
    auto q = prepare(
        db_.get(),
        "SELECT line, unencodable, too_long, correct, correct_norm, output, reference_logprob FROM outcomes WHERE run_id = ? ORDER BY item");
    bind_value(q.get(), 1, run);
    while (sqlite3_step(q.get()) == SQLITE_ROW) out.push_back(outcome_from_row(q.get(), 0));
    return out;
}

// "kernels=plain": scored without repacked weights (run_suite.h); runs recorded before that was so
// computed a few items differently and are not reused.
std::string recorded_options(const RunOptions & options) {
    return std::string("normalize=") + (options.normalize ? "1" : "0") + " kernels=plain";
}

std::optional<SuiteResult> finished_result(ResultsStore & store, const RecordedModel & model, const TaskSuite & suite,
                                           const RunOptions & options) {
    const auto recorded = recorded_options(options);
    if (!store.has_finished_run(model, suite, recorded)) return std::nullopt;
    std::vector<std::optional<ItemOutcome>> known;
    store.open_run(model, suite, recorded, known);
    std::vector<ItemOutcome> outcomes;
    for (auto & k : known) {
        if (!k) return std::nullopt;
        outcomes.push_back(std::move(*k));
    }
    return suite_result(suite, std::move(outcomes));
}

SuiteResult run_suite_recorded(ResultsStore & store, engine::Engine & engine, const std::filesystem::path & model,
                               const TaskSuite & suite, const RunOptions & options, bool * reused) {
    return run_suite_recorded(store, engine, store.file_model(model), suite, options, reused);
}

namespace {

void finish(ResultsStore & store, std::int64_t run, const SuiteResult & result) {
    store.finish_run(run,
                     {{"accuracy", result.accuracy()},
                      {"accuracy_norm", result.accuracy_norm()},
                      {"n", static_cast<double>(result.scored)},
                      {"unencodable", static_cast<double>(result.unencodable)},
                      {"too_long", static_cast<double>(result.too_long)},
                      {"ci95_lo", result.ci95.lo},
                      {"ci95_hi", result.ci95.hi}});
}

}  // namespace

SuiteResult run_items_recorded(ResultsStore & store, const std::function<engine::Engine &()> & engine,
                               const RecordedModel & model, const TaskSuite & suite,
                               const std::vector<std::size_t> & items, const RunOptions & options,
                               std::size_t * scored_now) {
    std::vector<std::optional<ItemOutcome>> known;
    const std::int64_t run = store.open_run(model, suite, recorded_options(options), known);
    std::vector<std::optional<ItemOutcome>> selected_known;
    std::size_t missing = 0;
    for (const std::size_t i : items) {
        selected_known.push_back(known.at(i));
        missing += !known[i].has_value();
    }
    const auto selected = select_items(suite, items);
    SuiteResult result;
    if (missing == 0) {
        std::vector<ItemOutcome> outcomes;
        for (auto & k : selected_known) outcomes.push_back(std::move(*k));
        result = suite_result(selected, std::move(outcomes));
    } else {
        RunOptions o = options;
        o.known = &selected_known;
        o.on_batch = [&](const std::vector<std::size_t> & batch, const SuiteResult & partial) {
            std::vector<std::pair<std::size_t, const ItemOutcome *>> rows;
            for (const std::size_t j : batch) {
                rows.emplace_back(items[j], &partial.outcomes[j]);
                known[items[j]] = partial.outcomes[j];
            }
            store.record_outcomes(run, rows);
        };
        result = run_suite(engine(), selected, o);
    }
    if (std::all_of(known.begin(), known.end(), [](const auto & k) { return k.has_value(); }) && missing > 0) {
        std::vector<ItemOutcome> all;
        for (auto & k : known) all.push_back(*k);
        finish(store, run, suite_result(suite, std::move(all)));
    }
    if (scored_now != nullptr) *scored_now = missing;
    return result;
}

SuiteResult run_suite_recorded(ResultsStore & store, engine::Engine & engine, const RecordedModel & model,
                               const TaskSuite & suite, const RunOptions & options, bool * reused) {
    std::vector<std::optional<ItemOutcome>> known;
    const std::int64_t run = store.open_run(model, suite, recorded_options(options), known);
    std::size_t done = 0;
    for (const auto & k : known) done += k.has_value();
    if (reused != nullptr) *reused = done == suite.items.size();
    RunOptions recorded = options;
    recorded.known = &known;
    recorded.on_batch = [&](const std::vector<std::size_t> & items, const SuiteResult & partial) {
        store.record_outcomes(run, items, partial);
        if (options.on_batch) options.on_batch(items, partial);
    };
    SuiteResult result = run_suite(engine, suite, recorded);
    finish(store, run, result);
    return result;
}

std::optional<std::string> ResultsStore::find_measurement(const std::string & model_sha256, const std::string & kind,
                                                          const std::string & key) {
    auto find = prepare(db_.get(), "SELECT value FROM measurements WHERE model_sha256 = ? AND kind = ? AND key = ?");
    bind_value(find.get(), 1, model_sha256);
    bind_value(find.get(), 2, kind);
    bind_value(find.get(), 3, key);
    if (sqlite3_step(find.get()) != SQLITE_ROW) return std::nullopt;
    return text(find.get(), 0);
}

void ResultsStore::record_measurement(const std::string & model_sha256, const std::string & kind,
                                      const std::string & key, const std::string & value) {
    auto put =
        prepare(db_.get(),
                "INSERT OR REPLACE INTO measurements(model_sha256, kind, key, value, recorded) VALUES (?, ?, ?, ?, ?)");
    bind_value(put.get(), 1, model_sha256);
    bind_value(put.get(), 2, kind);
    bind_value(put.get(), 3, key);
    bind_value(put.get(), 4, value);
    bind_value(put.get(), 5, now());
    step_done(db_.get(), put.get());
}

}  // namespace switchyard::eval
