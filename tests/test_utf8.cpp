#include "support/utf8.h"

#include <gtest/gtest.h>

using namespace switchyard;

TEST(Utf8, CompletePrefixHoldsBackUnfinishedSequences) {
    EXPECT_EQ(utf8::complete_prefix_length("abc"), 3u);
    const std::string e_acute = "\xC3\xA9";  // é
    EXPECT_EQ(utf8::complete_prefix_length("ab" + e_acute), 4u);
    EXPECT_EQ(utf8::complete_prefix_length("ab" + e_acute.substr(0, 1)), 2u);
    const std::string euro = "\xE2\x82\xAC";  // €
    EXPECT_EQ(utf8::complete_prefix_length("x" + euro.substr(0, 2)), 1u);
    EXPECT_EQ(utf8::complete_prefix_length(euro), 3u);
}

TEST(Utf8, DecodesAndDescribes) {
    EXPECT_EQ(utf8::decode_at("\xC3\xA9", 0), U'\u00E9');
    EXPECT_EQ(utf8::decode_at("\xC3", 0), U'\uFFFD');
    EXPECT_EQ(utf8::describe(U'\n'), "U+000A (newline)");
    EXPECT_EQ(utf8::describe(U'\u00E9'), "'\xC3\xA9' (U+00E9)");
    EXPECT_EQ(utf8::describe(U'#'), "'#' (U+0023)");
}
