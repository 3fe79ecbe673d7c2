// Drift: how far a variant's next-token predictions move from its original's on the same tokens
// (KL-divergence, top-1 agreement, perplexity of both). The original's distributions are kept as
// top-K log-probabilities per position, so one reference serves many variants.
#pragma once

#include "engine/llama_engine.h"
#include "stats/divergence.h"
#include "stats/logprobs.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace switchyard::stats {

// The KLD summary's JSON form (here, so the stats module stays free of JSON).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DivergenceSummary, mean, median, p90, p99, max, n)

}  // namespace switchyard::stats

namespace switchyard::eval {

// Per scored position, the original's top-k log-probabilities, kept compactly: token ids and 16-bit
// codes on a linear scale from the best log-probability down to the k-th (as llama-perplexity keeps
// its logits), so a position costs about 6 bytes per entry in memory and on disk. The rounding moves a
// log-probability by at most step / 2 = (best - k-th) / 131070 nats.
struct Reference {
    std::vector<std::vector<engine::Token>> chunks;
    std::vector<engine::Token> ids;  // k per position, best first, position after position
    std::vector<std::uint16_t> codes;  // k per position: round((best - logprob) / step)
    std::vector<float> best;  // per position: the highest log-probability
    std::vector<float> step;  // per position: nats per code
    std::vector<float> target_logprob;  // per position: the actual next token's
    int k = 0;
    int vocab_size = 0;

    std::size_t positions() const { return target_logprob.size(); }
    // Position `i`'s top-k log-probabilities into `out` (k entries), best first.
    void row(std::size_t i, std::span<stats::IndexedLogprob> out) const;
};

struct Drift {
    stats::DivergenceSummary kld;  // nats per token; exact when k covers the vocabulary
    double top1_agreement = 0.0;  // share of positions where both predict the same token
    double rms_delta_p = 0.0;  // root mean square change of the actual next token's probability
    double perplexity = 0.0;  // the variant's
    double nll_sum = 0.0;  // the variant's, in nats, over the positions
    double reference_perplexity = 0.0;
    std::size_t positions = 0;
};

// Drift's one JSON form: {"kld": {mean, median, p90, p99, max, n}, "top1_agreement", "rms_delta_p",
// "perplexity", "nll_sum", "reference_perplexity", "positions"}.
void to_json(nlohmann::json & j, const Drift & d);
void from_json(const nlohmann::json & j, Drift & d);

// Engine options for passes over whole chunks of `context` tokens scored at scored_position
// (perplexity, drift, a base's predictions) with a model of `vocab_size` tokens. llama.cpp keeps
// the logits of a batch's scored positions twice (its graph's output and its copy), a row of the
// whole vocabulary each, so a batch takes as many whole chunks as 512 tokens hold while those rows
// stay within 32 MiB, and at least one (at 128 tokens: two chunks at a 49k vocabulary, one at
// 128k or more); the KV cache holds as many sequences. Fewer, larger calls are faster where the
// cores are shared: each call's threads meet at a barrier per operation. Whole chunks, as
// llama-perplexity batches them: a chunk cut between two calls gives other last digits.
engine::LlamaEngineOptions chunk_engine_options(const std::filesystem::path & model, std::uint64_t vocab_size,
                                                int threads, int context);

// Whether position `pos` of a chunk of `length` tokens is scored: from the middle of each chunk
// on, as llama-perplexity does, so every scored token has at least half a context before it.
bool scored_position(std::size_t pos, std::size_t length);

// `k` <= 0 keeps the whole vocabulary (exact KLD, up to the 16-bit rounding of the stored values).
// `progress`: a line per tenth of the positions on stderr, with the time left.
Reference record_reference(engine::LlamaEngine & original, std::vector<std::vector<engine::Token>> chunks, int k,
                           bool progress = false);
Drift measure_drift(const Reference & reference, engine::LlamaEngine & variant, bool progress = false);

// A reference on disk (the "base file"), so the original need not be run again: a versioned header,
// the chunks' tokens and the compact top-k rows above, with 16-bit token ids when the vocabulary
// fits in 16 bits and 32-bit ones otherwise. llama-perplexity's --kl-divergence-base file keeps every
// logit in 16 bits instead: at a 128k vocabulary about 250 KiB per position against 0.4 KiB at
// k = 64. Written atomically; loading throws switchyard::Error naming the file when it is not a
// switchyard base file (llama-perplexity's included), of another format version, truncated or corrupt.
void save_reference(const Reference & reference, const std::filesystem::path & path);
Reference load_reference(const std::filesystem::path & path);

// The format version save_reference writes; the first 8 bytes of a base file are "SYREF" and it in
// three digits ("SYREF002").
inline constexpr int kReferenceFormat = 2;

}  // namespace switchyard::eval
