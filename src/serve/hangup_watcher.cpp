#include "serve/hangup_watcher.h"

namespace switchyard::serve {

HangupWatcher::Watch::~Watch() {
    if (watcher_ != nullptr) watcher_->unwatch(id_);
}

HangupWatcher::~HangupWatcher() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
}

HangupWatcher & HangupWatcher::shared() {
    static HangupWatcher watcher;
    return watcher;
}

HangupWatcher::Watch HangupWatcher::watch(std::function<bool()> gone, std::function<void()> abandon) {
    const std::lock_guard lock(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    const std::uint64_t id = next_id_++;
    entries_.emplace(id, Entry{std::move(gone), std::move(abandon)});
    return Watch(*this, id);
}

void HangupWatcher::unwatch(std::uint64_t id) {
    const std::lock_guard lock(mutex_);
    entries_.erase(id);
}

void HangupWatcher::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, kPeriod);
        for (auto & entry : entries_) {
            if (entry.second.gone()) entry.second.abandon();
        }
    }
}

}  // namespace switchyard::serve
