#include "serve/openai_response.h"

namespace switchyard::serve {

using nlohmann::json;

std::string json_text(const json & j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json usage_json(const Generation & g) {
    return {{"prompt_tokens", g.prompt_tokens},
            {"completion_tokens", g.completion_tokens},
            {"total_tokens", g.prompt_tokens + g.completion_tokens}};
}

const char * finish_reason(const Generation & g) {
    return !g.tool_calls.empty() && g.finish != engine::FinishReason::length ? "tool_calls"
                                                                             : finish_reason_name(g.finish);
}

json tool_call_json(const engine::ToolCall & call) {
    return {{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

json assistant_message(const Generation & g) {
    json message = {{"role", "assistant"}, {"content", g.text}};
    if (g.tool_calls.empty()) return message;
    // As OpenAI answers a call: no content unless the model also said something.
    if (g.text.empty()) message["content"] = nullptr;
    json & calls = message["tool_calls"] = json::array();
    for (const auto & call : g.tool_calls) calls.push_back(tool_call_json(call));
    return message;
}

void LegacyLogprobs::add(Backend & backend, engine::Token token, const engine::TokenLogprob * lp) {
    const std::string text = backend.token_text(token);
    tokens_.push_back(text);
    text_offset_.push_back(offset_);
    offset_ += text.size();
    if (lp == nullptr) {
        token_logprobs_.push_back(nullptr);
        top_logprobs_.push_back(nullptr);
        return;
    }
    token_logprobs_.push_back(lp->logprob);
    json top = json::object();
    for (const auto & t : lp->top)
        top.emplace(backend.token_text(t.token), t.logprob);  // first (most likely) wins on equal text
    // `logprobs: 0` asks for no alternatives; the chosen token's own entry keeps the shape clients
    // read (lm-eval takes max() over it).
    if (top.empty()) top.emplace(text, lp->logprob);
    top_logprobs_.push_back(top);
}

json LegacyLogprobs::to_json() const {
    return {{"tokens", tokens_},
            {"token_logprobs", token_logprobs_},
            {"top_logprobs", top_logprobs_},
            {"text_offset", text_offset_}};
}

namespace {

json chat_logprobs(Backend & backend, const Generation & g) {
    json content = json::array();
    for (const auto & t : g.logprobs) {
        json top = json::array();
        for (const auto & alt : t.top)
            top.push_back({{"token", backend.token_text(alt.token)}, {"logprob", alt.logprob}});
        content.push_back({{"token", backend.token_text(t.token)}, {"logprob", t.logprob}, {"top_logprobs", top}});
    }
    return {{"content", content}};
}

}  // namespace

json relayed(json upstream, const Answer & answer) {
    upstream["model"] = answer.model;
    upstream["id"] = answer.id;
    return upstream;
}

json choice_json(const ApiRequest & r, Backend & backend, const Generation & g, std::size_t index) {
    if (!g.upstream.is_null()) {
        json choice = g.upstream.value("choices", json::array()).empty() ? json::object() : g.upstream["choices"][0];
        choice["index"] = index;
        return choice;
    }
    const bool chat = r.kind == ApiRequest::Kind::chat;
    json choice = {{"index", index}, {"finish_reason", finish_reason(g)}, {"logprobs", nullptr}};
    const bool with_logprobs = r.input.logprobs >= 0 && g.has_logprobs && backend.in_process();
    if (chat) {
        choice["message"] = assistant_message(g);
        if (with_logprobs) choice["logprobs"] = chat_logprobs(backend, g);
    } else {
        choice["text"] = g.text;
        if (with_logprobs) {
            LegacyLogprobs lp;
            for (const auto & t : g.logprobs) lp.add(backend, t.token, &t);
            choice["logprobs"] = lp.to_json();
        }
    }
    return choice;
}

json whole_response(const ApiRequest & r, const Answer & a, Backend & backend, const Generation & g) {
    if (!g.upstream.is_null()) return relayed(g.upstream, a);
    return choices_response(r, a, json::array({choice_json(r, backend, g, 0)}), usage_json(g));
}

json choices_response(const ApiRequest & r, const Answer & a, json choices, json usage) {
    return {{"id", a.id},
            {"object", r.kind == ApiRequest::Kind::chat ? "chat.completion" : "text_completion"},
            {"created", a.created},
            {"model", a.model},
            {"choices", std::move(choices)},
            {"usage", std::move(usage)}};
}

ApiError failure_error(Failure failure, const std::string & message, int status, int retry_after_s) {
    switch (failure) {
        case Failure::rejected: return ApiError{status > 0 ? status : 400, message, "invalid_request_error", {}, {}};
        case Failure::overloaded:
            if (status == 503)  // a model that is not loaded and cannot be now (serve/residency.h)
                return ApiError{503,
                                "no model for this request is loaded: " + message,
                                "overloaded_error",
                                {},
                                "model_not_loaded",
                                retry_after_s};
            return ApiError{
                429, "every model for this request is busy: " + message, "overloaded_error", {}, "overloaded"};
        case Failure::timeout: return ApiError{504, message, "backend_error", {}, "timeout"};
        case Failure::client_gone:
            return ApiError{499, message, "client_closed_request", {}, {}};  // never reaches the client
        case Failure::failed: break;
    }
    return ApiError{502, message, "backend_error", {}, "backend_failed"};
}

}  // namespace switchyard::serve
