// RemoteEngine: the Engine over an OpenAI-compatible HTTP endpoint (llama-server, vLLM, switchyard serve).
#pragma once

// What is asked of the server, exactly (a server that answers these is a full backend; the
// scoring request is optional, and without it multiple-choice and pair items cannot be scored).
// Every request carries `Authorization: Bearer KEY` when a key is given. Paths are relative to the
// endpoint URL (a trailing /v1 on it is dropped: both forms are common).
//
//   GET  /v1/models            -> {"data": [{"id": NAME, "max_model_len": N}                 (vLLM)
//                                            or {"id": NAME, "meta": {"n_ctx": N, "n_vocab": V}}]}   (llama-server)
//                                 the model must be listed when a list comes back; optional.
//   GET  /props                -> {"default_generation_settings": {"n_ctx": N}}  optional: the context
//                                 length when /v1/models does not give it.
//   POST /tokenize             {"model", "content": TEXT, "prompt": TEXT, "add_special": B, "add_special_tokens": B,
//                                "parse_special": false}
//                              -> {"tokens": [ID, ...]}     (both field styles are sent: llama-server
//                                 reads content/add_special, vLLM prompt/add_special_tokens). Required.
//   POST /detokenize           {"model", "tokens": [ID, ...]} -> {"content": TEXT} or {"prompt": TEXT}
//   POST /v1/completions       scoring: {"model", "prompt": [ID, ...], "echo": true, "logprobs": K >= 1,
//                                "max_tokens": 0, "temperature": 0}   (max_tokens 1 if 0 is refused with 400/422)
//                              -> {"choices": [{"logprobs": {"tokens": [TEXT, ...], "token_logprobs": [null, LP, ...],
//                                  "top_logprobs": [null, {TEXT: LP, ...}, ...], "text_offset": [...]}}]}
//                                 one entry per prompt token (the first has no predecessor: null);
//                                 entries past the prompt (a generated token) are ignored. llama-server
//                                 v0.5.0 ignores echo and answers {"logprobs": {"content": [...]}} for the
//                                 generated token only: it cannot score.
//   POST /v1/completions       generation: {"model", "prompt": TEXT, "max_tokens", "temperature", "top_p"?,
//                                "top_k"?, "min_p"?, "seed"?, "stop"?}
//                              -> {"choices": [{"text", "finish_reason": "stop"|"length"}],
//                                  "usage": {"prompt_tokens", "completion_tokens"}}
//   POST /v1/chat/completions  with `chat`: the same, with "messages": [{"role": "user", "content": TEXT}]
//                              -> {"choices": [{"message": {"content"}, "finish_reason"}], "usage"}
//
// Errors: a non-2xx answer's {"error": {"message"}} (OpenAI, llama-server) or {"message"} (vLLM)
// is quoted in the switchyard::Error, with the URL.

#include "engine/engine.h"

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace switchyard::engine {

struct RemoteEngineOptions {
    std::string endpoint;  // http(s)://host[:port][/prefix], with or without a trailing /v1
    std::string model;  // the server's name for the model; empty: the one model it lists
    std::string api_key;  // sent as a bearer token when not empty
    int context_length = 0;  // tokens per sequence; 0: what the server says (an error if it says nothing)
    int parallel = 4;  // requests in flight at once
    bool chat = false;  // generate through /v1/chat/completions, the prompt as one user message
    int timeout_s = 600;  // longest wait for one answer
};

class HttpClientPool;  // engine/http_client.h

class RemoteEngine final : public Engine {
public:
    // Asks the server for its model list and context length. Throws switchyard::Error when it
    // cannot be reached, does not serve the model, or cannot tokenize.
    explicit RemoteEngine(const RemoteEngineOptions & options);
    ~RemoteEngine() override;
    RemoteEngine(const RemoteEngine &) = delete;
    RemoteEngine & operator=(const RemoteEngine &) = delete;

    const EngineModel & model() const override { return info_; }
    const std::string & endpoint() const { return base_url_; }

    std::vector<Token> tokenize(std::string_view text, bool add_special) const override;
    std::string detokenize(std::span<const Token> tokens) const override;
    std::string token_text(Token token) const override;
    // Throws switchyard::Error ("cannot score multiple-choice items") when the server does not
    // return the prompt's log-probabilities.
    std::vector<ScoreResult> score(std::span<const ScoreRequest> requests, int top_k = 0) override;
    // The pieces arrive whole, once per request: answers are not streamed.
    std::vector<GenerateResult> generate(std::span<const GenerateRequest> requests,
                                         const PieceCallback & on_piece = {}) override;

private:
    // One request (GET without a body); non-2xx answers, transport failures and non-JSON answers
    // throw switchyard::Error naming the URL.
    nlohmann::json call(const std::string & path, const nlohmann::json * body) const;
    nlohmann::json post(const std::string & path, const nlohmann::json & body) const;
    // nullopt when the server has no such endpoint (404, 405).
    std::optional<nlohmann::json> get_optional(const std::string & path) const;
    ScoreResult score_one(const ScoreRequest & request, int top_k);
    GenerateResult generate_one(const GenerateRequest & request);
    // The token a top-alternative's text stands for (servers name alternatives by text); nullopt
    // when the text is not exactly one token.
    std::optional<Token> token_of(const std::string & text) const;
    [[noreturn]] void cannot_score(const std::string & why) const;

    RemoteEngineOptions options_;
    std::string prefix_;  // the endpoint URL's path, before each request's path
    std::string base_url_;  // scheme, host, port and prefix: how errors name the server
    std::unique_ptr<HttpClientPool> connections_;
    EngineModel info_;
    Token bos_ = -1;  // -1: the model adds no BOS
    std::atomic<int> score_max_tokens_ = 0;  // 1 once the server refused max_tokens 0
    mutable std::mutex cache_mutex_;
    mutable std::map<std::string, std::optional<Token>> token_of_text_;
    mutable std::map<Token, std::string> text_of_token_;
};

}  // namespace switchyard::engine
