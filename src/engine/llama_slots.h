// LlamaEngine::Slots: generation one decode step at a time, one request per sequence of the
// engine's context, requests joining between steps; shared by generate() and ContinuousBatcher.
#pragma once

#include "engine/llama_engine.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::engine {

// Not thread-safe: one thread admits, steps and scores. The engine must not be used otherwise
// while its Slots exist (they own every sequence of its context).
class LlamaEngine::Slots {
public:
    // One request on its way through a slot.
    struct Job {
        GenerateRequest request;
        std::vector<Token> prompt;  // from prompt_tokens()
        // Each final piece of text; false cancels the request. May be empty.
        std::function<bool(std::string_view piece)> on_piece;
        // Exactly once, when the request leaves its slot; `error` is empty unless decoding failed.
        std::function<void(GenerateResult & result, const std::string & error)> on_done;
        // Set from another thread to end the request at the next step; may be null.
        std::shared_ptr<const std::atomic<bool>> cancelled;
    };

    explicit Slots(LlamaEngine & engine);
    ~Slots();
    Slots(const Slots &) = delete;
    Slots & operator=(const Slots &) = delete;

    // Tokenizes a prompt with the model's BOS rules; throws Error when it is empty or leaves no
    // room in a sequence's context to generate.
    std::vector<Token> prompt_tokens(const GenerateRequest & request) const {
        return engine_.generation_prompt(request);
    }

    int size() const;
    int active() const { return active_; }
    int free() const { return size() - active_; }

    // Puts a job in a free slot (there must be one): the one whose sequence holds the longest start
    // of its prompt (two tokens or more), which is then not decoded again (not for recurrent or
    // sliding-window models); otherwise the least recently used one.
    // One asking for no tokens finishes at once; one whose grammar llama.cpp rejects finishes at
    // once with that error.
    void admit(Job job);

    // One llama_decode: every generating slot's next token first (with the draft's proposal after
    // it, where the engine has a draft), then prompt tokens while the batch has room (a long prompt
    // is fed in batch-sized chunks, never holding the others back). Then samples, streams and
    // finishes the slots whose logits came out. Throws Error when llama_decode fails; end_all()
    // then settles the requests.
    void step();

    // Ends every active request now (shutdown, or after step() threw), reporting `error`.
    void end_all(FinishReason reason, const std::string & error);

    // LlamaEngine::score in the sequences of the free slots only (there must be one), so the
    // requests in the other slots carry on undisturbed.
    std::vector<ScoreResult> score(std::span<const ScoreRequest> requests, int top_k);

    std::uint64_t prompt_tokens_decoded() const { return prompt_decoded_; }
    std::uint64_t prompt_tokens_reused() const { return prompt_reused_; }  // found in a slot's cells instead
    std::uint64_t tokens_generated() const { return generated_; }

private:
    struct Slot;

    void finish(Slot & slot, FinishReason reason, const std::string & error = {});
    // The draft's proposals for every generating slot (engine_.drafter_ only).
    void propose();
    // Samples the slot's token from the logits at `batch_index` and streams it; may finish the slot.
    Token take(Slot & slot, int batch_index);
    // Samples along the slot's proposal, taking it as far as the sampler agrees (see the .cpp).
    void verify(Slot & slot);

    LlamaEngine & engine_;
    std::vector<Slot> slots_;
    const bool reuse_prefixes_;
    int active_ = 0;
    std::uint64_t prompt_decoded_ = 0;
    std::uint64_t prompt_reused_ = 0;
    std::uint64_t admitted_ = 0;
    std::uint64_t generated_ = 0;
};

}  // namespace switchyard::engine
