#include "serve/stream_relay.h"

#include "serve/sse_writer.h"

namespace switchyard::serve {

StreamRelay::StreamRelay(ApiRequest request, Answer answer, bool relay, std::shared_ptr<Stream> stream,
                         Stream::Event first, std::chrono::steady_clock::time_point deadline, Hooks hooks)
    : request_(std::move(request)),
      answer_(std::move(answer)),
      relay_(relay),
      stream_(std::move(stream)),
      first_(std::move(first)),
      deadline_(deadline),
      hooks_(std::move(hooks)) {}

void StreamRelay::operator()(http::Sink & sink) {
    StreamGuard cancel_on_exit{stream_};
    const SseWriter sse(request_, answer_, relay_);
    auto write = [&](const std::string & text) { return text.empty() || sink.write(text); };
    if (!write(sse.opening())) return;
    for (Stream::Event e = std::move(first_);; e = stream_->next(deadline_)) {
        if (e.kind == Stream::Event::Kind::piece) {
            if (!write(sse.piece(e))) return;  // client gone: the guard cancels
        } else if (e.kind == Stream::Event::Kind::done) {
            hooks_.answered(e.result);
            write(sse.done(e.result));
            cancel_on_exit.stream = nullptr;
            hooks_.delivered(std::move(e.result));
            return;
        } else {
            hooks_.failed();
            write(sse.failed(failure_error(e.failure, answer_.model + ": " + e.message)));
            return;
        }
    }
}

}  // namespace switchyard::serve
