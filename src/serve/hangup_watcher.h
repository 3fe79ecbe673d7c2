// Notices clients that hang up while their request waits on a call that cannot look up meanwhile
// (a whole answer from a remote model, fetched with a blocking HTTP client on the worker).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

namespace switchyard::serve {

// One thread for every waiting request: it asks each registered `gone` every kPeriod and, once
// one says yes, runs its `abandon` then and at every later period until the request lets go
// (so `abandon` must be quick and idempotent: fail a stream, shut a socket; a socket shut just
// before its request went out is shut again once it is in flight). A thread started per
// request would cost more than the gateway's whole overhead.
class HangupWatcher {
public:
    static constexpr std::chrono::milliseconds kPeriod{50};

    // Unregisters on destruction; once that returns, `abandon` is not running and never will.
    class Watch {
    public:
        Watch(HangupWatcher & watcher, std::uint64_t id) : watcher_(&watcher), id_(id) {}
        Watch(Watch && other) noexcept : watcher_(std::exchange(other.watcher_, nullptr)), id_(other.id_) {}
        Watch(const Watch &) = delete;
        Watch & operator=(const Watch &) = delete;
        Watch & operator=(Watch &&) = delete;
        ~Watch();

    private:
        HangupWatcher * watcher_;
        std::uint64_t id_;
    };

    HangupWatcher() = default;
    ~HangupWatcher();
    HangupWatcher(const HangupWatcher &) = delete;
    HangupWatcher & operator=(const HangupWatcher &) = delete;

    // The process's watcher: its thread starts with the first watch.
    static HangupWatcher & shared();

    [[nodiscard]] Watch watch(std::function<bool()> gone, std::function<void()> abandon);

private:
    struct Entry {
        std::function<bool()> gone;
        std::function<void()> abandon;
    };
    void loop();
    void unwatch(std::uint64_t id);

    std::mutex mutex_;  // held while `gone` and `abandon` run, so unwatch() waits for them
    std::condition_variable wake_;
    std::map<std::uint64_t, Entry> entries_;
    std::uint64_t next_id_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace switchyard::serve
