// The streamed answer of one request, relayed to the client as server-sent events once the
// gateway has committed to its model: the pieces as they come, then [DONE], or the failure as an
// error event when the model breaks after the first byte (too late to fall back).
#pragma once

#include "serve/backend.h"
#include "serve/http_server.h"
#include "serve/openai_response.h"

#include <chrono>
#include <functional>
#include <memory>

namespace switchyard::serve {

class StreamRelay {
public:
    struct Hooks {
        // Before the client reads [DONE], so that what it reads next in /metrics counts the answer.
        std::function<void(const Generation &)> answered;
        // After [DONE]: what else becomes of the answer (capture, shadow).
        std::function<void(Generation)> delivered;
        // The model failed after the first byte.
        std::function<void()> failed;
    };

    // `first`: the stream's first event, already taken; `relay`: the model is remote (SseWriter).
    StreamRelay(ApiRequest request, Answer answer, bool relay, std::shared_ptr<Stream> stream, Stream::Event first,
                std::chrono::steady_clock::time_point deadline, Hooks hooks);

    // Writes the answer to `sink` until it ends; a client gone (a failed write) cancels the stream.
    void operator()(http::Sink & sink);

private:
    ApiRequest request_;
    Answer answer_;
    bool relay_;
    std::shared_ptr<Stream> stream_;
    Stream::Event first_;
    std::chrono::steady_clock::time_point deadline_;
    Hooks hooks_;
};

}  // namespace switchyard::serve
