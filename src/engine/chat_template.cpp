// Compiled on its own (not in the engine's unity unit): llama.cpp's common headers are on this
// file's include path only, where their short names (log.h, json.h) cannot shadow anyone's.
#include "engine/chat_template.h"

#include <fmt/format.h>
#include <cctype>
#include <llama.h>

#if SWITCHYARD_LLAMA_COMMON
#include <chat.h>
#include <json-schema-to-grammar.h>
#endif

namespace switchyard::engine {

#if SWITCHYARD_LLAMA_COMMON

struct ChatTemplate::Impl {
    common_chat_templates_ptr templates;
    std::map<std::string, bool> caps;
    const llama_vocab * vocab = nullptr;
};

struct AnswerParser::Impl {
    common_chat_parser_params params;
};

ChatAnswer AnswerParser::parse(const std::string & text, bool complete) const {
    common_chat_msg msg;
    try {
        msg = common_chat_parse(text, !complete, impl_->params);
    } catch (const std::exception &) {
        // Where llama-server answers 500, the model's text still makes an answer: it goes out as text.
        return {.content = text, .tool_calls = {}};
    }
    ChatAnswer out{.content = std::move(msg.content), .tool_calls = {}};
    for (auto & c : msg.tool_calls)
        out.tool_calls.push_back(
            {.id = std::move(c.id), .name = std::move(c.name), .arguments = std::move(c.arguments)});
    return out;
}

std::unique_ptr<ChatTemplate> ChatTemplate::for_model(const llama_model * model) {
    if (llama_model_chat_template(model, nullptr) == nullptr && llama_model_chat_template(model, "tool_use") == nullptr)
        return nullptr;
    auto impl = std::make_unique<Impl>();
    try {
        impl->templates = common_chat_templates_init(model, "");
    } catch (const std::exception & e) {
        throw Error("the model's chat template does not parse: {}", e.what());
    }
    impl->caps = common_chat_templates_get_caps(impl->templates.get());
    impl->vocab = llama_model_get_vocab(model);
    return std::unique_ptr<ChatTemplate>(new ChatTemplate(std::move(impl)));
}

bool ChatTemplate::supports_tools() const { return impl_->caps.at("supports_tools"); }

const char * ChatTemplate::renderer() { return "jinja"; }

namespace {

// A lazy grammar's triggers as llama_sampler_init_grammar_lazy_patterns takes them: what
// common_sampler_init does with them for llama-server.
void add_triggers(const std::vector<common_grammar_trigger> & triggers, Grammar & grammar) {
    for (const auto & t : triggers) {
        switch (t.type) {
            case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: grammar.trigger_patterns.push_back(regex_escape(t.value)); break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: grammar.trigger_patterns.push_back(t.value); break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
                const std::string & p = t.value;
                grammar.trigger_patterns.push_back(
                    p.empty() ? "^$" : (p.front() != '^' ? "^" : "") + p + (p.back() != '$' ? "$" : ""));
                break;
            }
            case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: grammar.trigger_tokens.push_back(t.token); break;
        }
    }
}

}  // namespace

