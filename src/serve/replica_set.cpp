#include "serve/replica_set.h"

#include "engine/http_client.h"
#include "support/error.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

namespace switchyard::serve {

using Clock = std::chrono::steady_clock;

struct ReplicaSet::Shared {
    struct Slot {
        bool healthy = true;
        Clock::time_point retry_at{};  // unprobed members: when a failed one is tried again
        std::uint64_t requests = 0, failures = 0;
        double latency_sum_s = 0;
    };
    std::mutex mutex;
    std::vector<Slot> slots;

    // Logs transitions only: a probe that keeps failing says so once.
    void mark(const std::string & name, Slot & slot, bool healthy, const std::string & why) {
        if (slot.healthy == healthy) return;
        slot.healthy = healthy;
        if (healthy) {
            spdlog::warn("replica {} is back in rotation", name);
        } else {
            spdlog::warn("replica {} taken out of rotation: {}", name, why);
        }
    }
};

ReplicaSet::ReplicaSet(std::vector<Member> members, model::HealthCheck health, int timeout_ms)
    : members_(std::move(members)),
      health_(std::move(health)),
      timeout_(timeout_ms),
      shared_(std::make_shared<Shared>()) {
    shared_->slots.resize(members_.size());
    for (const auto & m : members_) all_in_process_ = all_in_process_ && m.backend->in_process();
    for (std::size_t i = 0; i < members_.size(); ++i) {
        if (!members_[i].origin.empty()) probers_.emplace_back([this, i] { probe_loop(i); });
    }
}

ReplicaSet::~ReplicaSet() {
    {
        const std::lock_guard lock(stop_mutex_);
        stopping_ = true;
    }
    stop_.notify_all();
    for (auto & t : probers_) t.join();
}

std::vector<std::size_t> ReplicaSet::order() {
    const auto now = Clock::now();
    std::vector<std::size_t> up, down;
    {
        const std::lock_guard lock(shared_->mutex);
        for (std::size_t i = 0; i < members_.size(); ++i) {
            auto & slot = shared_->slots[i];
            // A member nobody probes comes back on its own after an interval.
            if (!slot.healthy && members_[i].origin.empty() && now >= slot.retry_at)
                shared_->mark(members_[i].name, slot, true, {});
            (slot.healthy ? up : down).push_back(i);
        }
    }
    // Fewest outstanding requests per unit of weight first; ties go round in turn, so equal
    // replicas share a burst evenly instead of all of it going to the first.
    const std::size_t n = members_.size();
    const std::size_t start = static_cast<std::size_t>(turn_++ % n);
    auto rank = [&](std::size_t i) { return (i + n - start) % n; };
    std::vector<double> score(n);
    for (const auto i : up) score[i] = (members_[i].backend->load() + 1) / members_[i].weight;
    std::sort(up.begin(), up.end(), [&](std::size_t a, std::size_t b) {
        return score[a] != score[b] ? score[a] < score[b] : rank(a) < rank(b);
    });
    // Replicas out of rotation stay the last resort: a doubtful replica beats no answer.
    up.insert(up.end(), down.begin(), down.end());
    return up;
}

std::shared_ptr<Stream> ReplicaSet::start(const ApiRequest & request, const GenerationInput & input,
                                          const std::function<bool()> & client_gone) {
    const auto deadline = Clock::now() + timeout_;
    const auto tries = order();
    std::shared_ptr<Stream> stream;
    for (std::size_t k = 0; k < tries.size(); ++k) {
        const std::size_t i = tries[k];
        const auto started = Clock::now();
        stream = members_[i].backend->start(request, input, client_gone);
        Stream::Event first = stream->next(deadline);
        const bool failed = first.kind == Stream::Event::Kind::failed;
        const Failure failure = first.failure;
        // Neither a refused request nor a client that hung up says anything about the replica.
        const bool replica_failed = failed && failure != Failure::rejected && failure != Failure::client_gone;
        if (replica_failed) {
            const std::lock_guard lock(shared_->mutex);
            auto & slot = shared_->slots[i];
            ++slot.failures;
            if (failure != Failure::overloaded) {
                shared_->mark(members_[i].name, slot, false, first.message);
                slot.retry_at = Clock::now() + std::chrono::milliseconds(health_.interval_ms);
            }
        }
        if (replica_failed && k + 1 < tries.size()) {
            stream->cancel();
            continue;
        }
        stream->put_back(std::move(first));
        if (!failed) {
            stream->set_on_close([shared = shared_, i, started](bool done) {
                const std::lock_guard lock(shared->mutex);
                auto & slot = shared->slots[i];
                if (done) {
                    ++slot.requests;
                    slot.latency_sum_s += std::chrono::duration<double>(Clock::now() - started).count();
                } else {
                    ++slot.failures;
                }
            });
        }
        return stream;
    }
    return stream;
}

std::vector<engine::ScoreResult> ReplicaSet::score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                           int top_k) {
    return best().score_prompts(prompts, top_k);
}
std::vector<engine::Token> ReplicaSet::tokenize(const std::string & text, bool add_special, bool parse_special) {
    return best().tokenize(text, add_special, parse_special);
}
std::string ReplicaSet::detokenize(const std::vector<engine::Token> & tokens) { return best().detokenize(tokens); }
std::string ReplicaSet::token_text(engine::Token token) { return best().token_text(token); }

int ReplicaSet::load() const {
    int sum = 0;
    for (const auto & m : members_) sum += m.backend->load();
    return sum;
}

std::vector<ReplicaState> ReplicaSet::states() const {
    std::vector<ReplicaState> out;
    const std::lock_guard lock(shared_->mutex);
    for (std::size_t i = 0; i < members_.size(); ++i) {
        const auto & slot = shared_->slots[i];
        out.push_back({members_[i].name, slot.healthy, members_[i].backend->load(), slot.requests, slot.failures,
                       slot.latency_sum_s});
    }
    return out;
}

void ReplicaSet::probe_loop(std::size_t i) {
    const auto interval = std::chrono::milliseconds(health_.interval_ms);
    const std::chrono::milliseconds timeout(health_.timeout_ms);
    std::optional<engine::HttpClientPool> pool;
    try {
        pool.emplace(members_[i].origin, "", timeout, timeout);
    } catch (
        const Error & e) {  // an origin the client cannot reach is a replica out of rotation, not the end of the server
        const std::lock_guard lock(shared_->mutex);
        shared_->mark(members_[i].name, shared_->slots[i], false, e.what());
        return;
    }
    engine::HttpClientPool & client = *pool;
    for (;;) {
        const engine::HttpResult res = client.send({.target = health_.path});
        const bool ok = res && res.status == 200;
        const std::string why = res ? "its health check answered " + std::to_string(res.status)
                                    : "its health check failed: " + engine::describe(res.failure);
        {
            const std::lock_guard lock(shared_->mutex);
            shared_->mark(members_[i].name, shared_->slots[i], ok, why);
        }
        std::unique_lock lock(stop_mutex_);
        if (stop_.wait_for(lock, interval, [&] { return stopping_; })) return;
    }
}

}  // namespace switchyard::serve
