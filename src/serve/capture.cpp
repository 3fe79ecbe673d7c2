#include "serve/capture.h"

#include "support/clock.h"
#include "support/error.h"
#include "support/sqlite_statement.h"

#include <re2/re2.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sqlite3.h>

#include <chrono>
#include <future>
#include <variant>

namespace switchyard::serve {

Redactor::Redactor(const std::vector<std::string> & rules) {
    for (const auto & rule : rules) {
        auto compiled = model::compile_redaction(rule);
        if (compiled->ok()) rules_.emplace_back("[redacted:" + rule + "]", std::move(compiled));
    }
}

Redactor::~Redactor() = default;

std::string Redactor::apply(std::string text) const {
    for (const auto & [replacement, re] : rules_) re2::RE2::GlobalReplace(&text, *re, replacement);
    return text;
}

namespace {

// WAL with synchronous NORMAL: a power cut may lose the last batches of captured traffic but never
// corrupts the file, and a commit does not wait for the disk.
constexpr const char * kSchema = R"(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS captures(id TEXT PRIMARY KEY, route TEXT, time INTEGER, model TEXT, request TEXT, answer TEXT,
                                    finish_reason TEXT, logprobs TEXT, latency_ms REAL, correct INTEGER, expected TEXT);
CREATE INDEX IF NOT EXISTS captures_by_route ON captures(route, time);
)";

using sqlite::bind_value;
using sqlite::prepare;
using sqlite::step_done;

}  // namespace

struct CaptureStore::Label {
    std::string id;
    bool correct;
    std::optional<std::string> expected;
    std::promise<bool> found;
    bool answered = false;  // the id was found and labelled
};

struct CaptureStore::Job {
    std::variant<std::pair<CapturedItem, model::Capture>, Label> what;
};

CaptureStore::CaptureStore(const std::filesystem::path & db, std::size_t queue_limit)
    : queue_(queue_limit, OnClose::drain) {
    db_ = sqlite::open(db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "capture store");
    sqlite3_busy_timeout(db_.get(), 5000);
    try {
        sqlite::exec(db_.get(), kSchema);
    } catch (const Error & e) {
        throw Error("cannot set up the capture store: {}", e.what());
    }
    writer_ = std::jthread([this] { loop(); });
}

CaptureStore::~CaptureStore() {
    queue_.close();
    writer_.join();  // writes what is queued
}

void CaptureStore::offer(CapturedItem item, const model::Capture & policy) {
    const std::string route = item.route;
    auto job = std::make_shared<Job>();
    job->what = std::make_pair(std::move(item), policy);
    if (queue_.try_push(std::move(job))) return;
    const std::lock_guard lock(mutex_);
    ++counts_[route].dropped;
}

bool CaptureStore::label(const std::string & id, bool correct, const std::optional<std::string> & expected) {
    auto job = std::make_shared<Job>();
    job->what = Label{id, correct, expected, {}};
    auto found = std::get<Label>(job->what).found.get_future();
    // Labels are rare and must not be lost: they may exceed the queue's bound.
    if (!queue_.push(job)) return false;
    return found.get();
}

std::map<std::string, CaptureStore::Counts> CaptureStore::counts() const {
    const std::lock_guard lock(mutex_);
    return counts_;
}

void CaptureStore::loop() {
    // Capture must not take CPU from the requests it records: at a low priority the writer runs on
    // idle time, and when there is none the queue fills and items are dropped and counted.
    setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
    for (;;) {
        const auto batch = queue_.pop_all();
        if (batch.empty()) return;  // closed, and everything written
        // One transaction per batch, and retention once per route in it: a commit and a
        // DELETE per item held the writer to a few hundred items a second.
        std::map<std::string, model::Capture> written;
        std::map<std::string, std::uint64_t> stored;
        try {
            sqlite::exec(db_.get(), "BEGIN");
            for (const auto & job : batch) {
                if (auto * item = std::get_if<std::pair<CapturedItem, model::Capture>>(&job->what)) {
                    write(item->first, item->second);
                    written[item->first.route] = item->second;
                    ++stored[item->first.route];
                } else {
                    apply_label(std::get<Label>(job->what));
                }
            }
            for (const auto & [route, policy] : written) apply_retention(route, policy);
            sqlite::exec(db_.get(), "COMMIT");
        } catch (const Error & e) {
            spdlog::error("capture: {}", e.what());
            sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
            stored.clear();
            for (const auto & job : batch)
                if (auto * l = std::get_if<Label>(&job->what)) l->answered = false;
        }
        {
            const std::lock_guard lock(mutex_);
            for (const auto & [route, n] : stored) counts_[route].stored += n;
        }
        // Labels are answered once their transaction is settled, so a label the client was told
        // is recorded is on disk.
        for (const auto & job : batch)
            if (auto * l = std::get_if<Label>(&job->what)) l->found.set_value(l->answered);
    }
}

void CaptureStore::apply_label(Label & l) {
    auto s = prepare(db_.get(), "UPDATE captures SET correct = ?, expected = ? WHERE id = ?");
    bind_value(s.get(), 1, std::int64_t{l.correct ? 1 : 0});
    if (l.expected) {
        bind_value(s.get(), 2, *l.expected);
    } else {
        sqlite3_bind_null(s.get(), 2);
    }
    bind_value(s.get(), 3, l.id);
    step_done(db_.get(), s.get());
    l.answered = sqlite3_changes(db_.get()) > 0;
}

void CaptureStore::write(const CapturedItem & raw, const model::Capture & policy) {
    const Redactor & redact = redactors_.try_emplace(policy.redact, policy.redact).first->second;
    auto s = prepare(
        db_.get(),
        "INSERT OR REPLACE INTO captures(id, route, time, model, request, answer, finish_reason, logprobs, latency_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    bind_value(s.get(), 1, raw.id);
    bind_value(s.get(), 2, raw.route);
    bind_value(s.get(), 3, clock::unix_now());
    bind_value(s.get(), 4, raw.model);
    bind_value(s.get(), 5, redact.apply(raw.request));
    bind_value(s.get(), 6, redact.apply(raw.answer));
    bind_value(s.get(), 7, raw.finish_reason);
    bind_value(s.get(), 8, raw.logprobs);
    bind_value(s.get(), 9, raw.latency_ms);
    step_done(db_.get(), s.get());
}

// Retention and the cap, per route: the oldest go first.
void CaptureStore::apply_retention(const std::string & route, const model::Capture & policy) {
    auto old = prepare(db_.get(),
                       "DELETE FROM captures WHERE route = ? AND (time < ? OR id NOT IN "
                       "(SELECT id FROM captures WHERE route = ? ORDER BY time DESC, rowid DESC LIMIT ?))");
    bind_value(old.get(), 1, route);
    bind_value(old.get(), 2, clock::unix_now() - std::int64_t{policy.retention_days} * 86400);
    bind_value(old.get(), 3, route);
    bind_value(old.get(), 4, std::int64_t{policy.max_items});
    step_done(db_.get(), old.get());
}

}  // namespace switchyard::serve
