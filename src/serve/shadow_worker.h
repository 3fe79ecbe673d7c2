// Shadow traffic off the request path: replays sampled requests on a route's candidate after the
// client has its answer, compares the two (serve/shadow.h) and reports the verdict it reaches.
#pragma once

#include "serve/deployment.h"
#include "serve/metrics.h"
#include "support/bounded_queue.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace switchyard::serve {

// One answered request to replay on the candidate.
struct ShadowJob {
    std::string route;
    std::string candidate;
    std::string incumbent;
    std::shared_ptr<const Deployment> deployment;  // the one the request ran on
    ApiRequest request;
    GenerationInput input;
    Generation answer;  // the incumbent's
};

class ShadowWorker {
public:
    static constexpr int kTopK = 8;  // top-k kept per position for the KLD estimate
    static constexpr std::size_t kQueue = 256;  // jobs waiting beyond this are dropped and counted

    using Current = std::function<std::shared_ptr<const Deployment>()>;
    // Called when the samples so far promote (true) or roll back (false) a route's candidate.
    using OnVerdict = std::function<void(const std::string & route, const std::string & candidate, bool promote)>;

    ShadowWorker(Metrics & metrics, std::chrono::milliseconds timeout, Current current, OnVerdict on_verdict);
    ~ShadowWorker();  // drops what is queued and waits for the job in hand
    ShadowWorker(const ShadowWorker &) = delete;
    ShadowWorker & operator=(const ShadowWorker &) = delete;

    // Never slows the client down: with a backlog the sample is dropped (and counted in the metrics).
    void enqueue(ShadowJob job);

private:
    void loop();
    void run(const ShadowJob & job);

    Metrics & metrics_;
    std::chrono::milliseconds timeout_;
    Current current_;
    OnVerdict on_verdict_;
    BoundedQueue<ShadowJob> queue_{kQueue, OnClose::drop};
    std::jthread thread_;  // last: joined before the queue and what the jobs use go
};

}  // namespace switchyard::serve
