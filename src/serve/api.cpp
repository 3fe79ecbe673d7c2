#include "serve/api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <random>

namespace switchyard::serve {

using nlohmann::json;

nlohmann::json ApiError::to_json() const {
    return {{"error",
             {{"message", message},
              {"type", type},
              {"param", param.empty() ? json(nullptr) : json(param)},
              {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

std::string ApiError::body() const { return to_json().dump(-1, ' ', false, json::error_handler_t::replace); }

ApiError bad_request(std::string message, std::string param) {
    return ApiError{400, std::move(message), "invalid_request_error", std::move(param), {}};
}

std::string GenerationInput::routing_text() const {
    if (!chat) return prompt;
    std::string text;
    for (const Message & m : messages) {
        if (!text.empty()) text += '\n';
        text += m.content;
    }
    return text;
}

namespace {

// Field readers throw ApiError; parse_request turns the first one into its answer.
const json * field(const json & body, const char * name) {
    const auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void wrong(const std::string & name, const std::string & what) {
    throw bad_request("'" + name + "' must be " + what, name);
}

std::optional<std::string> opt_string(const json & body, const char * name) {
    const json * v = field(body, name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) wrong(name, "a string");
    return v->get<std::string>();
}

std::optional<bool> opt_bool(const json & body, const char * name) {
    const json * v = field(body, name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_boolean()) wrong(name, "true or false");
    return v->get<bool>();
}

std::optional<double> opt_number(const json & body, const char * name, double lo, double hi) {
    const json * v = field(body, name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number()) wrong(name, "a number");
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi)) wrong(name, "between " + json(lo).dump() + " and " + json(hi).dump());
    return x;
}

std::optional<long long> opt_integer(const json & body, const char * name, long long lo, long long hi) {
    const json * v = field(body, name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) wrong(name, "an integer");
    // Unsigned values beyond int64 read as negative through get<long long>; compare as double first.
    if (v->is_number_unsigned() && v->get<unsigned long long>() > static_cast<unsigned long long>(hi)) {
        wrong(name, "between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    const long long x = v->get<long long>();
    if (x < lo || x > hi) wrong(name, "between " + std::to_string(lo) + " and " + std::to_string(hi));
    return x;
}

std::string message_content(const json & content, const std::string & name) {
    if (content.is_string()) return content.get<std::string>();
    if (content.is_null()) return {};
    if (!content.is_array()) wrong(name, "a string or a list of text parts");
    // Text parts are joined; images and audio cannot be read by the models served here.
    std::string text;
    for (std::size_t i = 0; i < content.size(); ++i) {
        const json & part = content[i];
        const std::string part_name = name + "[" + std::to_string(i) + "]";
        if (!part.is_object()) wrong(part_name, "an object");
        const auto type = opt_string(part, "type");
        if (type != "text")
            throw bad_request("'" + part_name + ".type' must be \"text\": the served models read text only",
                              part_name + ".type");
        const auto part_text = opt_string(part, "text");
        if (!part_text) wrong(part_name + ".text", "a string");
        text += *part_text;
    }
    return text;
}

std::vector<Message> parse_messages(const json & body) {
    const json * v = field(body, "messages");
    if (v == nullptr) throw bad_request("'messages' is required", "messages");
    if (!v->is_array() || v->empty()) wrong("messages", "a non-empty list");
    std::vector<Message> messages;
    for (std::size_t i = 0; i < v->size(); ++i) {
        const json & m = (*v)[i];
        const std::string name = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) wrong(name, "an object");
        const auto role = opt_string(m, "role");
        if (!role) throw bad_request("'" + name + ".role' is required", name + ".role");
        static const char * const roles[] = {"system", "developer", "user", "assistant", "tool"};
        if (std::find(std::begin(roles), std::end(roles), *role) == std::end(roles)) {
            wrong(name + ".role", "one of system, developer, user, assistant, tool");
        }
        messages.push_back(
            {*role, m.contains("content") ? message_content(m["content"], name + ".content") : std::string()});
    }
    return messages;
}

// `tools`, `tool_choice` and `response_format`: checked for shape here; whether the model can
// honour them is the backend's to say (a chat template without tools answers 400 there).
engine::ChatRequest parse_chat_request(const json & body) {
    engine::ChatRequest chat;
    chat.messages = body.at("messages");
    if (const json * tools = field(body, "tools")) {
        if (!tools->is_array()) wrong("tools", "a list of tools");
        for (std::size_t i = 0; i < tools->size(); ++i) {
            const json & t = (*tools)[i];
            const std::string name = "tools[" + std::to_string(i) + "]";
            if (!t.is_object() || opt_string(t, "type") != "function") wrong(name + ".type", "\"function\"");
            const json * f = field(t, "function");
            if (f == nullptr || !f->is_object()) wrong(name + ".function", "an object");
            if (!opt_string(*f, "name"))
                throw bad_request("'" + name + ".function.name' is required", name + ".function.name");
        }
        chat.tools = *tools;
    }
    if (const json * choice = field(body, "tool_choice")) {
        if (choice->is_object()) {
            throw bad_request(
                "'tool_choice' naming one function is not supported; use \"auto\", \"none\" or \"required\"",
                "tool_choice");
        }
        if (!choice->is_string() || (*choice != "auto" && *choice != "none" && *choice != "required")) {
            wrong("tool_choice", "\"auto\", \"none\" or \"required\"");
        }
        chat.tool_choice = choice->get<std::string>();
        if (chat.tool_choice == "required" && chat.tools.empty())
            throw bad_request("'tool_choice' \"required\" needs 'tools'", "tool_choice");
    }
    if (const json * format = field(body, "response_format")) {
        if (!format->is_object()) wrong("response_format", "an object");
        const std::string type = opt_string(*format, "type").value_or("");
        if (type == "json_object") {
            chat.json_schema = json::object();
        } else if (type == "json_schema") {
            const json * spec = field(*format, "json_schema");
            if (spec == nullptr || !spec->is_object()) wrong("response_format.json_schema", "an object");
            const json * schema = field(*spec, "schema");
            if (schema != nullptr && !schema->is_object()) wrong("response_format.json_schema.schema", "an object");
            chat.json_schema = schema != nullptr ? *schema : json::object();
        } else if (type != "text") {
            wrong("response_format.type", "\"text\", \"json_object\" or \"json_schema\"");
        }
    }
    return chat;
}

engine::Token token_id(const json & t, const char * name) {
    if (!t.is_number_integer() || t.get<long long>() < 0 || t.get<long long>() > 0x7fffffff)
        wrong(name, "a string, a list of token ids, or a list of either");
    return static_cast<engine::Token>(t.get<long long>());
}

// A string, a list of token ids, or a batch: a list of strings or of token-id lists (what
// lm-eval's local-completions sends, a one-element batch included).
std::vector<Prompt> parse_prompts(const json & body) {
    const json * v = field(body, "prompt");
    if (v == nullptr) throw bad_request("'prompt' is required", "prompt");
    if (v->is_string()) return {Prompt{v->get<std::string>(), {}}};
    if (!v->is_array() || v->empty()) wrong("prompt", "a string, a list of token ids, or a non-empty list of either");
    std::vector<Prompt> prompts;
    if ((*v)[0].is_number()) {
        Prompt p;
        for (const json & t : *v) p.tokens.push_back(token_id(t, "prompt"));
        return {p};
    }
    for (std::size_t i = 0; i < v->size(); ++i) {
        const json & one = (*v)[i];
        const std::string name = "prompt[" + std::to_string(i) + "]";
        if (one.is_string()) {
            prompts.push_back({one.get<std::string>(), {}});
            continue;
        }
        if (!one.is_array() || one.empty()) wrong(name, "a string or a non-empty list of token ids");
        Prompt p;
        for (const json & t : one) p.tokens.push_back(token_id(t, "prompt"));
        prompts.push_back(std::move(p));
    }
    return prompts;
}

std::vector<std::string> parse_stop(const json & body) {
    const json * v = field(body, "stop");
    if (v == nullptr) return {};
    if (v->is_string()) return {v->get<std::string>()};
    if (!v->is_array() || v->size() > 16) wrong("stop", "a string or a list of up to 16 strings");
    std::vector<std::string> stop;
    for (const json & s : *v) {
        if (!s.is_string() || s.get<std::string>().empty())
            wrong("stop", "a string or a list of up to 16 non-empty strings");
        stop.push_back(s.get<std::string>());
    }
    return stop;
}

// Deeper than any real request (tool schemas included). nlohmann parses deep input without
// recursion, but copying, serializing and destroying a value recurse once per level: half a
// million levels in a 1 MiB body would overflow a worker's stack. Counted before parsing, in one
// pass over the bytes.
constexpr int kMaxJsonDepth = 64;

bool nests_deeper_than(std::string_view text, int limit) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

json parse_object(std::string_view text) {
    if (nests_deeper_than(text, kMaxJsonDepth))
        throw bad_request(fmt::format("the body nests arrays and objects deeper than {} levels", kMaxJsonDepth));
    json body;
    try {
        body = json::parse(text);
    } catch (const json::parse_error & e) {
        throw bad_request(std::string("the body is not valid JSON: ") + e.what());
    }
    if (!body.is_object()) throw bad_request("the body must be a JSON object");
    return body;
}

ApiRequest parse(ApiRequest::Kind kind, std::string_view text, const Limits & limits) {
    ApiRequest r;
    r.kind = kind;
    r.body = parse_object(text);
    const json & body = r.body;
    GenerationInput & in = r.input;
    in.chat = kind == ApiRequest::Kind::chat;
    r.model = opt_string(body, "model").value_or("");
    if (const json * meta = field(body, "metadata")) {
        if (!meta->is_object()) wrong("metadata", "an object");
        r.task = opt_string(*meta, "task").value_or("");
    }
    r.stream = opt_bool(body, "stream").value_or(false);
    if (const json * so = field(body, "stream_options")) {
        if (!so->is_object()) wrong("stream_options", "an object");
        r.include_usage = opt_bool(*so, "include_usage").value_or(false);
    }
    r.n = static_cast<int>(opt_integer(body, "n", 1, limits.max_choices).value_or(1));
    if (in.chat) {
        in.messages = parse_messages(body);
        in.chat_request = parse_chat_request(body);
    } else {
        r.prompts = parse_prompts(body);
        in.prompt = r.prompts[0].text;
        in.prompt_tokens = r.prompts[0].tokens;
        r.echo = opt_bool(body, "echo").value_or(false);
    }
    if (r.choice_count() > static_cast<std::size_t>(limits.max_choices)) {
        throw bad_request(fmt::format("{} prompts x n {} asks for {} choices; one request takes at most {}",
                                      r.prompts.size(), r.n, r.choice_count(), limits.max_choices),
                          "n");
    }
    auto max_tokens = opt_integer(body, "max_completion_tokens", 0, limits.max_tokens);
    if (!max_tokens) max_tokens = opt_integer(body, "max_tokens", 0, limits.max_tokens);
    // OpenAI's defaults: 16 for completions; chat runs until the model stops (here: the limit).
    in.max_tokens = static_cast<int>(max_tokens.value_or(in.chat ? limits.max_tokens : 16));
    if (in.max_tokens == 0 && !r.echo) wrong("max_tokens", "at least 1 (0 is only for echo: scoring the prompt)");

    engine::SamplingParams & s = in.sampling;
    s.temperature = static_cast<float>(opt_number(body, "temperature", 0, 2).value_or(1.0));
    s.top_p = static_cast<float>(opt_number(body, "top_p", 0, 1).value_or(1.0));
    s.top_k = static_cast<int>(opt_integer(body, "top_k", -1, 1 << 20).value_or(0));
    s.min_p = static_cast<float>(opt_number(body, "min_p", 0, 1).value_or(0.0));
    if (const auto seed = opt_integer(body, "seed", -(1LL << 62), 1LL << 62))
        s.seed = static_cast<std::uint32_t>(*seed);
    in.stop = parse_stop(body);

    if (in.chat) {
        if (opt_bool(body, "logprobs").value_or(false))
            in.logprobs = static_cast<int>(opt_integer(body, "top_logprobs", 0, 20).value_or(0));
    } else if (const auto lp = opt_integer(body, "logprobs", 0, 20)) {
        in.logprobs = static_cast<int>(*lp);
    }
    if (r.echo && r.stream) throw bad_request("'echo' cannot be combined with 'stream'", "echo");
    if (r.echo && r.n > 1) throw bad_request("'echo' cannot be combined with 'n' > 1", "n");
    if (r.stream && r.choice_count() > 1) {
        throw bad_request("'stream' answers one choice: send n = 1 and one prompt per streamed request",
                          r.n > 1 ? "n" : "prompt");
    }
    return r;
}

template <typename T, typename F>
std::variant<T, ApiError> catching(F && f) {
    try {
        return f();
    } catch (const ApiError & e) {
        return e;
    } catch (const json::exception & e) {
        // Only reachable through a JSON value of a shape the readers above did not expect.
        return bad_request(std::string("unreadable request: ") + e.what());
    }
}

}  // namespace

std::variant<ApiRequest, ApiError> parse_request(ApiRequest::Kind kind, std::string_view body, const Limits & limits) {
    return catching<ApiRequest>([&] { return parse(kind, body, limits); });
}

std::variant<TokenizeRequest, ApiError> parse_tokenize(std::string_view text) {
    return catching<TokenizeRequest>([&] {
        const json body = parse_object(text);
        TokenizeRequest r;
        r.model = opt_string(body, "model").value_or("");
        auto content = opt_string(body, "content");
        if (!content) content = opt_string(body, "prompt");
        if (!content) throw bad_request("'content' (or 'prompt') is required", "content");
        r.content = *content;
        auto add = opt_bool(body, "add_special");
        if (!add) add = opt_bool(body, "add_special_tokens");
        r.add_special = add.value_or(true);
        r.parse_special = opt_bool(body, "parse_special").value_or(true);
        return r;
    });
}

std::variant<DetokenizeRequest, ApiError> parse_detokenize(std::string_view text) {
    return catching<DetokenizeRequest>([&] {
        const json body = parse_object(text);
        DetokenizeRequest r;
        r.model = opt_string(body, "model").value_or("");
        const json * tokens = field(body, "tokens");
        if (tokens == nullptr || !tokens->is_array()) wrong("tokens", "a list of token ids");
        for (const json & t : *tokens) {
            if (!t.is_number_integer() || t.get<long long>() < 0 || t.get<long long>() > 0x7fffffff)
                wrong("tokens", "a list of token ids");
            r.tokens.push_back(static_cast<engine::Token>(t.get<long long>()));
        }
        return r;
    });
}

std::size_t ApiRequest::choice_count() const {
    return (kind == Kind::chat ? 1 : prompts.size()) * static_cast<std::size_t>(n);
}

GenerationInput ApiRequest::choice_input(std::size_t index) const {
    GenerationInput one = input;
    const std::size_t nth = index % static_cast<std::size_t>(n);
    if (kind == Kind::completion) {
        const Prompt & p = prompts.at(index / static_cast<std::size_t>(n));
        one.prompt = p.text;
        one.prompt_tokens = p.tokens;
    }
    if (one.sampling.seed != engine::SamplingParams{}.seed) one.sampling.seed += static_cast<std::uint32_t>(nth);
    return one;
}

const char * finish_reason_name(engine::FinishReason reason) {
    return reason == engine::FinishReason::length ? "length" : "stop";
}

namespace {

std::string random_id(std::string prefix) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    for (int i = 0; i < 24; ++i) prefix += digits[rng() % 36];
    return prefix;
}

}  // namespace

std::string new_response_id(ApiRequest::Kind kind) {
    return random_id(kind == ApiRequest::Kind::chat ? "chatcmpl-" : "cmpl-");
}

std::string new_tool_call_id() { return random_id("call_"); }

}  // namespace switchyard::serve
