#include "serve/capture_item.h"

namespace switchyard::serve {

using nlohmann::json;

CapturedItem captured_item(const std::string & route, const ApiRequest & r, const Answer & answer, const Generation & g,
                           double seconds) {
    CapturedItem item{.id = answer.id,
                      .route = route,
                      .model = answer.model,
                      .answer = g.text,
                      .finish_reason = finish_reason(g),
                      .latency_ms = seconds * 1000.0};
    json request = json::object();
    if (r.input.chat) {
        json messages = json::array();
        for (const auto & m : r.input.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
        request["messages"] = messages;
    } else if (!r.input.prompt_tokens.empty()) {
        request["prompt"] = r.input.prompt_tokens;
    } else {
        request["prompt"] = r.input.prompt;
    }
    request["max_tokens"] = r.input.max_tokens;
    if (!r.input.stop.empty()) request["stop"] = r.input.stop;
    request["temperature"] = r.input.sampling.temperature;
    item.request = json_text(request);
    if (g.has_logprobs) {
        json lps = json::array();
        for (const auto & t : g.logprobs) lps.push_back({{"token", t.token}, {"logprob", t.logprob}});
        item.logprobs = json_text(lps);
    }
    return item;
}

}  // namespace switchyard::serve
