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

std::vector<ScoreResult> Engine::score_choices(std::span<const Token> context, std::span<const std::vector<Token>> choices) {
    std::vector<ScoreRequest> requests;
    for (const auto & choice : choices) requests.push_back({{context.begin(), context.end()}, choice});
    return score(requests);
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
