// The OpenAI shapes `serve` answers with: whole answers, log-probabilities, relayed remote
// answers, and the error a backend failure becomes. Pure functions of what was generated.
#pragma once

#include "serve/api.h"
#include "serve/backend.h"

#include <nlohmann/json.hpp>

#include <ctime>
#include <string>

namespace switchyard::serve {

// JSON as text for the wire; bytes that are not UTF-8 become U+FFFD.
std::string json_text(const nlohmann::json & j);

// Everything a response needs to say about one answer.
struct Answer {
    std::string id;
    std::time_t created = 0;
    std::string model;
};

nlohmann::json usage_json(const Generation & g);

// Why the answer ended, in OpenAI's words: "tool_calls" when it ended on its own with calls.
const char * finish_reason(const Generation & g);

// One of an in-process answer's calls as OpenAI's `tool_calls` item: id, type, function{name,
// arguments}; the shape remote servers send and relayed() passes on.
nlohmann::json tool_call_json(const engine::ToolCall & call);

// An in-process chat answer's `message`: its text, and its tool calls when it made any.
nlohmann::json assistant_message(const Generation & g);

// The legacy completions `logprobs` object over tokens whose first one may have no log-probability.
class LegacyLogprobs {
public:
    void add(Backend & backend, engine::Token token, const engine::TokenLogprob * lp);
    nlohmann::json to_json() const;

private:
    nlohmann::json tokens_ = nlohmann::json::array(), token_logprobs_ = nlohmann::json::array(),
                   top_logprobs_ = nlohmann::json::array(), text_offset_ = nlohmann::json::array();
    std::size_t offset_ = 0;
};

// A remote answer or chunk as its server sent it (tool calls, refusals, its own log-probabilities
// and fields unknown here kept), under the name the client knows the model by and this
// gateway's response id (what feedback and captures refer to).
nlohmann::json relayed(nlohmann::json upstream, const Answer & answer);

// A whole chat.completion / text_completion: the remote server's own, relayed, or built from
// an in-process generation (with log-probabilities when asked for).
nlohmann::json whole_response(const ApiRequest & r, const Answer & a, Backend & backend, const Generation & g);
// One choice of an answer at `index`: an in-process generation's, or a remote answer's first choice.
nlohmann::json choice_json(const ApiRequest & r, Backend & backend, const Generation & g, std::size_t index);
// The chat.completion / text_completion around these choices.
nlohmann::json choices_response(const ApiRequest & r, const Answer & a, nlohmann::json choices, nlohmann::json usage);

// What a backend failure tells the client: `status` for the client's own errors (0: 400).
ApiError failure_error(Failure failure, const std::string & message, int status = 0, int retry_after_s = 0);

}  // namespace switchyard::serve
