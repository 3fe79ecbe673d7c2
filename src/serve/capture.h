// Capture of served traffic, the evidence for the next decision: sampled requests and answers of
// routes that opt in, redacted, written to SQLite by a thread of its own, so a request never waits.
#pragma once

#include "model/portfolio.h"
#include "support/bounded_queue.h"
#include "support/sqlite_statement.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace switchyard::serve {

// Replaces what each rule matches (presets email, phone, card; else an RE2 pattern) with
// "[redacted:RULE]".
class Redactor {
public:
    explicit Redactor(const std::vector<std::string> & rules);
    ~Redactor();
    std::string apply(std::string text) const;

private:
    std::vector<std::pair<std::string, std::unique_ptr<re2::RE2>>> rules_;
};

// One answered request as stored (already redacted).
struct CapturedItem {
    std::string id;  // the response id the client saw: what feedback names
    std::string route;
    std::string model;  // that answered
    std::string request;  // JSON: {"messages": [...]} or {"prompt": ...}
    std::string answer;
    std::string finish_reason;
    std::string logprobs;  // JSON list of token log-probabilities (in process), or ""
    double latency_ms = 0;
};

class CaptureStore {
public:
    // Opens (creating) the database; throws switchyard::Error when it cannot.
    explicit CaptureStore(const std::filesystem::path & db, std::size_t queue_limit = 4096);
    ~CaptureStore();  // writes what is queued, then closes
    CaptureStore(const CaptureStore &) = delete;
    CaptureStore & operator=(const CaptureStore &) = delete;

    // Queues the item, redacted under `policy`; never waits: when the queue is full the item is
    // dropped and counted.
    void offer(CapturedItem item, const model::Capture & policy);
    // Labels a captured answer (ground truth for the next plan), after everything offered
    // before it is written; false when no captured answer has that id.
    bool label(const std::string & id, bool correct, const std::optional<std::string> & expected);

    struct Counts {
        std::uint64_t stored = 0;
        std::uint64_t dropped = 0;
    };
    std::map<std::string, Counts> counts() const;  // per route, since start

private:
    struct Label;
    struct Job;
    void loop();
    void write(const CapturedItem & item, const model::Capture & policy);
    void apply_label(Label & label);
    void apply_retention(const std::string & route, const model::Capture & policy);

    sqlite::Database db_;
    BoundedQueue<std::shared_ptr<Job>> queue_;
    mutable std::mutex mutex_;  // guards counts_
    std::map<std::string, Counts> counts_;
    std::map<std::vector<std::string>, Redactor> redactors_;  // compiled once per rule set; the writer's alone
    std::jthread writer_;
};

}  // namespace switchyard::serve
