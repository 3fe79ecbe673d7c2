#include "eval/perplexity.h"

#include "eval/drift.h"
#include "stats/logprobs.h"
#include "support/error.h"

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

PerplexityResult measure_perplexity_sliding(engine::LlamaEngine & engine, const TextChunks & text, int context,
                                            int stride, std::size_t max_windows) {
    if (stride < 1 || stride > context || context < 2) throw Error("--stride must be between 1 and the context length");
    struct Window {
        std::size_t begin, end, first_target;
    };
    const auto & stream = text.stream;
    std::vector<Window> windows;
    // A window cannot predict its own first token, so consecutive windows overlap by at least one.
    const auto step = static_cast<std::size_t>(std::min(stride, context - 1));
    for (std::size_t begin = 0, scored_until = 1; scored_until < stream.size(); begin += step) {
        const std::size_t end = std::min(stream.size(), begin + static_cast<std::size_t>(context));
        if (end > scored_until) windows.push_back({begin, end, scored_until});
        scored_until = std::max(scored_until, end);
        if (max_windows > 0 && windows.size() == max_windows) break;
    }
    std::vector<std::vector<engine::Token>> sequences;
    for (const auto & w : windows)
        sequences.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(w.begin),
                               stream.begin() + static_cast<std::ptrdiff_t>(w.end));
    PerplexityResult r;
    r.chunks = windows.size();
    engine.forward(
        sequences,
        [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
            const engine::Token target = sequences[s][pos + 1];
            r.nll_sum -= logits[target] - stats::log_sum_exp(logits);
            ++r.tokens;
            r.bytes += engine.token_text(target).size();
        },
        [&](std::size_t s, std::size_t pos) {
            const std::size_t target = windows[s].begin + pos + 1;
            return target >= windows[s].first_target && target < windows[s].end;
        });
    if (r.tokens > 0) r.perplexity = std::exp(r.nll_sum / r.tokens);
    if (r.bytes > 0) r.bits_per_byte = r.nll_sum / std::numbers::ln2 / r.bytes;
    return r;
}

PerplexityResult measure_perplexity(engine::LlamaEngine & engine, const TextChunks & text) {
    double nll = 0;
    engine.forward(
        text.chunks,
        [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
            nll -= logits[text.chunks[s][pos + 1]] - stats::log_sum_exp(logits);
        },
        [&](std::size_t s, std::size_t pos) { return scored_position(pos, text.chunks[s].size()); });
    return perplexity_from(engine, text, nll);
}

}  // namespace switchyard::eval
