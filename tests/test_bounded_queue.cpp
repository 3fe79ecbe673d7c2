// The workers' building blocks in support/: the bounded queue (refusal when full, drain or drop on
// close, one or all at a time, idle workers counted) and the set of joined threads.
#include "support/bounded_queue.h"
#include "support/thread_set.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace switchyard;

namespace {

// Until `n` workers wait in pop(), so that what a test pushes next meets idle workers.
template <typename T>
void wait_idle(const BoundedQueue<T> & q, std::size_t n) {
    while (q.idle() < n) std::this_thread::yield();
}

}  // namespace

TEST(BoundedQueue, RefusesBeyondItsCapacityAndCountsWhatItRefused) {
    BoundedQueue<int> q(3, OnClose::drain);
    int refused = 0;
    for (int i = 0; i < 10; ++i) refused += q.try_push(i) ? 0 : 1;
    EXPECT_EQ(refused, 7);
    EXPECT_EQ(q.size(), 3u);
    // Past the bound on purpose: what must not be lost.
    EXPECT_TRUE(q.push(99));
    EXPECT_EQ(q.size(), 4u);
    EXPECT_EQ(q.pop(), 0);
    EXPECT_FALSE(q.try_push(5));  // still 3 waiting
    EXPECT_EQ(q.pop(), 1);
    EXPECT_TRUE(q.try_push(5));
}

TEST(BoundedQueue, AnItemAnIdleWorkerIsAboutToTakeIsNotWaiting) {
    BoundedQueue<int> q(1, OnClose::drop);
    std::promise<int> got;
    std::jthread worker([&] { got.set_value(*q.pop()); });
    wait_idle(q, 1);
    EXPECT_TRUE(q.try_push(1));  // the worker's
    EXPECT_TRUE(q.try_push(2));  // waiting: the one place
    EXPECT_FALSE(q.try_push(3));
    EXPECT_EQ(got.get_future().get(), 1);
    worker.join();
    EXPECT_FALSE(q.try_push(3));
    EXPECT_EQ(q.size(), 1u);
}

TEST(BoundedQueue, CloseWithDrainHandsOverWhatIsQueuedThenEnds) {
    BoundedQueue<std::string> q(8, OnClose::drain);
    for (const char * s : {"a", "b", "c"}) ASSERT_TRUE(q.try_push(s));
    q.close();
    EXPECT_FALSE(q.try_push("late"));
    EXPECT_FALSE(q.push("late"));
    EXPECT_EQ(q.pop(), "a");
    const auto rest = q.pop_all();
    EXPECT_EQ(std::vector<std::string>(rest.begin(), rest.end()), (std::vector<std::string>{"b", "c"}));
    EXPECT_EQ(q.pop(), std::nullopt);
    EXPECT_TRUE(q.pop_all().empty());
}

TEST(BoundedQueue, CloseWithDropDiscardsWhatIsQueuedAtOnce) {
    auto item = std::make_shared<int>(7);
    BoundedQueue<std::shared_ptr<int>> q(8, OnClose::drop);
    ASSERT_TRUE(q.try_push(item));
    ASSERT_TRUE(q.try_push(item));
    q.close();
    EXPECT_EQ(item.use_count(), 1);  // destroyed by close(), not later
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.pop(), std::nullopt);
}

TEST(BoundedQueue, CloseWakesEveryWaitingWorker) {
    for (const auto mode : {OnClose::drain, OnClose::drop}) {
        BoundedQueue<int> q(4, mode);
        std::atomic<int> ended{0};
        {
            std::vector<std::jthread> workers;
            for (int i = 0; i < 3; ++i)
                workers.emplace_back([&] {
                    while (q.pop()) {}
                    ++ended;
                });
            workers.emplace_back([&] {
                while (!q.pop_all().empty()) {}
                ++ended;
            });
            wait_idle(q, 4);
            q.close();
        }
        EXPECT_EQ(ended.load(), 4);
    }
}

TEST(BoundedQueue, ManyProducersAndWorkersLoseNothingAccepted) {
    BoundedQueue<int> q(16, OnClose::drain);
    std::atomic<long> accepted_sum{0}, taken_sum{0};
    std::atomic<int> refused{0};
    {
        std::vector<std::jthread> workers;
        for (int w = 0; w < 3; ++w)
            workers.emplace_back([&] {
                while (auto v = q.pop()) taken_sum += *v;
            });
        workers.emplace_back([&] {
            for (auto batch = q.pop_all(); !batch.empty(); batch = q.pop_all())
                for (const int v : batch) taken_sum += v;
        });
        {
            std::vector<std::jthread> producers;
            for (int p = 0; p < 4; ++p)
                producers.emplace_back([&, p] {
                    for (int i = 1; i <= 2000; ++i) {
                        const int v = p * 10000 + i;
                        if (q.try_push(v)) {
                            accepted_sum += v;
                        } else {
                            ++refused;
                        }
                    }
                });
        }
        q.close();
    }
    EXPECT_EQ(taken_sum.load(), accepted_sum.load());
    EXPECT_LT(refused.load(), 8000);
}

TEST(ThreadSet, JoinsEveryTaskBeforeItGoes) {
    std::atomic<int> done{0};
    {
        ThreadSet threads;
        for (int i = 0; i < 40; ++i) {
            threads.spawn([&, i] {
                std::this_thread::sleep_for(std::chrono::milliseconds(i % 5));
                ++done;
            });
        }
    }
    EXPECT_EQ(done.load(), 40);
}

TEST(ThreadSet, AMoveOnlyTaskRunsOnceOnAThreadOfItsOwn) {
    std::promise<std::thread::id> where;
    auto id = where.get_future();
    {
        ThreadSet threads;
        auto owned = std::make_unique<int>(3);
        threads.spawn([owned = std::move(owned), &where] { where.set_value(std::this_thread::get_id()); });
    }
    EXPECT_NE(id.get(), std::this_thread::get_id());
}
