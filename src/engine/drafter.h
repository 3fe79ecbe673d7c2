// Drafter: a smaller model proposing a target's next tokens for the target to verify in one decode
// (speculative decoding), through llama.cpp's common_speculative ("draft-simple").
#pragma once

#include "engine/engine.h"

#include <llama.h>

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace switchyard::engine {

struct DraftOptions {
    std::filesystem::path model_path;  // empty: no draft
    int max_tokens = 8;  // tokens drafted per step at most (llama-server's --spec-draft-n-max)
};

// What the draft contributed so far: how often the target's sampler took its proposals.
struct DraftStats {
    std::uint64_t drafted = 0;  // tokens the draft proposed
    std::uint64_t accepted = 0;  // of those, tokens the target's sampler took
    std::uint64_t steps = 0;  // verification steps (target decodes of a sequence with a draft)
    double acceptance() const { return drafted == 0 ? 0.0 : static_cast<double>(accepted) / drafted; }
};

// Whether this build can draft: it needs llama.cpp's common library, which an engine built from
// source has and an installed llama.cpp lacks.
bool drafting_available();

// "" when `draft` can draft for `target`: the same vocabulary (type, BOS/EOS rules, every token's
// text; sizes may differ by padding, up to 128 tokens, as llama.cpp's common_speculative allows),
// and a build that can draft. Otherwise one line saying why. Throws Error when a file cannot be read.
std::string draft_incompatibility(const std::filesystem::path & target, const std::filesystem::path & draft);

// Not thread-safe; used by the target engine's generation slots only. Its context holds a cell for
// every cell of the target's, kept equal by follow() and remove().
class Drafter {
public:
    // Loads the draft model as the target's was (`params`), with a context of the target's shape
    // (cells, sequences, batch), computing on the target's threads. Throws Error when the model
    // cannot be loaded, cannot draft for the target, or this build cannot draft.
    Drafter(const DraftOptions & options, const llama_model_params & params, llama_context * target,
            ggml_threadpool_t threadpool);
    ~Drafter();
    Drafter(const Drafter &) = delete;
    Drafter & operator=(const Drafter &) = delete;

    int max_tokens() const { return max_tokens_; }

    // Decodes what the target has just decoded, so that both contexts hold the same cells.
    void follow(const llama_batch & batch);

    struct Request {
        llama_seq_id seq;
        llama_pos pos;  // where `last` goes: the sequence holds positions 0..pos-1
        Token last;  // the token the target sampled last, not yet decoded
        const std::vector<Token> * history;  // the sequence's tokens, positions 0..pos-1
        int max_tokens;  // at least 1
        std::vector<Token> * draft;  // out: the proposal, possibly empty
    };
    // Proposes tokens for each request's sequence; the draft's context is left as it was, to take
    // the target's verification batch in follow(). A token outside the target's vocabulary ends a proposal.
    void draft(std::span<const Request> requests);

    // The target took `accepted` tokens of the sequence's last proposal.
    void accept(llama_seq_id seq, int accepted);

    // Drops the sequence's cells from position `from` on (-1: all), as the target drops its own.
    void remove(llama_seq_id seq, llama_pos from);
    void clear();

private:
    struct State;
    std::unique_ptr<State> state_;
    int max_tokens_ = 0;
};

}  // namespace switchyard::engine
