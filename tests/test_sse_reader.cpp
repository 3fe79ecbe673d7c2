// serve's server-sent-events reader: events out of bytes however they are cut, the format's line
// ends, comments and fields, and the bound on an event's size.
#include "serve/sse_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace switchyard::serve;

namespace {

struct Read {
    std::vector<std::string> events;  // "type|data"
    std::optional<std::string> error;
};

// Feeds the pieces in turn, then ends the stream.
Read read(const std::vector<std::string> & pieces, std::size_t max = 1 << 20) {
    SseReader reader(max);
    Read out;
    for (const auto & piece : pieces) {
        out.error = reader.feed(piece, [&](SseEvent e) {
            out.events.push_back(e.type + "|" + e.data);
            return true;
        });
        if (out.error) return out;
    }
    if (auto last = reader.end()) out.events.push_back(last->type + "|" + last->data + " (at the end)");
    return out;
}

// Every way of cutting `text` in two and in single bytes.
std::vector<std::vector<std::string>> cuts(const std::string & text) {
    std::vector<std::vector<std::string>> out{{text}};
    for (std::size_t i = 1; i < text.size(); ++i) out.push_back({text.substr(0, i), text.substr(i)});
    std::vector<std::string> bytes;
    for (const char c : text) bytes.emplace_back(1, c);
    out.push_back(bytes);
    return out;
}

}  // namespace

TEST(SseReader, AnOpenAiStreamCutAnywhereGivesTheSameEvents) {
    const std::string text =
        "data: {\"choices\":[{\"delta\":{\"content\":\"Once\"}}]}\n\n"
        ": keep-alive\n\n"
        "data: {\"choices\":[]}\r\n\r\n"
        "data: [DONE]\n\n";
    const std::vector<std::string> expected{"|{\"choices\":[{\"delta\":{\"content\":\"Once\"}}]}", "|{\"choices\":[]}",
                                            "|[DONE]"};
    for (const auto & pieces : cuts(text)) {
        const Read r = read(pieces);
        EXPECT_EQ(r.events, expected) << "cut into " << pieces.size() << " pieces, first " << pieces[0].size()
                                      << " bytes";
        EXPECT_FALSE(r.error);
    }
}

TEST(SseReader, LineEndsAreLfCrlfOrCrEvenWhenTheLfComesLater) {
    EXPECT_EQ(read({"data: a\r\rdata: b\n\ndata: c\r\n\r\n"}).events, (std::vector<std::string>{"|a", "|b", "|c"}));
    // A CR at the end of one piece and the LF at the start of the next: one line end, not two.
    EXPECT_EQ(read({"data: a\r", "\ndata: b\r", "\n\r", "\n"}).events, (std::vector<std::string>{"|a\nb"}));
}

TEST(SseReader, FieldsCommentsAndMultiLineData) {
    const Read r =
        read({"event: error\ndata: first\ndata:second\ndata:  two spaces\nid: 7\nretry: 10\n\n"
              ": a comment\nevent: lone\n\n"  // no data: no event, and its type does not carry over
              "data\n\n"  // a field name alone: empty data, still an event
              "unknown: x\ndata: {}\n\n"});
    EXPECT_EQ(r.events, (std::vector<std::string>{"error|first\nsecond\n two spaces", "|", "|{}"}));
}

TEST(SseReader, TheCallerDecidesWhatDoneMeansAndCanStopReading) {
    SseReader reader(1024);
    std::vector<std::string> seen;
    const auto error = reader.feed("data: 1\n\ndata: [DONE]\n\ndata: after\n\n", [&](SseEvent e) {
        seen.push_back(e.data);
        return e.data != "[DONE]";
    });
    EXPECT_FALSE(error);
    EXPECT_EQ(seen, (std::vector<std::string>{"1", "[DONE]"}));
}

TEST(SseReader, AnEventWithoutItsBlankLineStandsAtTheEndButAHalfLineDoesNot) {
    EXPECT_EQ(read({"data: 1\n\ndata: [DONE]\n"}).events, (std::vector<std::string>{"|1", "|[DONE] (at the end)"}));
    EXPECT_EQ(read({"data: 1\n\ndata: [DO"}).events, (std::vector<std::string>{"|1"}));
    EXPECT_EQ(read({"data: 1\ndata: 2"}).events, (std::vector<std::string>{"|1 (at the end)"}));
}

TEST(SseReader, AnEventLongerThanTheBoundIsAClearErrorThatStays) {
    // Split or whole, with no line end or over many lines: the same error, after the events before it.
    for (const auto & pieces : {std::vector<std::string>{"data: ok\n\n" + std::string(100, 'x')},
                                std::vector<std::string>{"data: ok\n\n", std::string(30, 'x'), std::string(40, 'x')},
                                std::vector<std::string>{"data: ok\n\n", "data: 0123456789\n", "data: 0123456789\n",
                                                         "data: 0123456789\n", "data: 0123456789\n\n"}}) {
        const Read r = read(pieces, 40);
        EXPECT_EQ(r.events, std::vector<std::string>{"|ok"});
        EXPECT_EQ(r.error, "an event is longer than 40 bytes");
    }
    SseReader reader(8);
    EXPECT_TRUE(reader.feed("data: 123456789", [](SseEvent) { return true; }));
    EXPECT_EQ(reader.feed("\n\n", [](SseEvent) { return true; }), "an event is longer than 8 bytes");
    EXPECT_FALSE(reader.end());
    // Exactly the bound is not an error.
    EXPECT_EQ(read({"data:12\n\n"}, 7).events, std::vector<std::string>{"|12"});
}
