// ContinuousBatcher: many concurrent generation requests over one llama.cpp context, for serving.
// Each request holds a slot (one sequence of the context); new requests join between decode steps.
#pragma once

#include "engine/engine.h"
#include "engine/llama_engine.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::engine {

// Thread-safe: submit(), cancel(), score() and the tokenizer calls may come from any thread.
// Callbacks run on the batcher's decode thread and must return quickly (and not throw).
class ContinuousBatcher {
public:
    struct Options {
        LlamaEngineOptions engine;  // engine.parallel = slots; engine.context_length = tokens per slot
        int max_queue = 64;  // requests waiting for a slot beyond this are refused
    };

    // Loads the model and starts the decode thread. Throws switchyard::Error like LlamaEngine.
    explicit ContinuousBatcher(const Options & options);
    // Cancels what is queued or running (each gets on_done with FinishReason::cancelled), joins.
    ~ContinuousBatcher();
    ContinuousBatcher(const ContinuousBatcher &) = delete;
    ContinuousBatcher & operator=(const ContinuousBatcher &) = delete;

    const EngineModel & model() const;
    // The GGUF's chat template (tokenizer.chat_template); empty when the model has none.
    const std::string & chat_template() const;
    // That template, ready to render chats (LlamaEngine::chat); nullptr when there is none.
    const ChatTemplate * chat() const;
    const std::string & chat_error() const;  // why chat() is nullptr for a model with a template
    void check_grammar(const Grammar & grammar) const;  // LlamaEngine::check_grammar
    std::vector<Token> tokenize(std::string_view text, bool add_special, bool parse_special = false) const;
    std::string detokenize(std::span<const Token> tokens, bool render_special = false) const;
    std::vector<Token> prompt_tokens(const GenerateRequest & request) const;  // LlamaEngine::prompt_tokens
    std::string token_text(Token token) const;

    struct Callbacks {
        // Each final piece of text (valid UTF-8, never part of a stop string). Return false to
        // cancel (the client went away): the slot is freed before the next decode step.
        std::function<bool(std::string_view piece)> on_piece;
        // Exactly once per accepted request: finished, cancelled, or failed (`error` non-empty,
        // e.g. the prompt does not fit the slot's context).
        std::function<void(const GenerateResult & result, const std::string & error)> on_done;
    };

    class Ticket;  // identifies an accepted request, for cancel()

    // Queues a request; it joins the running batch at the next decode step with a free slot.
    // Returns nullptr, calling nothing, when max_queue requests are already waiting.
    std::shared_ptr<Ticket> submit(GenerateRequest request, Callbacks callbacks);
    void cancel(const std::shared_ptr<Ticket> & ticket);

    // Prompt log-probabilities (for /v1/completions `echo` + `logprobs`), run on the decode
    // thread between steps; blocks the caller until done.
    std::vector<ScoreResult> score(std::span<const ScoreRequest> requests, int top_k);

    struct Stats {
        int slots = 0;
        int active = 0;  // requests holding a slot
        int queued = 0;  // requests waiting for one
        std::uint64_t prompt_tokens = 0;  // decoded so far, all requests
        std::uint64_t prompt_tokens_reused = 0;  // found already decoded in a slot (a shared start)
        std::uint64_t generated_tokens = 0;
        DraftStats draft;  // the draft model's proposals, where the model has one
    };
    Stats stats() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace switchyard::engine
