// Drift: how far a variant's next-token predictions move from its original's on the same tokens
// (KL-divergence, top-1 agreement, perplexity of both). The original's distributions are kept as
// top-K log-probabilities per position, so one reference serves many variants.
#pragma once

#include "engine/llama_engine.h"
#include "stats/divergence.h"
#include "stats/logprobs.h"

#include <vector>

namespace switchyard::eval {

struct Reference {
    std::vector<std::vector<engine::Token>> chunks;
    std::vector<std::vector<stats::IndexedLogprob>> top;  // per scored position, best first
    int k = 0;
    int vocab_size = 0;
    double nll_sum = 0.0;  // of the actual next tokens, for the original's perplexity
};

struct Drift {
    stats::DivergenceSummary kld;  // nats per token; exact when k covers the vocabulary
    double top1_agreement = 0.0;   // share of positions where both predict the same token
    double perplexity = 0.0;       // the variant's
    double reference_perplexity = 0.0;
    std::size_t positions = 0;
};

// Scores positions from the middle of each chunk on, as llama-perplexity does, so every scored
// token has at least half a context before it. `k` <= 0 keeps the whole vocabulary (exact KLD).
Reference record_reference(engine::LlamaEngine & original, std::vector<std::vector<engine::Token>> chunks, int k);
Drift measure_drift(const Reference & reference, engine::LlamaEngine & variant);

}  // namespace switchyard::eval
