// The OpenAI-compatible request and response shapes of `serve`: pure parsing and validation
// (no I/O, no model), so the parser can be unit-tested and fuzzed on its own.
#pragma once

#include "engine/chat_template.h"
#include "engine/engine.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace switchyard::serve {

// An OpenAI error object and its HTTP status: what every failure turns into on the wire.
struct ApiError {
    int status = 400;
    std::string message;
    std::string type = "invalid_request_error";
    std::string param;  // the offending field, when there is one
    std::string code;
    int retry_after_s = 0;  // > 0: sent as Retry-After (a 503 that will pass, such as a model loading)

    nlohmann::json to_json() const;
    // to_json() as text; bytes of the client's that are not UTF-8 (quoted in parse errors) become U+FFFD.
    std::string body() const;
};

ApiError bad_request(std::string message, std::string param = {});

using Message = engine::ChatMessage;

// What a backend is asked to generate: the client's request in model-independent terms.
struct GenerationInput {
    bool chat = false;
    std::vector<Message> messages;  // chat
    std::string prompt;  // completions, as text
    std::vector<engine::Token> prompt_tokens;  // completions given as token ids (then `prompt` is empty)
    int max_tokens = 16;
    engine::SamplingParams sampling;
    std::vector<std::string> stop;
    int logprobs = -1;  // as engine::GenerateRequest::logprobs
    // Chat: the messages as sent (tool calls and their ids included), `tools`, `tool_choice` and
    // `response_format`'s schema, for in-process models' chat templates.
    engine::ChatRequest chat_request;

    // The text routing rules look at: the prompt, or the messages' contents joined by newlines.
    std::string routing_text() const;
};

// One prompt of a completions request: text, or token ids (then `text` is empty).
struct Prompt {
    std::string text;
    std::vector<engine::Token> tokens;
};

struct ApiRequest {
    enum class Kind { chat, completion };
    Kind kind = Kind::chat;
    std::string model;  // as the client named it; empty: let the routes decide
    std::string task;  // metadata.task (a route name), empty when absent
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage
    bool echo = false;  // completions: answer with the prompt (and its log-probabilities)
    GenerationInput input;  // the first choice's (and, for routing, the request's)
    // Completions: every prompt sent, in order (a batch sends several; `input` holds the first).
    std::vector<Prompt> prompts;
    int n = 1;  // choices per prompt
    nlohmann::json body;  // the parsed request as sent, forwarded to remote backends

    // Choices in the answer: one per prompt and `n`, prompt by prompt (OpenAI's `index` order).
    std::size_t choice_count() const;
    // What choice `index` generates from: its prompt and, where the client set a seed, seed + its
    // place among its prompt's `n` (so the choices are not copies of one sample).
    GenerationInput choice_input(std::size_t index) const;
};

struct Limits {
    int max_tokens = 4096;
    int max_choices = 64;  // prompts x n in one request
};

// Parses a /v1/chat/completions or /v1/completions body. Bad JSON, wrong types, out-of-range
// values and invalid UTF-8 give an ApiError (status 400) naming the field.
std::variant<ApiRequest, ApiError> parse_request(ApiRequest::Kind kind, std::string_view body, const Limits & limits);

struct TokenizeRequest {
    std::string model;
    std::string content;
    bool add_special = true;
    // Text that spells a special token ("<s>") becomes that token, as Hugging Face tokenizers and
    // vLLM read it (llama-server's `parse_special`): what lm-eval's remote tokenizer relies on.
    bool parse_special = true;
};
struct DetokenizeRequest {
    std::string model;
    std::vector<engine::Token> tokens;
};
// llama-server's field names (content, add_special) and vLLM's (prompt, add_special_tokens).
std::variant<TokenizeRequest, ApiError> parse_tokenize(std::string_view body);
std::variant<DetokenizeRequest, ApiError> parse_detokenize(std::string_view body);

// The prompt of a model without a chat template: one "Role: content" line per message, then
// "Assistant:" for the model to continue (documented in docs/serve.md).
using engine::plain_transcript;

// Why generation ended, in OpenAI's words: an end-of-generation token counts as "stop".
const char * finish_reason_name(engine::FinishReason reason);

// A random "chatcmpl-..." / "cmpl-..." id.
std::string new_response_id(ApiRequest::Kind kind);
// A random "call_..." id, for a tool call whose model wrote none.
std::string new_tool_call_id();

}  // namespace switchyard::serve