ChatPrompt ChatTemplate::apply(const ChatRequest & request) const {
    common_chat_templates_inputs in;
    const bool has_tools = request.tools.is_array() && !request.tools.empty();
    if (has_tools && request.tool_choice != "none" && !supports_tools()) {
        throw UnsupportedChat(
            "this model's chat template has no place for tools (llama.cpp finds no tool support in it): "
            "'tools' cannot be used with this model");
    }
    try {
        // The same conversions llama-server applies to an OpenAI request.
        in.messages = common_chat_msgs_parse_oaicompat(common_json::parse(request.messages.dump()));
        if (has_tools) in.tools = common_chat_tools_parse_oaicompat(common_json::parse(request.tools.dump()));
        in.tool_choice = common_chat_tool_choice_parse_oaicompat(request.tool_choice);
    } catch (const std::exception & e) {
        throw UnsupportedChat(fmt::format("the chat request cannot be rendered: {}", e.what()));
    }
    if (!request.json_schema.is_null()) {
        nlohmann::json schema = request.json_schema;
        if (schema.is_object() && schema.empty()) schema["type"] = "object";  // any object, as llama-server reads it
        in.json_schema = schema.dump();
    }
    in.use_jinja = true;
    in.add_generation_prompt = true;
    in.parallel_tool_calls = impl_->caps.at("supports_parallel_tool_calls");
    common_chat_params params;
    try {
        params = common_chat_templates_apply(impl_->templates.get(), in);
    } catch (const std::invalid_argument & e) {
        throw UnsupportedChat(fmt::format("the chat template cannot render this request: {}", e.what()));
    } catch (const std::exception & e) {
        throw UnsupportedChat(fmt::format("the chat template failed on this request: {}", e.what()));
    }
    ChatPrompt out{.text = std::move(params.prompt),
                   .grammar = {.gbnf = std::move(params.grammar), .lazy = params.grammar_lazy},
                   .stop = {}};
    if (!out.grammar.gbnf.empty()) {
        add_triggers(params.grammar_triggers, out.grammar);
        if (!out.grammar.lazy) out.grammar.prefill = params.generation_prompt;
    }
    out.stop = std::move(params.additional_stops);
    // As llama-server keeps them: only those that are one token in this vocabulary (the others
    // are text already).
    for (const auto & t : params.preserved_tokens) {
        Token id = 0;
        if (llama_tokenize(impl_->vocab, t.c_str(), static_cast<std::int32_t>(t.size()), &id, 1, false, true) == 1)
            out.text_tokens.push_back(id);
    }
    if (has_tools && in.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE) {
        // The parser llama.cpp built for this request's format, as llama-server loads it (without
        // it, common_chat_parse reads everything as content).
        auto parser =
            std::make_unique<AnswerParser::Impl>(AnswerParser::Impl{.params = common_chat_parser_params(params)});
        parser->params.parser.load(params.parser);
        out.answer_parser = std::make_shared<const AnswerParser>(std::move(parser));
    }
    return out;
}

#else  // an installed llama.cpp without its common library: llama.cpp's built-in formats

// Never made here (apply refuses tools), but the type is the same.
struct AnswerParser::Impl {};

ChatAnswer AnswerParser::parse(const std::string & text, bool) const { return {.content = text, .tool_calls = {}}; }

struct ChatTemplate::Impl {
    std::string source;
    std::string bos;  // BOS as text, when the vocabulary adds one (the template must not repeat it)
};

namespace {

// A negative result: llama.cpp does not know the template.
int apply_builtin(const std::string & tmpl, const std::vector<std::pair<std::string, std::string>> & messages,
                  std::string & out) {
    std::vector<llama_chat_message> chat;
    std::size_t chars = 0;
    for (const auto & [role, content] : messages) {
        chat.push_back({role.c_str(), content.c_str()});
        chars += role.size() + content.size();
    }
    out.resize(2 * chars + 256);
    int n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, out.data(),
                                      static_cast<std::int32_t>(out.size()));
    if (n > static_cast<int>(out.size())) {
        out.resize(static_cast<std::size_t>(n));
        n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, out.data(),
                                      static_cast<std::int32_t>(out.size()));
    }
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return n;
}

}  // namespace

std::unique_ptr<ChatTemplate> ChatTemplate::for_model(const llama_model * model) {
    const char * source = llama_model_chat_template(model, nullptr);
    if (source == nullptr) return nullptr;
    std::string probe;
    if (apply_builtin(source, {{"user", "hi"}}, probe) < 0)
        return nullptr;  // unknown to llama.cpp: the plain transcript
    auto impl = std::make_unique<Impl>();
    impl->source = source;
    const llama_vocab * vocab = llama_model_get_vocab(model);
    if (llama_vocab_get_add_bos(vocab) && llama_vocab_bos(vocab) != LLAMA_TOKEN_NULL) {
        char piece[256];
        const int n = llama_token_to_piece(vocab, llama_vocab_bos(vocab), piece, sizeof piece, 0, true);
        if (n > 0) impl->bos.assign(piece, static_cast<std::size_t>(n));
    }
    return std::unique_ptr<ChatTemplate>(new ChatTemplate(std::move(impl)));
}

bool ChatTemplate::supports_tools() const { return false; }

