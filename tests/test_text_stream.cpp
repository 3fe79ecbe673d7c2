#include "engine/text_stream.h"

#include <gtest/gtest.h>

using switchyard::engine::TextStream;

TEST(TextStream, PassesTextThroughWithoutStops) {
    TextStream s;
    EXPECT_EQ(s.push("Once"), "Once");
    EXPECT_EQ(s.push(" upon"), " upon");
    EXPECT_EQ(s.finish(), "");
    EXPECT_EQ(s.text(), "Once upon");
}

TEST(TextStream, HoldsBackSplitUtf8) {
    TextStream s;
    EXPECT_EQ(s.push("caf\xC3"), "caf");
    EXPECT_EQ(s.push("\xA9!"), "\xC3\xA9!");
}

TEST(TextStream, StopStringAcrossPieces) {
    TextStream s({"\n\n", "END"});
    EXPECT_EQ(s.push("hello E"), "hello ");  // "E" may begin "END"
    EXPECT_EQ(s.push("N"), "");
    EXPECT_FALSE(s.stopped());
    EXPECT_EQ(s.push("Dtail"), "");
    EXPECT_TRUE(s.stopped());
    EXPECT_EQ(s.text(), "hello ");
    EXPECT_EQ(s.push("more"), "");
    EXPECT_EQ(s.finish(), "");
}

TEST(TextStream, ReleasesHeldTextThatDidNotBecomeAStop) {
    TextStream s({"END"});
    EXPECT_EQ(s.push("an E"), "an ");
    EXPECT_EQ(s.push("ND? no, EN"), "");  // "END" found inside the pending text
    EXPECT_TRUE(s.stopped());
    TextStream t({"END"});
    EXPECT_EQ(t.push("an E"), "an ");
    EXPECT_EQ(t.push("lephant"), "Elephant");
    EXPECT_EQ(t.push(" E"), " ");
    EXPECT_EQ(t.finish(), "E");
    EXPECT_EQ(t.text(), "an Elephant E");
}
