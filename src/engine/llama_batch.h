// LlamaEngine::Batch: the one reusable llama_batch of an engine, sized for its batch and sequence
// limits; filled by its scoring passes (llama_engine.cpp) and its generation slots (llama_slots.cpp).
#pragma once

#include "engine/llama_engine.h"

#include <llama.h>

#include <algorithm>

namespace switchyard::engine {

struct LlamaEngine::Batch {
    llama_batch raw;
    int capacity;
    int output_capacity;  // positions with logits per call: llama.cpp asserts its n_outputs_max
    int outputs = 0;

    Batch(int tokens, int sequences, int max_outputs)
        : raw(llama_batch_init(tokens, 0, sequences)),
          capacity(tokens),
          output_capacity(std::min(tokens, max_outputs)) {}
    ~Batch() { llama_batch_free(raw); }
    Batch(const Batch &) = delete;
    Batch & operator=(const Batch &) = delete;

    void clear() {
        raw.n_tokens = 0;
        outputs = 0;
    }
    bool full() const { return raw.n_tokens >= capacity; }
    // Whether one more token fits, with logits or without: a token without logits still does when
    // the outputs are at their limit, so a chunk's unscored last token is not cut into a call of
    // its own (a call of another size gives other last digits).
    bool fits(bool logits) const { return !full() && (!logits || outputs < output_capacity); }
    int size() const { return raw.n_tokens; }

    // Adds a token and returns its index in the batch (where its logits will be, if wanted).
    int add(Token token, llama_pos pos, llama_seq_id seq, bool logits) {
        const int i = raw.n_tokens++;
        raw.token[i] = token;
        raw.pos[i] = pos;
        raw.n_seq_id[i] = 1;
        raw.seq_id[i][0] = seq;
        raw.logits[i] = logits;
        outputs += logits;
        return i;
    }
};

}  // namespace switchyard::engine
