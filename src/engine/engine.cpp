#include "engine/engine.h"

namespace switchyard::engine {

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
