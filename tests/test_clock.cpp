#include "support/clock.h"
#include "support/error.h"

#include <gtest/gtest.h>

#include <string>

using namespace switchyard;

TEST(Clock, WritesAndReadsUtcTimes) {
    EXPECT_EQ(clock::utc_iso8601(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(clock::utc_iso8601(1793491200 + 8 * 3600 + 61), "2026-11-01T08:01:01Z");
    EXPECT_EQ(clock::parse_utc("2026-11-01T08:01:01Z"), 1793491200 + 8 * 3600 + 61);
    EXPECT_EQ(clock::parse_utc("2026-11-01"), 1793491200);
    const auto now = clock::unix_now();
    EXPECT_EQ(clock::parse_utc(clock::utc_iso8601(now)), now);
    EXPECT_GT(now, 1793491200 - 365 * 86400);  // the clock reads this century, in seconds
}

TEST(Clock, RefusesDaysAndTimesThatDoNotExist) {
    EXPECT_EQ(clock::parse_utc("2024-02-29"), 1709164800);  // a leap day
    for (const char * bad : {"2026-02-29", "2026-02-31", "2026-04-31", "2026-13-01", "2026-00-10", "2026-01-00",
                             "2026-11-01T24:00:00Z", "2026-11-01T23:60:00Z", "2026-11-01T23:59:60Z",
                             "2026-11-01T08:00:00", "2026-11-01 08:00:00Z", "2026-11-1", ""})
        EXPECT_FALSE(clock::parse_utc(bad).has_value()) << bad;
}

TEST(Invariant, ThrowsWhereItBroke) {
    const auto broken = [] { SWITCHYARD_INVARIANT(1 + 1 == 3, "arithmetic holds"); };
    try {
        broken();
        FAIL() << "no exception";
    } catch (const InvariantError & e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("test_clock.cpp:"), std::string::npos) << what;
        EXPECT_NE(what.find("invariant broken: arithmetic holds (1 + 1 == 3)"), std::string::npos) << what;
    }
    EXPECT_NO_THROW([] { SWITCHYARD_INVARIANT(2 + 2 == 4, "arithmetic holds"); }());
}

TEST(Invariant, ErrorFormatsItsSentence) {
    EXPECT_STREQ(Error("{}: {} of {} items", "suite", 3, 4.5).what(), "suite: 3 of 4.5 items");
    EXPECT_STREQ(Error(std::string("braces {} stay as written")).what(), "braces {} stay as written");
}
