// The queue between producers that must never wait (a request handler, the gateway's hot path)
// and the worker threads that take from it: bounded, refusing rather than blocking when full, and
// closed with what is still queued either drained by the workers or dropped.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

namespace switchyard {

// What close() does with the items still queued.
enum class OnClose {
    drain,  // the workers take them; pop() ends once the queue is empty
    drop,  // they are discarded; pop() ends at once
};

template <typename T>
class BoundedQueue {
public:
    // `capacity`: items waiting beyond this are refused. An item a worker blocked in pop() is
    // about to take is not waiting, so n idle workers and capacity c accept n + c at once.
    BoundedQueue(std::size_t capacity, OnClose on_close) : capacity_(capacity), on_close_(on_close) {}
    BoundedQueue(const BoundedQueue &) = delete;
    BoundedQueue & operator=(const BoundedQueue &) = delete;

    // Queues the item unless the queue is full or closed; false then, and the item is dropped
    // (the caller counts it in its own terms).
    bool try_push(T item) {
        {
            const std::lock_guard lock(mutex_);
            if (closed_ || items_.size() >= waiting_ + capacity_) return false;
            items_.push_back(std::move(item));
        }
        ready_.notify_one();
        return true;
    }

    // Queues the item even past the bound: for rare items that must not be lost. False when closed.
    bool push(T item) {
        {
            const std::lock_guard lock(mutex_);
            if (closed_) return false;
            items_.push_back(std::move(item));
        }
        ready_.notify_one();
        return true;
    }

    // Waits for the next item; nullopt once the queue is closed and, with drain, empty.
    std::optional<T> pop() {
        std::unique_lock lock(mutex_);
        wait(lock);
        if (items_.empty()) return std::nullopt;
        T item = std::move(items_.front());
        items_.pop_front();
        return item;
    }

    // Waits for items and takes every one queued, for a worker that handles them as a batch;
    // empty once the queue is closed and, with drain, empty.
    std::deque<T> pop_all() {
        std::unique_lock lock(mutex_);
        wait(lock);
        return std::exchange(items_, {});
    }

    // Refuses further items and wakes every worker. With drop, what is queued is destroyed here,
    // on the caller's thread, outside the lock (an item's destructor may be slow).
    void close() {
        std::deque<T> dropped;
        {
            const std::lock_guard lock(mutex_);
            closed_ = true;
            if (on_close_ == OnClose::drop) dropped.swap(items_);
        }
        ready_.notify_all();
    }

    std::size_t size() const {  // items waiting
        const std::lock_guard lock(mutex_);
        return items_.size();
    }
    std::size_t idle() const {  // workers blocked in pop() or pop_all()
        const std::lock_guard lock(mutex_);
        return waiting_;
    }

private:
    void wait(std::unique_lock<std::mutex> & lock) {
        ++waiting_;
        ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
        --waiting_;
    }

    const std::size_t capacity_;
    const OnClose on_close_;
    mutable std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<T> items_;
    std::size_t waiting_ = 0;
    bool closed_ = false;
};

}  // namespace switchyard
