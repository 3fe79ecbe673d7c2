#include "serve/sse_writer.h"

namespace switchyard::serve {

using nlohmann::json;

namespace {

std::string event(const json & j) { return "data: " + json_text(j) + "\n\n"; }

const std::string kDone = "data: [DONE]\n\n";

}  // namespace

SseWriter::SseWriter(const ApiRequest & request, Answer answer, bool relay)
    : request_(request), answer_(std::move(answer)), relay_(relay) {}

json SseWriter::envelope(json choices) const {
    return {{"id", answer_.id},
            {"object", request_.kind == ApiRequest::Kind::chat ? "chat.completion.chunk" : "text_completion"},
            {"created", answer_.created},
            {"model", answer_.model},
            {"choices", std::move(choices)}};
}

std::string SseWriter::chunk(const std::string * piece, const char * finish, bool first) const {
    const bool chat = request_.kind == ApiRequest::Kind::chat;
    json choice = {{"index", 0}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
    if (chat) {
        json delta = json::object();
        if (first) delta["role"] = "assistant";
        if (piece) delta["content"] = *piece;
        choice["delta"] = delta;
    } else {
        choice["text"] = piece ? *piece : std::string();
        choice["logprobs"] = nullptr;
    }
    return event(envelope(json::array({choice})));
}

std::string SseWriter::opening() const {
    const std::string empty;
    return request_.kind == ApiRequest::Kind::chat && !relay_ ? chunk(&empty, nullptr, true) : std::string();
}

std::string SseWriter::piece(const Stream::Event & e) const {
    if (e.upstream.is_null()) return chunk(&e.text, nullptr, false);
    const bool usage_only =
        e.upstream.contains("choices") && e.upstream["choices"].is_array() && e.upstream["choices"].empty();
    return usage_only && !request_.include_usage ? std::string() : event(relayed(e.upstream, answer_));
}

std::string SseWriter::done(const Generation & g) const {
    if (relay_) return kDone;
    std::string out;
    // Each call whole in one chunk: the answer was read back only once complete.
    for (std::size_t i = 0; i < g.tool_calls.size(); ++i) {
        json call = tool_call_json(g.tool_calls[i]);
        call["index"] = i;
        out += event(envelope(json::array(
            {{{"index", 0}, {"finish_reason", nullptr}, {"delta", {{"tool_calls", json::array({call})}}}}})));
    }
    out += chunk(nullptr, finish_reason(g), false);
    if (request_.include_usage) {
        json usage = envelope(json::array());
        usage["usage"] = usage_json(g);
        out += event(usage);
    }
    return out + kDone;
}

std::string SseWriter::failed(const ApiError & error) const { return "data: " + error.body() + "\n\n" + kDone; }

std::string SseWriter::whole(const Generation & g) const { return chunk(&g.text, nullptr, true) + done(g); }

}  // namespace switchyard::serve
