// Drift: how far a variant's next-token predictions move from its original's on the same tokens
// (KL-divergence, top-1 agreement, perplexity of both). The original's distributions are kept as
// top-K log-probabilities per position, so one reference serves many variants.
#pragma once

#include "engine/llama_engine.h"
#include "stats/divergence.h"
#include "stats/logprobs.h"

#include <filesystem>
#include <vector>

namespace switchyard::eval {

struct Reference {
    std::vector<std::vector<engine::Token>> chunks;
    std::vector<std::vector<stats::IndexedLogprob>> top;  // per scored position, best first
    std::vector<float> target_logprob;                    // per scored position: the actual next token's
    int k = 0;
    int vocab_size = 0;
};

struct Drift {
    stats::DivergenceSummary kld;  // nats per token; exact when k covers the vocabulary
    double top1_agreement = 0.0;   // share of positions where both predict the same token
    double rms_delta_p = 0.0;      // root mean square change of the actual next token's probability
    double perplexity = 0.0;       // the variant's
    double nll_sum = 0.0;          // the variant's, in nats, over the positions
    double reference_perplexity = 0.0;
    std::size_t positions = 0;
};

// Whether position `pos` of a chunk of `length` tokens is scored: from the middle of each chunk
// on, as llama-perplexity does, so every scored token has at least half a context before it.
bool scored_position(std::size_t pos, std::size_t length);

// `k` <= 0 keeps the whole vocabulary (exact KLD).
Reference record_reference(engine::LlamaEngine & original, std::vector<std::vector<engine::Token>> chunks, int k);
Drift measure_drift(const Reference & reference, engine::LlamaEngine & variant);

// A reference on disk, so the original need not be run again: the chunks' tokens and, per scored
// position, the top-k log-probabilities and the actual token's (llama-perplexity's base file keeps
// every logit instead: about 2 bytes per vocabulary entry per position). Written atomically;
// loading checks the format and throws switchyard::Error on a corrupt or truncated file.
void save_reference(const Reference & reference, const std::filesystem::path & path);
Reference load_reference(const std::filesystem::path & path);

}  // namespace switchyard::eval
