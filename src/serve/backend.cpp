#include "serve/backend.h"

namespace switchyard::serve {

Stream::Event Stream::next(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (!ready_.wait_until(lock, deadline, [&] { return !events_.empty(); })) {
        return Event{Event::Kind::failed, {}, {}, Failure::timeout, "the model did not answer in time"};
    }
    Event e = std::move(events_.front());
    events_.pop_front();
    return e;
}

std::variant<Generation, Stream::Event> collect(Stream & stream, std::chrono::steady_clock::time_point deadline,
                                                std::chrono::steady_clock::time_point * first_at,
                                                const std::function<bool()> & client_gone) {
    for (;;) {
        Stream::Event e = stream.next(deadline);
        if (first_at && *first_at == std::chrono::steady_clock::time_point{})
            *first_at = std::chrono::steady_clock::now();
        if (e.kind == Stream::Event::Kind::done) return std::move(e.result);
        if (e.kind == Stream::Event::Kind::failed) return e;
        if (client_gone && client_gone())
            return Stream::Event{
                .kind = Stream::Event::Kind::failed, .failure = Failure::client_gone, .message = "the client hung up"};
    }
}

void Stream::push_piece(std::string text, nlohmann::json upstream) {
    {
        const std::lock_guard lock(mutex_);
        if (closed_) return;
        events_.push_back(Event{Event::Kind::piece, std::move(text), {}, {}, {}, std::move(upstream)});
    }
    ready_.notify_one();
}

void Stream::finish(Generation result) {
    {
        const std::lock_guard lock(mutex_);
        if (closed_) return;
        closed_ = true;
        done_ = true;
        events_.push_back(Event{Event::Kind::done, {}, std::move(result), {}, {}});
    }
    ready_.notify_one();
    closed();
}

void Stream::fail(Failure failure, std::string message, int status, int retry_after_s) {
    {
        const std::lock_guard lock(mutex_);
        if (closed_) return;
        closed_ = true;
        events_.push_back(
            Event{Event::Kind::failed, {}, {}, failure, std::move(message), nullptr, status, retry_after_s});
    }
    ready_.notify_one();
    closed();
}

void Stream::closed() {
    std::function<void(bool)> on_close;
    bool done = false;
    {
        const std::lock_guard lock(mutex_);
        on_close = std::move(on_close_);
        on_close_ = nullptr;
        done = done_;
    }
    if (on_close) on_close(done);
}

void Stream::put_back(Event e) {
    {
        const std::lock_guard lock(mutex_);
        events_.push_front(std::move(e));
    }
    ready_.notify_one();
}

void Stream::set_on_close(std::function<void(bool done)> on_close) {
    bool done = false;
    {
        const std::lock_guard lock(mutex_);
        if (!closed_) {
            on_close_ = std::move(on_close);
            return;
        }
        done = done_;
    }
    on_close(done);
}

void Stream::cancel() {
    std::function<void()> on_cancel;
    {
        const std::lock_guard lock(mutex_);
        if (cancelled_) return;
        cancelled_ = true;
        if (!closed_) on_cancel = std::move(on_cancel_);
    }
    if (on_cancel) on_cancel();
}

bool Stream::cancelled() const {
    const std::lock_guard lock(mutex_);
    return cancelled_;
}

void Stream::set_on_cancel(std::function<void()> on_cancel) {
    const std::lock_guard lock(mutex_);
    on_cancel_ = std::move(on_cancel);
}

}  // namespace switchyard::serve
