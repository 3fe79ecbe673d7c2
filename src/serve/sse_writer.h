// The server-sent events of one streamed answer, as text for the gateway to write: switchyard's
// own chunks for an in-process model, the server's chunks relayed for a remote one.
#pragma once

#include "serve/openai_response.h"

#include <string>

namespace switchyard::serve {

class SseWriter {
public:
    // `relay`: the model is remote and its chunks go on as sent (its own first and last ones too).
    SseWriter(const ApiRequest & request, Answer answer, bool relay);

    // What opens the stream: a chat's role chunk when the chunks are switchyard's own; else "".
    std::string opening() const;
    // One piece of the answer; "" when it is not for the client (the usage chunk, asked of the
    // server to count tokens, when the client did not ask for usage).
    std::string piece(const Stream::Event & e) const;
    // The end of a finished answer: its tool calls, the finish chunk and the usage chunk when
    // asked for (own chunks; a relayed server sent them already), then [DONE].
    std::string done(const Generation & g) const;
    // A failure after the first byte, too late to fall back: an error event, then [DONE].
    std::string failed(const ApiError & error) const;
    // A whole answer as one stream (cascades: known only once complete).
    std::string whole(const Generation & g) const;

private:
    // A chunk's fields around its `choices`.
    nlohmann::json envelope(nlohmann::json choices) const;
    std::string chunk(const std::string * piece, const char * finish, bool first) const;

    const ApiRequest & request_;
    Answer answer_;
    bool relay_;
};

}  // namespace switchyard::serve
