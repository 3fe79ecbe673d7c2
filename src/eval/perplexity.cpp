#include "eval/perplexity.h"

#include "stats/logprobs.h"

#include <cmath>
#include <numbers>

namespace switchyard::eval {

PerplexityResult measure_perplexity(engine::LlamaEngine & engine, const TextChunks & text) {
    PerplexityResult r;
    r.chunks = text.chunks.size();
    engine.forward(text.chunks, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
        const auto & chunk = text.chunks[s];
        if (pos < chunk.size() / 2 || pos + 1 >= chunk.size()) return;
        const engine::Token next = chunk[pos + 1];
        r.nll_sum -= logits[next] - stats::log_sum_exp(logits);
        ++r.tokens;
        r.bytes += engine.token_text(next).size();
    });
    if (r.tokens > 0) r.perplexity = std::exp(r.nll_sum / r.tokens);
    if (r.bytes > 0) r.bits_per_byte = r.nll_sum / std::numbers::ln2 / r.bytes;
    return r;
}

}  // namespace switchyard::eval
