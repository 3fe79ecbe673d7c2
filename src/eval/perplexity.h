// Perplexity and bits per byte on raw text, by llama-perplexity's protocol: non-overlapping chunks
// of the context length, BOS first, the second half of each chunk scored.
#pragma once

#include "engine/llama_engine.h"
#include "eval/text_chunks.h"

namespace switchyard::eval {

struct PerplexityResult {
    double perplexity = 0;
    double bits_per_byte = 0;  // comparable across tokenizers, unlike perplexity
    double nll_sum = 0;  // nats over the scored tokens
    std::size_t tokens = 0;  // scored tokens
    std::size_t bytes = 0;  // bytes of text they spell
    std::size_t chunks = 0;
};

PerplexityResult measure_perplexity(engine::LlamaEngine & engine, const TextChunks & text);

// Sliding windows instead of chunks: windows of `context` tokens every `stride` tokens over the
// whole text, each scoring only the tokens no earlier window scored, so most tokens are predicted
// with nearly a full context (`max_windows` 0: all).
PerplexityResult measure_perplexity_sliding(engine::LlamaEngine & engine, const TextChunks & text, int context,
                                            int stride, std::size_t max_windows);

// The same figures from a negative log-likelihood already summed over the scored positions (a
// drift measurement computes it on the way).
PerplexityResult perplexity_from(const engine::Engine & engine, const TextChunks & text, double nll_sum);

}  // namespace switchyard::eval
