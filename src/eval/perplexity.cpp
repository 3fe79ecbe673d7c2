#include "eval/perplexity.h"

#include "eval/drift.h"
#include "stats/logprobs.h"

#include <cmath>
#include <numbers>

namespace switchyard::eval {

PerplexityResult perplexity_from(const engine::Engine & engine, const TextChunks & text, double nll_sum) {
    PerplexityResult r;
    r.chunks = text.chunks.size();
    r.nll_sum = nll_sum;
    for (const auto & chunk : text.chunks) {
        for (std::size_t pos = 0; pos < chunk.size(); ++pos) {
            if (!scored_position(pos, chunk.size())) continue;
            ++r.tokens;
            r.bytes += engine.token_text(chunk[pos + 1]).size();
        }
    }
    if (r.tokens > 0) r.perplexity = std::exp(r.nll_sum / r.tokens);
    if (r.bytes > 0) r.bits_per_byte = r.nll_sum / std::numbers::ln2 / r.bytes;
    return r;
}

PerplexityResult measure_perplexity(engine::LlamaEngine & engine, const TextChunks & text) {
    double nll = 0;
    engine.forward(
        text.chunks,
        [&](std::size_t s, std::size_t pos, std::span<const float> logits) { nll -= logits[text.chunks[s][pos + 1]] - stats::log_sum_exp(logits); },
        [&](std::size_t s, std::size_t pos) { return scored_position(pos, text.chunks[s].size()); });
    return perplexity_from(engine, text, nll);
}

}  // namespace switchyard::eval
