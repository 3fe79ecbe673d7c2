// ChatTemplate: a model's chat template turned into the prompt the model sees, rendered the way
// llama-server renders it: llama.cpp's Jinja engine (common/chat), which runs any GGUF template,
// with tools and structured output where the template supports them.
//
// Where the engine came installed without llama.cpp's common library, the template goes through
// llama_chat_apply_template instead (llama.cpp's built-in formats only; no tools, no schemas).
#pragma once

#include "engine/engine.h"
#include "support/error.h"

#include <nlohmann/json.hpp>

#include <memory>
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
    nlohmann::json tools;               // OpenAI's `tools` (function tools), or null
    std::string tool_choice = "auto";   // "auto", "none" or "required"
    nlohmann::json json_schema;         // the answer must be JSON matching this schema; null: free text
};

struct ChatPrompt {
    std::string text;  // tokenize with special tokens parsed (the template writes control tokens as text)
    Grammar grammar;
    std::vector<std::string> stop;  // stop strings the template's format adds
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

}  // namespace switchyard::engine
