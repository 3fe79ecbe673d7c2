#include "engine/engine.h"

#include "stats/logprobs.h"

namespace switchyard::engine {

TokenLogprob token_logprob(std::span<const float> logits, Token token, int top_k) {
    const double norm = stats::log_sum_exp(logits);
    TokenLogprob scored{token, static_cast<float>(logits[static_cast<std::size_t>(token)] - norm), {}};
    for (const auto & t : stats::top_k_logprobs(logits, norm, top_k)) scored.top.push_back({t.index, t.logprob});
    return scored;
}

double ScoreResult::total_logprob() const {
    double sum = 0.0;
    for (const auto & t : tokens) sum += t.logprob;
    return sum;
}

std::vector<std::vector<ScoreResult>> Engine::score_choices(std::span<const ChoiceGroup> groups) {
    std::vector<ScoreRequest> requests;
    for (const auto & g : groups)
        for (const auto & choice : g.choices) requests.push_back({g.context, choice});
    auto scores = score(requests);
    std::vector<std::vector<ScoreResult>> results;
    std::size_t next = 0;
    for (const auto & g : groups) {
        results.emplace_back(
            std::make_move_iterator(scores.begin() + static_cast<std::ptrdiff_t>(next)),
            std::make_move_iterator(scores.begin() + static_cast<std::ptrdiff_t>(next + g.choices.size())));
        next += g.choices.size();
    }
    return results;
}

const char * to_string(FinishReason reason) {
    switch (reason) {
        case FinishReason::length: return "length";
        case FinishReason::stop: return "stop";
        case FinishReason::eos: return "eos";
        case FinishReason::cancelled: return "cancelled";
    }
    return "unknown";
}

}  // namespace switchyard::engine
