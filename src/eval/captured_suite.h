// Suites from served traffic: what `switchyard serve` captured for a route (serve/capture.h),
// turned into the items the next decision is measured on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace switchyard::eval {

struct CaptureSuiteOptions {
    std::filesystem::path db;  // the capture database serve wrote (server.capture_db)
    std::string route;
    std::int64_t since = 0;  // unix seconds: items captured at or after this
    std::int64_t until = 0;  // unix seconds: items captured before this; 0: now
    bool critical = false;
    std::string name;  // default: "capture-ROUTE"
};

// What went into a suite, and what was left out and why.
struct CaptureSuiteSummary {
    std::size_t captured = 0;  // items of the route in the window
    std::size_t labelled = 0;  // -> generation items scored against the label
    std::size_t consistency = 0;  // unlabelled -> does a candidate reproduce the incumbent's answer
    std::size_t token_prompts = 0;  // prompts given as token ids: their text is unknown, left out
    std::size_t wrong_without_answer = 0;  // labelled wrong with no expected answer: no ground truth, left out
    std::size_t unreadable = 0;  // a stored request that does not parse, left out
};

// Reads `db` and returns the suite as JSONL: a settings line naming its source and window, then one
// item per captured request, oldest first. Labelled items become generation items (`expected`, or
// the answer itself when it was marked correct); unlabelled ones consistency items whose reference
// is the answer the incumbent gave. Throws switchyard::Error when the database cannot be read or
// the window holds no usable item.
std::string build_capture_suite(const CaptureSuiteOptions & options, CaptureSuiteSummary * summary = nullptr);

// "7d", "12h", "30m" (ago from `now`) or a date "2026-11-01" / "2026-11-01T08:00:00Z" (UTC), as
// unix seconds; throws switchyard::Error naming `what` otherwise.
std::int64_t parse_since(const std::string & text, std::int64_t now, const std::string & what);

}  // namespace switchyard::eval
