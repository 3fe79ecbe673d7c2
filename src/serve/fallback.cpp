#include "serve/fallback.h"

#include "serve/openai_response.h"

#include <spdlog/spdlog.h>

namespace switchyard::serve {

std::optional<ApiError> answer_in_order(const std::vector<std::string> & chain, const std::string & route,
                                        Cooldown * cooldown, Metrics & metrics, const AttemptFn & attempt) {
    using Clock = Cooldown::Clock;
    const auto order = cooldown != nullptr ? cooldown->order(chain, Clock::now()) : chain;
    std::optional<ApiError> last_error;
    bool after_failure = false;
    for (std::size_t i = 0; i < order.size(); ++i) {
        const std::string & name = order[i];
        if (after_failure) metrics.fallback(route);
        Attempt got = attempt(name, i + 1 == order.size());
        if (std::holds_alternative<Answered>(got)) {
            if (cooldown != nullptr) cooldown->succeeded(name);
            return std::nullopt;
        }
        if (std::holds_alternative<Escalated>(got)) {
            metrics.escalated(route);
            after_failure = false;
            continue;
        }
        if (auto * error = std::get_if<ApiError>(&got)) return std::move(*error);
        const auto & e = std::get<Stream::Event>(got);
        if (e.failure == Failure::rejected) return failure_error(e.failure, e.message, e.status);
        if (e.failure == Failure::client_gone) {
            metrics.client_gone();
            return std::nullopt;  // nobody to answer; the attempt's guards cancel what still runs
        }
        metrics.attempt_failed(name);
        if (cooldown != nullptr && e.failure != Failure::overloaded) cooldown->failed(name, Clock::now());
        spdlog::warn("{}: {} failed ({}); {}", route.empty() ? name : route, name, e.message,
                     i + 1 < order.size() ? "falling back" : "no fallback left");
        last_error = failure_error(e.failure, name + ": " + e.message, e.status, e.retry_after_s);
        after_failure = true;
    }
    metrics.route_failed(route);
    return last_error.value_or(
        ApiError{503, "no model is available for this request", "overloaded_error", {}, "unavailable"});
}

}  // namespace switchyard::serve
