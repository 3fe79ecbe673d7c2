// Engine: the one interface every module uses to tokenize, score and generate with a model.
#pragma once

#include "support/error.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::engine {

using Token = std::int32_t;

// What tokenize throws when the vocabulary cannot encode a text: a fault of that text, which a
// caller may count and skip, unlike an engine or a server that fails.
class UnencodableText : public Error {
public:
    using Error::Error;
};

struct TopToken {
    Token token;
    float logprob;
};

// Log-probability of one continuation token, with the most likely alternatives at its position.
struct TokenLogprob {
    Token token;
    float logprob;
    std::vector<TopToken> top;  // best first; empty unless top_k > 0
};

// `token`'s log-probability under raw `logits` (their log-softmax), with its top_k best
// alternatives: how scoring and generation report log-probabilities alike.
TokenLogprob token_logprob(std::span<const float> logits, Token token, int top_k);

// Score `continuation` given `context`. The context must hold at least one token (normally BOS
// plus the prompt): the first continuation token is predicted from its last position.
struct ScoreRequest {
    std::vector<Token> context;
    std::vector<Token> continuation;
};

// One item's context and the continuations to compare after it.
struct ChoiceGroup {
    std::vector<Token> context;  // at least one token (normally BOS)
    std::vector<std::vector<Token>> choices;
};

struct ScoreResult {
    std::vector<TokenLogprob> tokens;  // one per continuation token

    double total_logprob() const;
};

struct SamplingParams {
    float temperature = 0.8f;  // <= 0 means greedy (always the most likely token)
    int top_k = 40;  // <= 0 disables
    float top_p = 0.95f;  // >= 1 disables
    float min_p = 0.05f;  // <= 0 disables
    std::uint32_t seed = 0xFFFFFFFF;  // 0xFFFFFFFF picks a random seed
};

// A grammar that constrains sampling (GBNF, root rule "root"). A lazy one applies from the first
// trigger on (a tool call's opening), so the model may answer in text instead.
struct Grammar {
    std::string gbnf;  // empty: none
    bool lazy = false;
    std::vector<std::string> trigger_patterns;  // regular expressions over the generated text
    std::vector<Token> trigger_tokens;
    // Text the prompt already ends with that the grammar's first rule expects (a template's
    // opening of the assistant's turn): fed to a non-lazy grammar before sampling, as llama-server does.
    std::string prefill;
};

struct GenerateRequest {
    std::string prompt;  // tokenized with the model's BOS rules
    // The prompt as token ids (a client's `prompt: [ids]`): generated from as they are, no BOS
    // added, in place of `prompt`. In-process engines check each id against the vocabulary.
    std::vector<Token> prompt_tokens;
    // The prompt holds control tokens as text (a rendered chat template): tokenize them as such.
    bool parse_special = false;
    int max_tokens = 128;
    SamplingParams sampling;
    std::vector<std::string> stop;  // generation ends before the first occurrence of any of these
    // -1: no log-probabilities; 0: each generated token's own; k > 0: also its k best alternatives.
    // For cascades (mean token log-probability) and shadow comparison (KLD between two models).
    int logprobs = -1;
    Grammar grammar;  // in-process engines only
    // Control tokens that go into the text as written (a chat format's tool-call tags), where
    // others, such as end-of-turn tokens, leave no text. In-process engines only.
    std::vector<Token> text_tokens;
    // Generation runs on past end-of-generation tokens (which leave no text) to max_tokens: a
    // speed measurement's fixed amount of work. In-process engines only.
    bool ignore_eos = false;
};

enum class FinishReason {
    length,  // max_tokens reached, or the context is full
    stop,  // a stop string appeared (it is not part of the text)
    eos,  // the model produced an end-of-generation token
    cancelled  // the stream callback asked to stop
};

const char * to_string(FinishReason reason);

struct GenerateResult {
    std::string text;
    int prompt_tokens = 0;
    int completion_tokens = 0;
    FinishReason finish = FinishReason::length;
    std::vector<TokenLogprob> token_logprobs;  // one per generated token when logprobs >= 0
};

// Called with each piece of text as soon as it is final (valid UTF-8, not part of a possible
// stop string). `request` indexes the batch. Return false to stop that request.
using PieceCallback = std::function<bool(std::size_t request, std::string_view piece)>;

// What callers need to know about the model behind an engine.
struct EngineModel {
    std::string name;
    int context_length = 0;  // tokens per sequence this engine accepts
    int vocab_size = 0;
    bool adds_bos = false;
    Token bos = -1;  // the vocabulary's BOS and EOS tokens; -1: it has none (or it is unknown)
    Token eos = -1;
};

class Engine {
public:
    virtual ~Engine() = default;

    virtual const EngineModel & model() const = 0;

    // Text to tokens. `add_special` adds BOS (and EOS) as the model asks. Throws UnencodableText
    // naming the first character the vocabulary cannot encode.
    virtual std::vector<Token> tokenize(std::string_view text, bool add_special) const = 0;
    virtual std::string detokenize(std::span<const Token> tokens) const = 0;
    virtual std::string token_text(Token token) const = 0;

    // Log-probabilities of each request's continuation; requests run side by side in batches.
    virtual std::vector<ScoreResult> score(std::span<const ScoreRequest> requests, int top_k = 0) = 0;

    // Log-probabilities of several continuations of one context, for many items at once
    // (multiple-choice items, minimal pairs): one result list per group, one result per choice.
    // The default scores each choice as its own request; engines that can share a context's work
    // between its choices, and run several items per model call, override it.
    virtual std::vector<std::vector<ScoreResult>> score_choices(std::span<const ChoiceGroup> groups);

    // Tokens this engine has run through the model so far (0 where it cannot tell): the work a
    // scoring method really costs.
    virtual std::uint64_t tokens_decoded() const { return 0; }

    // Generates for every request, several sequences at once, streaming pieces to `on_piece`.
    virtual std::vector<GenerateResult> generate(std::span<const GenerateRequest> requests,
                                                 const PieceCallback & on_piece = {}) = 0;
};

}  // namespace switchyard::engine
