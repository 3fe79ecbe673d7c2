#include "serve/router.h"

#include "support/error.h"

#include <re2/re2.h>

#include <algorithm>

namespace switchyard::serve {

Router::Router(const model::Portfolio & portfolio) : portfolio_(portfolio) {
    for (const auto & rule : portfolio.rules) {
        rule_regex_.push_back(rule.regex.empty() ? nullptr : model::compile_rule_regex(rule));
        if (rule_regex_.back() && !rule_regex_.back()->ok())
            throw Error("routing rule for '{}': {}", rule.route, rule_regex_.back()->error());
    }
}

Router::~Router() = default;

std::variant<Resolution, ApiError> Router::resolve(const std::string & requested_model, const std::string & task,
                                                   const std::string & text, double canary_draw,
                                                   double shadow_draw) const {
    const model::Route * route = nullptr;
    if (!task.empty()) {
        route = portfolio_.find_route(task);
        if (route == nullptr)
            return ApiError{404, "no route named '" + task + "' (from X-Switchyard-Task or metadata.task)",
                            "invalid_request_error", "metadata.task", "route_not_found"};
    } else if (!requested_model.empty()) {
        route = portfolio_.find_route(requested_model);
        if (route == nullptr) {
            if (portfolio_.find_model(requested_model) == nullptr) {
                return ApiError{
                    404, "the model '" + requested_model + "' does not exist here (GET /v1/models lists what does)",
                    "invalid_request_error", "model", "model_not_found"};
            }
            return Resolution{{}, {requested_model}, nullptr, false, {}};
        }
    } else {
        for (std::size_t i = 0; i < portfolio_.rules.size() && route == nullptr; ++i) {
            const auto & rule = portfolio_.rules[i];
            if (rule.min_prompt_chars && text.size() < *rule.min_prompt_chars) continue;
            if (rule.max_prompt_chars && text.size() > *rule.max_prompt_chars) continue;
            if (rule_regex_[i] && !re2::RE2::PartialMatch(text, *rule_regex_[i])) continue;
            route = portfolio_.find_route(rule.route);
        }
        if (route == nullptr) route = portfolio_.find_route(portfolio_.default_route);
    }
    Resolution r;
    r.route = route->name;
    if (route->cascade) {
        r.cascade = &*route->cascade;
        r.chain = route->cascade->models;
        return r;
    }
    r.canary = route->canary && canary_draw * 100.0 < route->canary->percent;
    auto add = [&](const std::string & m) {
        if (std::find(r.chain.begin(), r.chain.end(), m) == r.chain.end()) r.chain.push_back(m);
    };
    if (r.canary) add(route->canary->model);
    add(route->model);
    for (const auto & f : route->fallback) add(f);
    if (route->shadow && shadow_draw < route->shadow->sample) r.shadow = route->shadow->model;
    return r;
}

std::optional<double> mean_logprob(std::span<const engine::TokenLogprob> tokens) {
    if (tokens.empty()) return std::nullopt;
    double sum = 0;
    for (const auto & t : tokens) sum += t.logprob;
    return sum / static_cast<double>(tokens.size());
}

bool should_escalate(std::span<const engine::TokenLogprob> tokens, bool has_logprobs, double min_mean_logprob) {
    if (!has_logprobs) return true;
    const auto mean = mean_logprob(tokens);
    return mean && *mean < min_mean_logprob;
}

void Cooldown::failed(const std::string & model, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    until_[model] = now + rest_;
}

void Cooldown::succeeded(const std::string & model) {
    const std::lock_guard lock(mutex_);
    until_.erase(model);
}

bool Cooldown::resting(const std::string & model, Clock::time_point now) const {
    const std::lock_guard lock(mutex_);
    const auto it = until_.find(model);
    return it != until_.end() && now < it->second;
}

std::vector<std::string> Cooldown::order(const std::vector<std::string> & chain, Clock::time_point now) const {
    std::vector<std::string> awake;
    for (const auto & m : chain) {
        if (!resting(m, now)) awake.push_back(m);
    }
    return awake.empty() ? chain : awake;
}

}  // namespace switchyard::serve
