// A model served by several replicas (remote servers, and the in-process engine when the model
// has a path too): each request goes to the healthy replica with the fewest outstanding requests
// per unit of weight; one that fails before answering is retried on the next; health is probed
// actively and learnt from failures.
#pragma once

#include "model/portfolio.h"
#include "serve/backend.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::serve {

// One replica as /stats and /metrics show it.
struct ReplicaState {
    std::string name;  // its endpoint, or "in-process"
    bool healthy = true;
    int outstanding = 0;  // requests waiting for or being answered
    std::uint64_t requests = 0;  // answered
    std::uint64_t failures = 0;  // attempts that failed
    double latency_sum_s = 0;  // over answered requests, start to end
};

class ReplicaSet final : public Backend {
public:
    struct Member {
        std::string name;
        std::shared_ptr<Backend> backend;
        double weight = 1;
        std::string origin;  // scheme://host:port to probe; empty: not probed (in process)
    };

    // Starts probing the remote members every health.interval_ms.
    ReplicaSet(std::vector<Member> members, model::HealthCheck health, int timeout_ms);
    ~ReplicaSet() override;

    // Every member in process: what echo, log-probabilities and shadow KLD need.
    bool in_process() const override { return all_in_process_; }
    // Waits for the chosen replica's first event, so a replica that refuses or fails at once is
    // skipped for the next one before the gateway sees anything.
    std::shared_ptr<Stream> start(const ApiRequest & request, const GenerationInput & input,
                                  const std::function<bool()> & client_gone) override;
    std::vector<engine::ScoreResult> score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                   int top_k) override;
    std::vector<engine::Token> tokenize(const std::string & text, bool add_special, bool parse_special) override;
    std::string detokenize(const std::vector<engine::Token> & tokens) override;
    std::string token_text(engine::Token token) override;
    int context_length() const override { return first().context_length(); }
    int vocab_size() const override { return first().vocab_size(); }
    const engine::EngineModel * vocabulary() const override { return first().vocabulary(); }
    std::string chat_template() const override { return first().chat_template(); }
    int parallel() const override { return first().parallel(); }
    int load() const override;

    std::vector<ReplicaState> states() const;

private:
    struct Shared;
    std::vector<std::size_t> order();  // members to try, best first
    void probe_loop(std::size_t i);
    Backend & first() const { return *members_.front().backend; }
    Backend & best() { return *members_[order().front()].backend; }

    std::vector<Member> members_;
    model::HealthCheck health_;
    std::chrono::milliseconds timeout_;
    bool all_in_process_ = true;
    std::shared_ptr<Shared> shared_;  // health and counters; shared with streams that outlive a swap
    std::atomic<std::uint64_t> turn_{0};  // breaks ties in turn
    std::mutex stop_mutex_;
    std::condition_variable stop_;
    bool stopping_ = false;
    std::vector<std::thread> probers_;  // one per remote member: a slow one delays no other
};

}  // namespace switchyard::serve
