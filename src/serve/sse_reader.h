// Server-sent events as a client reads them (the WHATWG event-stream format): bytes in, in whatever
// pieces the network delivers, events out. Pure, so it is unit-tested and fuzzed apart from sockets;
// what an event means (OpenAI's `[DONE]`, a JSON chunk) is the caller's to decide.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard::serve {

struct SseEvent {
    std::string type;  // the `event:` field; "" when none was sent (a "message")
    std::string data;  // the `data:` lines, joined by '\n'
};

class SseReader {
public:
    // An event (its lines so far, the one being read included) longer than `max_event_bytes` is an
    // error: it bounds what a broken or hostile server can make the reader hold.
    explicit SseReader(std::size_t max_event_bytes);

    // Reads the next bytes, calling `on_event` for each event they complete (a blank line ends one;
    // lines end with LF, CRLF or CR, split anywhere between calls). An `on_event` that returns false
    // stops the reading there. Returns the error that ends the stream ("an event is longer than N
    // bytes"), and the same error for every later call; nullopt otherwise. Comments (lines that start
    // with ':') and the `id` and `retry` fields are skipped: no caller reconnects.
    std::optional<std::string> feed(std::string_view bytes, const std::function<bool(SseEvent)> & on_event);

    // At the end of the stream: the event whose lines all arrived but whose blank line did not. The
    // format drops it; a server that closes right after "data: [DONE]\n" meant it.
    std::optional<SseEvent> end();

private:
    // One complete line; true when it ends an event, which is then in `event`.
    bool take_line(SseEvent & event);

    std::size_t max_event_bytes_;
    std::string line_;  // the line being read
    std::string data_;  // the event's data so far
    std::string type_;  // the event's type so far
    bool has_data_ = false;
    bool after_cr_ = false;  // the last byte was a CR: an LF first in the next bytes belongs to it
    std::optional<std::string> error_;
};

}  // namespace switchyard::serve
