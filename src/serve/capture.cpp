#include "serve/capture.h"

#include "support/error.h"
#include "support/sqlite_statement.h"

#include <re2/re2.h>
#include <spdlog/spdlog.h>
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

constexpr const char * kSchema = R"(
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS captures(id TEXT PRIMARY KEY, route TEXT, time INTEGER, model TEXT, request TEXT, answer TEXT,
                                    finish_reason TEXT, logprobs TEXT, latency_ms REAL, correct INTEGER, expected TEXT);
CREATE INDEX IF NOT EXISTS captures_by_route ON captures(route, time);
)";

using sqlite::bind_value;
using sqlite::prepare;
using sqlite::step_done;

std::int64_t now_s() { return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

struct CaptureStore::Job {
    struct Label {
        std::string id;
        bool correct;
        std::optional<std::string> expected;
        std::promise<bool> found;
    };
    std::variant<std::pair<CapturedItem, model::Capture>, Label> what;
};

CaptureStore::CaptureStore(const std::filesystem::path & db, std::size_t queue_limit) : queue_limit_(queue_limit) {
    if (sqlite3_open(db.c_str(), &db_) != SQLITE_OK) {
        const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        throw Error("cannot open the capture store " + db.string() + ": " + why);
    }
    sqlite3_busy_timeout(db_, 5000);
    char * err = nullptr;
    if (sqlite3_exec(db_, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
        const std::string why = err ? err : "unknown error";
        sqlite3_free(err);
        sqlite3_close(db_);
        throw Error("cannot set up the capture store " + db.string() + ": " + why);
    }
    writer_ = std::thread([this] { loop(); });
}

CaptureStore::~CaptureStore() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    ready_.notify_all();
    writer_.join();
    sqlite3_close(db_);
}

void CaptureStore::offer(CapturedItem item, const model::Capture & policy) {
    {
        const std::lock_guard lock(mutex_);
        if (queue_.size() >= queue_limit_) {
            ++counts_[item.route].dropped;
            return;
        }
        auto job = std::make_shared<Job>();
        job->what = std::make_pair(std::move(item), policy);
        queue_.push_back(std::move(job));
    }
    ready_.notify_one();
}

bool CaptureStore::label(const std::string & id, bool correct, const std::optional<std::string> & expected) {
    auto job = std::make_shared<Job>();
    job->what = Job::Label{id, correct, expected, {}};
    auto found = std::get<Job::Label>(job->what).found.get_future();
    {
        // Labels are rare and must not be lost: they may exceed the queue's bound.
        const std::lock_guard lock(mutex_);
        queue_.push_back(job);
    }
    ready_.notify_one();
    return found.get();
}

std::map<std::string, CaptureStore::Counts> CaptureStore::counts() const {
    const std::lock_guard lock(mutex_);
    return counts_;
}

void CaptureStore::loop() {
    for (;;) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock lock(mutex_);
            ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything written
            job = std::move(queue_.front());
            queue_.pop_front();
        }
        try {
            if (auto * item = std::get_if<std::pair<CapturedItem, model::Capture>>(&job->what)) {
                write(item->first, item->second);
                const std::lock_guard lock(mutex_);
                ++counts_[item->first.route].stored;
            } else {
                auto & l = std::get<Job::Label>(job->what);
                auto s = prepare(db_, "UPDATE captures SET correct = ?, expected = ? WHERE id = ?");
                bind_value(s.get(), 1, std::int64_t{l.correct ? 1 : 0});
                if (l.expected) {
                    bind_value(s.get(), 2, *l.expected);
                } else {
                    sqlite3_bind_null(s.get(), 2);
                }
                bind_value(s.get(), 3, l.id);
                sqlite3_step(s.get());
                l.found.set_value(sqlite3_changes(db_) > 0);
            }
        } catch (const Error & e) {
            spdlog::error("{}", e.what());
            if (auto * l = std::get_if<Job::Label>(&job->what)) l->found.set_value(false);
        }
    }
}

void CaptureStore::write(const CapturedItem & raw, const model::Capture & policy) {
    const Redactor & redact = redactors_.try_emplace(policy.redact, policy.redact).first->second;
    auto s = prepare(db_, "INSERT OR REPLACE INTO captures(id, route, time, model, request, answer, finish_reason, logprobs, latency_ms) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    bind_value(s.get(), 1, raw.id);
    bind_value(s.get(), 2, raw.route);
    bind_value(s.get(), 3, now_s());
    bind_value(s.get(), 4, raw.model);
    bind_value(s.get(), 5, redact.apply(raw.request));
    bind_value(s.get(), 6, redact.apply(raw.answer));
    bind_value(s.get(), 7, raw.finish_reason);
    bind_value(s.get(), 8, raw.logprobs);
    bind_value(s.get(), 9, raw.latency_ms);
    step_done(db_, s.get());
    // Retention and the cap, per route: the oldest go first.
    auto old = prepare(db_, "DELETE FROM captures WHERE route = ? AND (time < ? OR id NOT IN "
                            "(SELECT id FROM captures WHERE route = ? ORDER BY time DESC, rowid DESC LIMIT ?))");
    bind_value(old.get(), 1, raw.route);
    bind_value(old.get(), 2, now_s() - std::int64_t{policy.retention_days} * 86400);
    bind_value(old.get(), 3, raw.route);
    bind_value(old.get(), 4, std::int64_t{policy.max_items});
    sqlite3_step(old.get());
}

}  // namespace switchyard::serve
