// ChatTemplate: a model's chat template turned into the prompt the model sees, rendered the way
// llama-server renders it: llama.cpp's Jinja engine (common/chat), which runs any GGUF template,
// with tools and structured output where the template supports them.
//
// A request that offered tools gets its answer read back the way llama-server reads it
// (common_chat_parse): the text outside the tool calls, and the calls.
//
// Where the engine came installed without llama.cpp's common library, the template goes through
// llama_chat_apply_template instead (llama.cpp's built-in formats only; no tools, no schemas).
#pragma once

#include "engine/engine.h"
#include "support/error.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string_view>
#include <string>
#include <vector>

struct llama_model;

namespace switchyard::engine {

// A chat request this model's template cannot express (tools for a template without them, a
// schema the grammar converter rejects): the client's error, not the model's.
class UnsupportedChat : public Error {
public:
    using Error::Error;
};

struct ChatRequest {
    // OpenAI's `messages`: role, content (a string or text parts), and for tool use an
    // assistant's tool_calls and a tool message's tool_call_id.
    nlohmann::json messages = nlohmann::json::array();
    nlohmann::json tools;  // OpenAI's `tools` (function tools), or null
    std::string tool_choice = "auto";  // "auto", "none" or "required"
    nlohmann::json json_schema;  // the answer must be JSON matching this schema; null: free text
};

// A call the model made, in OpenAI's terms.
struct ToolCall {
    std::string id;  // the model's own, where its format writes one; else empty
    std::string name;
    std::string arguments;  // JSON text, as the model wrote it
};

// An answer read back: the text outside the tool calls, and the calls.
struct ChatAnswer {
    std::string content;
    std::vector<ToolCall> tool_calls;
};

// Reads an answer back in the format the template rendered its request in.
class AnswerParser {
public:
    // `complete`: the answer ended on its own (not cut by max_tokens), so an unfinished call is
    // not expected. Text that does not match the format is returned whole as content. Thread-safe.
    ChatAnswer parse(const std::string & text, bool complete) const;

    struct Impl;
    explicit AnswerParser(std::unique_ptr<const Impl> impl);
    ~AnswerParser();

private:
    std::unique_ptr<const Impl> impl_;
};

struct ChatPrompt {
    std::string text;
    // Tokenize with special tokens parsed: a template writes control tokens as text. Never for a
    // plain transcript, where such text is the client's.
    bool parse_special = true;
    Grammar grammar;
    std::vector<std::string> stop;  // stop strings the template's format adds
    // Control tokens the answer writes as text (a format's tool-call tags): what llama-server
    // calls preserved tokens. Generation renders them instead of dropping them as control tokens.
    std::vector<Token> text_tokens;
    // Set when tools were offered: how to read the answer's tool calls back.
    std::shared_ptr<const AnswerParser> answer_parser;
};

class ChatTemplate {
public:
    // The model's template; nullptr when the GGUF has none. Throws Error when the template does
    // not parse. The model must outlive the object.
    static std::unique_ptr<ChatTemplate> for_model(const llama_model * model);
    ~ChatTemplate();
    ChatTemplate(const ChatTemplate &) = delete;
    ChatTemplate & operator=(const ChatTemplate &) = delete;

    // The prompt for `request`, the assistant's turn opened. Thread-safe. Throws UnsupportedChat
    // for what the template cannot do, Error when rendering fails.
    ChatPrompt apply(const ChatRequest & request) const;

    bool supports_tools() const;
    // "jinja" (llama.cpp's common/chat) or "llama_chat_apply_template".
    static const char * renderer();

private:
    struct Impl;
    explicit ChatTemplate(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// One turn of a chat, its content as text (text parts joined).
struct ChatMessage {
    std::string role;
    std::string content;
};

// What a model without a chat template is given: "Role: content" lines, then "Assistant:".
std::string plain_transcript(const std::vector<ChatMessage> & messages);

// A chat as the model sees it, rendered alike by serve and by task suites, so a suite measures
// what serve runs: through `chat` (only the messages' contents passed through `normalize`, when
// given), else the plain transcript (all of it normalized; text parts joined). Tools and schemas
// need a template: callers refuse them first. Throws what ChatTemplate::apply throws.
using TextFilter = std::function<std::string(std::string_view)>;
ChatPrompt render_chat(const ChatTemplate * chat, ChatRequest request, const TextFilter & normalize);

}  // namespace switchyard::engine
