// Threads started one per task, for work that blocks for its whole length (a streamed HTTP
// exchange), and joined by their owner: none is detached, none outlives what it uses.
#pragma once

#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace switchyard {

class ThreadSet {
public:
    ThreadSet() = default;
    ThreadSet(const ThreadSet &) = delete;
    ThreadSet & operator=(const ThreadSet &) = delete;

    // Waits for every task to end, then joins their threads.
    ~ThreadSet() {
        std::unique_lock lock(mutex_);
        none_running_.wait(lock, [&] { return running_.empty(); });
        auto ended = std::move(ended_);
        lock.unlock();
        for (auto & t : ended) t.join();
    }

    // Runs `task` on a thread of its own. Threads whose tasks ended are joined here, so they do not
    // pile up in a long-running owner. Throws std::system_error when no thread can be started.
    template <typename Task>
    void spawn(Task task) {
        std::vector<std::thread> ended;
        {
            const std::lock_guard lock(mutex_);
            ended.swap(ended_);
            const auto slot = running_.emplace(running_.end());
            try {
                // The thread waits for this lock before it moves itself out of `slot`.
                *slot = std::thread([this, slot, task = std::move(task)]() mutable {
                    task();
                    const std::lock_guard done(mutex_);
                    ended_.push_back(std::move(*slot));
                    running_.erase(slot);
                    if (running_.empty()) none_running_.notify_all();
                });
            } catch (...) {
                running_.erase(slot);
                ended_.swap(ended);
                throw;
            }
        }
        for (auto & t : ended) t.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable none_running_;
    std::list<std::thread> running_;
    std::vector<std::thread> ended_;  // their tasks returned: joined by the next spawn or the destructor
};

}  // namespace switchyard