const char * ChatTemplate::renderer() { return "llama_chat_apply_template"; }

ChatPrompt ChatTemplate::apply(const ChatRequest & request) const {
    if ((request.tools.is_array() && !request.tools.empty()) || !request.json_schema.is_null()) {
        throw UnsupportedChat(
            "'tools' and 'response_format' need llama.cpp's common library, which this build of switchyard lacks "
            "(its llama.cpp came installed without it)");
    }
    std::vector<std::pair<std::string, std::string>> messages;
    for (const auto & m : request.messages) {
        std::string text;
        if (const auto c = m.find("content"); c != m.end() && c->is_string()) {
            text = c->get<std::string>();
        } else if (c != m.end() && c->is_array()) {
            for (const auto & part : *c) text += part.value("text", "");
        }
        messages.emplace_back(m.value("role", ""), std::move(text));
    }
    ChatPrompt out;
    if (apply_builtin(impl_->source, messages, out.text) < 0)
        throw Error("llama.cpp cannot apply this model's chat template");
    if (!impl_->bos.empty() && out.text.starts_with(impl_->bos)) out.text.erase(0, impl_->bos.size());
    return out;
}

#endif

ChatTemplate::ChatTemplate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChatTemplate::~ChatTemplate() = default;

AnswerParser::AnswerParser(std::unique_ptr<const Impl> impl) : impl_(std::move(impl)) {}
AnswerParser::~AnswerParser() = default;

std::string plain_transcript(const std::vector<ChatMessage> & messages) {
    std::string text;
    for (const ChatMessage & m : messages) {
        std::string role = m.role;
        if (!role.empty()) role[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(role[0])));
        text += role + ": " + m.content + "\n";
    }
    return text + "Assistant:";
}

namespace {

// Calls `visit` with each text of a message's content: the string, or each text part's text.
template <typename Json, typename Visit>
void for_each_text(Json & message, const Visit & visit) {
    const auto c = message.find("content");
    if (c == message.end()) return;
    if (c->is_string()) {
        visit(*c);
    } else if (c->is_array()) {
        for (auto & part : *c)
            if (auto t = part.find("text"); t != part.end() && t->is_string()) visit(*t);
    }
}

}  // namespace

namespace {

// `response_format` without a chat template: the schema's grammar over the plain transcript's
// answer, as llama-server constrains a template-less model.
Grammar schema_grammar(const nlohmann::json & json_schema) {
    if (json_schema.is_null()) return {};
#if SWITCHYARD_LLAMA_COMMON
    nlohmann::json schema = json_schema;
    if (schema.is_object() && schema.empty()) schema["type"] = "object";  // json_object: any object
    try {
        return Grammar{.gbnf = json_schema_to_grammar(common_json::parse(schema.dump())),
                       .lazy = false,
                       .trigger_patterns = {},
                       .trigger_tokens = {},
                       .prefill = {}};
    } catch (const std::exception & e) {
        throw UnsupportedChat(
            fmt::format("the JSON schema in 'response_format' cannot be turned into a grammar: {}", e.what()));
    }
#else
    throw UnsupportedChat("'response_format' needs llama.cpp's common library, which this build of the engine lacks");
#endif
}

}  // namespace

ChatPrompt render_chat(const ChatTemplate * chat, ChatRequest request, const TextFilter & normalize) {
    if (chat == nullptr) {
        std::vector<ChatMessage> flat;
        for (const auto & m : request.messages) {
            ChatMessage message{.role = m.value("role", ""), .content = {}};
            for_each_text(m, [&](const nlohmann::json & text) { message.content += text.get<std::string>(); });
            flat.push_back(std::move(message));
        }
        const std::string text = plain_transcript(flat);
        return ChatPrompt{.text = normalize ? normalize(text) : text,
                          .parse_special = false,
                          .grammar = schema_grammar(request.json_schema),
                          .stop = {}};
    }
    // The contents only: the template's own text (its control tokens) stays as written.
    if (normalize) {
        for (auto & m : request.messages)
            for_each_text(m, [&](nlohmann::json & text) { text = normalize(text.get<std::string>()); });
    }
    return chat->apply(request);
}

}  // namespace switchyard::engine
