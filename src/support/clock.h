// Wall-clock time as the stores, captures and reports write it: unix seconds and UTC ISO 8601.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::clock {

// Seconds since 1970-01-01T00:00:00Z, now.
std::int64_t unix_now();

// "2026-11-01T08:00:00Z".
std::string utc_iso8601(std::int64_t unix_seconds);

// Reads "2026-11-01" or "2026-11-01T08:00:00Z" as unix seconds; nothing unless it names a real day
// and time (2026-02-31 and 25:00 do not).
std::optional<std::int64_t> parse_utc(std::string_view text);

}  // namespace switchyard::clock
