// Routing: which route a request belongs to, which models to try in which order, when a cascade
// escalates, and which backends rest after failing. Pure logic over a Portfolio, no I/O.
#pragma once

#include "engine/engine.h"
#include "model/portfolio.h"
#include "serve/api.h"

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace switchyard::serve {

struct Resolution {
    std::string route;  // empty when the client named a model directly
    std::vector<std::string> chain;  // models to try in order: first choice, then fallbacks
    const model::Cascade * cascade = nullptr;  // set: answer with chain[0], escalate along chain
    bool canary = false;  // chain[0] is the route's canary
    std::string shadow;  // the candidate to mirror this request to, if sampled
};

class Router {
public:
    // Compiles the rules' regexes once; the portfolio must outlive the router.
    explicit Router(const model::Portfolio & portfolio);
    ~Router();

    // Picks the route: X-Switchyard-Task / metadata.task names one; else `model` names a route or
    // a model; else the first matching rule; else default_route. `canary_draw` and `shadow_draw`
    // are uniform in [0, 1). An unknown route or model is a 404.
    std::variant<Resolution, ApiError> resolve(const std::string & requested_model, const std::string & task,
                                               const std::string & text, double canary_draw, double shadow_draw) const;

private:
    const model::Portfolio & portfolio_;
    std::vector<std::unique_ptr<re2::RE2>> rule_regex_;  // null where a rule has no regex
};

// Mean log-probability of the generated tokens; nullopt when there are none.
std::optional<double> mean_logprob(std::span<const engine::TokenLogprob> tokens);

// Whether a cascade should ask the next model: the answer's mean token log-probability is below
// the threshold, or unknown (a remote server that gave no log-probabilities).
bool should_escalate(std::span<const engine::TokenLogprob> tokens, bool has_logprobs, double min_mean_logprob);

// Backends that failed rest for a while, so each request does not wait for a dead one first.
class Cooldown {
public:
    using Clock = std::chrono::steady_clock;
    explicit Cooldown(std::chrono::milliseconds rest) : rest_(rest) {}

    void failed(const std::string & model, Clock::time_point now);
    void succeeded(const std::string & model);
    bool resting(const std::string & model, Clock::time_point now) const;
    // The chain without resting models; the whole chain when all are resting (a tired backend
    // beats none).
    std::vector<std::string> order(const std::vector<std::string> & chain, Clock::time_point now) const;

private:
    std::chrono::milliseconds rest_;
    mutable std::mutex mutex_;
    std::map<std::string, Clock::time_point> until_;
};

}  // namespace switchyard::serve
