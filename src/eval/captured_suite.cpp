#include "eval/captured_suite.h"

#include "support/clock.h"
#include "support/error.h"
#include "support/sqlite_statement.h"

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>

namespace switchyard::eval {

namespace {

using nlohmann::json;

}  // namespace

std::int64_t parse_since(const std::string & text, std::int64_t now, const std::string & what) {
    const auto bad = [&] {
        return Error("{}expected an age (7d, 12h, 30m) or a UTC date (2026-11-01 or 2026-11-01T08:00:00Z), found '{}'",
                     (what.empty() ? "" : what + ": "), text);
    };
    if (text.empty()) throw bad();
    if (const char unit = text.back(); unit == 'd' || unit == 'h' || unit == 'm') {
        std::size_t used = 0;
        double amount = 0;
        try {
            amount = std::stod(text.substr(0, text.size() - 1), &used);
        } catch (const std::exception &) {
            throw bad();
        }
        if (used != text.size() - 1 || amount < 0) throw bad();
        const double seconds = amount * (unit == 'd' ? 86400 : unit == 'h' ? 3600 : 60);
        return now - static_cast<std::int64_t>(seconds);
    }
    const auto at = clock::parse_utc(text);
    if (!at) throw bad();
    return *at;
}

std::string build_capture_suite(const CaptureSuiteOptions & options, CaptureSuiteSummary * summary) {
    if (!std::filesystem::exists(options.db))
        throw Error("{}: no capture database here (serve writes it when a route has 'capture')", options.db.string());
    const auto db = sqlite::open(options.db, SQLITE_OPEN_READONLY, "capture database");
    // serve may be writing: wait for its transaction instead of failing.
    sqlite3_busy_timeout(db.get(), 10000);
    const std::int64_t until = options.until > 0 ? options.until : clock::unix_now() + 1;
    // The columns serve/capture.cpp writes.
    auto s = sqlite::prepare(
        db.get(),
        "SELECT id, model, request, answer, correct, expected FROM captures WHERE route = ? AND time >= ? AND time < ? "
        "ORDER BY time, rowid");
    sqlite::bind_value(s.get(), 1, options.route);
    sqlite::bind_value(s.get(), 2, options.since);
    sqlite::bind_value(s.get(), 3, until);

    CaptureSuiteSummary sum;
    std::string items;
    std::map<std::string, std::size_t> models;
    for (int rc; (rc = sqlite3_step(s.get())) != SQLITE_DONE;) {
        if (rc != SQLITE_ROW) throw sqlite::failure(db.get());
        ++sum.captured;
        const json request = json::parse(sqlite::text(s.get(), 2), nullptr, false);
        const bool labelled = sqlite3_column_type(s.get(), 4) != SQLITE_NULL;
        if (!request.is_object() || !(request.contains("messages") || request.contains("prompt"))) {
            ++sum.unreadable;
            continue;
        }
        if (request.contains("prompt") && !request["prompt"].is_string()) {
            ++sum.token_prompts;
            continue;
        }
        json item = json::object();
        if (request.contains("messages")) {
            item["messages"] = request["messages"];
        } else {
            item["prompt"] = request["prompt"];
        }
        item["max_tokens"] = request.value("max_tokens", 32);
        item["stop"] = request.contains("stop") && request["stop"].is_array() ? request["stop"] : json::array();
        item["capture_id"] = sqlite::text(s.get(), 0);
        const std::string answer = sqlite::text(s.get(), 3);
        if (labelled) {
            const bool correct = sqlite3_column_int(s.get(), 4) != 0;
            const bool has_expected = sqlite3_column_type(s.get(), 5) != SQLITE_NULL;
            if (!correct && !has_expected) {
                ++sum.wrong_without_answer;
                continue;
            }
            item["kind"] = "generation";
            item["answer"] = has_expected ? sqlite::text(s.get(), 5) : answer;
            item["match"] = "exact";
            ++sum.labelled;
        } else {
            item["kind"] = "consistency";
            item["reference"] = answer;
            item["incumbent"] = sqlite::text(s.get(), 1);
            ++sum.consistency;
        }
        ++models[sqlite::text(s.get(), 1)];
        items += item.dump() + "\n";
    }
    if (summary != nullptr) *summary = sum;
    if (sum.labelled + sum.consistency == 0) {
        throw Error("{}: route '{}' has no usable captured item from {} to {} ({} captured)", options.db.string(),
                    options.route, clock::utc_iso8601(options.since), clock::utc_iso8601(until), sum.captured);
    }
    const json header = {{"suite",
                          {{"name", options.name.empty() ? "capture-" + options.route : options.name},
                           {"critical", options.critical},
                           {"source",
                            {{"capture", std::filesystem::absolute(options.db).string()},
                             {"route", options.route},
                             {"since", clock::utc_iso8601(options.since)},
                             {"until", clock::utc_iso8601(until)},
                             {"answered_by", models},
                             {"labelled", sum.labelled},
                             {"consistency", sum.consistency},
                             {"left_out", sum.token_prompts + sum.wrong_without_answer + sum.unreadable}}}}}};
    return header.dump() + "\n" + items;
}

}  // namespace switchyard::eval
