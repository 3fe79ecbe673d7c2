#include "serve/remote_backend.h"

#include "serve/hangup_watcher.h"
#include "serve/sse_reader.h"
#include "support/error.h"

#include <cstdlib>
#include <functional>
#include <optional>
#include <regex>

namespace switchyard::serve {

using nlohmann::json;

namespace {

std::string upstream_message(const std::string & body) {
    try {
        const json j = json::parse(body);
        if (j.contains("error") && j["error"].is_object() && j["error"].contains("message"))
            return j["error"]["message"].get<std::string>();
    } catch (const json::exception &) {}
    return body.substr(0, 200);
}

// Reads one OpenAI answer (a whole response or one stream chunk) into `g`; returns its new text.
std::string absorb(const json & j, bool chat, Generation & g) {
    std::string text;
    if (j.contains("usage") && j["usage"].is_object()) {
        g.prompt_tokens = j["usage"].value("prompt_tokens", g.prompt_tokens);
        g.completion_tokens = j["usage"].value("completion_tokens", g.completion_tokens);
    }
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return text;
    const json & c = j["choices"][0];
    if (chat) {
        const json & part = c.contains("delta") ? c["delta"] : c.value("message", json::object());
        if (part.is_object() && part.contains("content") && part["content"].is_string())
            text = part["content"].get<std::string>();
    } else if (c.contains("text") && c["text"].is_string()) {
        text = c["text"].get<std::string>();
    }
    if (c.contains("finish_reason") && c["finish_reason"].is_string()) {
        g.finish = c["finish_reason"] == "length" ? engine::FinishReason::length : engine::FinishReason::stop;
    }
    if (c.contains("logprobs") && c["logprobs"].is_object()) {
        const json & lp = c["logprobs"];
        if (chat && lp.contains("content") && lp["content"].is_array()) {
            for (const json & t : lp["content"]) g.logprobs.push_back({-1, t.value("logprob", 0.0f), {}});
            g.has_logprobs = true;
        } else if (!chat && lp.contains("token_logprobs") && lp["token_logprobs"].is_array()) {
            for (const json & v : lp["token_logprobs"]) {
                if (v.is_number()) g.logprobs.push_back({-1, v.get<float>(), {}});
            }
            g.has_logprobs = true;
        }
    }
    g.text += text;
    return text;
}

// The largest event a streamed answer may send: far above any chunk of tokens, it bounds what a
// broken server can make the gateway hold.
constexpr std::size_t kMaxEventBytes = 8 << 20;

// The client's request as the server gets it: the model renamed, one choice, streamed or not as the
// client asked (with usage, to count tokens), log-probabilities in the server's own terms.
json upstream_body(const ApiRequest & request, const GenerationInput & input, const std::string & remote_model) {
    json body = request.body;
    body["model"] = remote_model;
    // The client's max_tokens / max_completion_tokens go as sent; none sent, none added (an
    // injected default can exceed what the server's context leaves, and vLLM then refuses).
    body.erase("metadata");  // switchyard's routing hint, not the upstream's business
    // One choice of the client's request (a batch or n > 1 is split by the gateway): its prompt and seed.
    body.erase("n");
    if (!input.chat) body["prompt"] = input.prompt_tokens.empty() ? json(input.prompt) : json(input.prompt_tokens);
    if (body.contains("seed") && request.n > 1) body["seed"] = input.sampling.seed;
    body["stream"] = request.stream;
    if (request.stream) {
        body["stream_options"] = {{"include_usage", true}};
    } else {
        body.erase("stream_options");
    }
    if (input.logprobs >= 0) {
        if (input.chat) {
            body["logprobs"] = true;
            if (input.logprobs > 0) body["top_logprobs"] = input.logprobs;
        } else {
            body["logprobs"] = input.logprobs;
        }
    }
    return body;
}

// One request's exchange with the server, from sending it to the stream's last event. It holds the
// backend's pool and in-flight count by reference: a streamed exchange runs on one of the
// backend's threads, which its destructor joins.
class Exchange {
public:
    struct Target {
        engine::HttpClientPool & pool;
        std::string origin;
        std::string path;
        std::string payload;  // the request body
        bool chat = false;
        bool streamed = false;
    };

    Exchange(Target target, std::shared_ptr<Stream> stream, std::atomic<int> & in_flight)
        : target_(std::move(target)), stream_(std::move(stream)), in_flight_(&in_flight) {}

    // Sends the request and feeds the stream until its end. A whole answer blocks this thread in
    // the exchange: when `client_gone` is given, the shared watcher asks it meanwhile and, once
    // the client left, fails the stream and shuts the upstream socket, so a long generation stops
    // running for nobody. A stopped connection is not reused.
    void run(const std::function<bool()> * client_gone) {
        auto connection = target_.pool.take();
        std::optional<HangupWatcher::Watch> watch;
        if (client_gone != nullptr) {
            watch.emplace(
                HangupWatcher::shared().watch(std::ref(*client_gone), [stream = stream_, upstream = connection.get()] {
                    stream->fail(Failure::client_gone, "the client hung up");
                    stream->cancel();
                    upstream->stop();
                }));
        }
        const engine::HttpResult result = connection->exchange(
            {.method = "POST", .target = target_.path, .body = target_.payload, .event_stream = target_.streamed},
            [this](int status, std::string_view data) { return receive(status, data); });
        watch.reset();  // from here on the watcher no longer touches the connection
        --*in_flight_;
        if (stream_->cancelled()) return;
        target_.pool.give_back(std::move(connection));
        settle(result);
    }

private:
    bool receive(int status, std::string_view data) {
        if (stream_->cancelled()) return false;
        if (status != 200) {
            error_body_.append(data.substr(0, 4096 - std::min<std::size_t>(error_body_.size(), 4096)));
            return true;
        }
        if (!target_.streamed) {
            body_.append(data);
            return true;
        }
        bool reading = true;
        const auto error = events_.feed(data, [&](SseEvent event) { return reading = take(event); });
        if (error) stream_->fail(Failure::failed, target_.origin + target_.path + ": " + *error);
        return reading && !error;
    }

    // One event of a streamed answer: a chunk for the stream, or the end; false when it breaks the stream.
    bool take(const SseEvent & event) {
        if (event.data == "[DONE]") {
            finished_ = true;
            return true;
        }
        try {
            json chunk = json::parse(event.data);
            std::string piece = absorb(chunk, target_.chat, answer_);
            stream_->push_piece(std::move(piece), std::move(chunk));
            return true;
        } catch (const json::exception &) {
            stream_->fail(Failure::failed, "the remote model sent a chunk that is not JSON");
            return false;
        }
    }

    // Ends the stream with the answer, or with why there is none.
    void settle(const engine::HttpResult & result) {
        const std::string where = target_.origin + target_.path;
        if (result && result.status == 200) {
            if (!target_.streamed) {
                try {
                    answer_.upstream = json::parse(body_);
                    absorb(answer_.upstream, target_.chat, answer_);
                    finished_ = true;
                } catch (const json::exception &) {
                    return stream_->fail(Failure::failed, where + ": the answer is not JSON");
                }
            } else if (auto last = events_.end()) {
                take(*last);
            }
        }
        if (!result) {
            stream_->fail(result.failure == engine::HttpFailure::timeout ? Failure::timeout : Failure::failed,
                          where + ": " + result.why());
        } else if (result.status != 200) {
            const std::string said =
                "the remote model answered " + std::to_string(result.status) + ": " + upstream_message(error_body_);
            switch (upstream_fault(result.status)) {
                case Failure::rejected: stream_->fail(Failure::rejected, said, result.status); break;
                case Failure::failed:
                    stream_->fail(Failure::failed,
                                  result.status / 100 == 4
                                      ? said + " (a setting of this gateway's: endpoint, remote_model or api_key_env)"
                                      : said);
                    break;
                default: stream_->fail(upstream_fault(result.status), said); break;
            }
        } else if (!finished_) {
            stream_->fail(Failure::failed,
                          where + (target_.streamed ? ": the stream ended before [DONE]" : ": no answer"));
        } else {
            stream_->finish(std::move(answer_));
        }
    }

    Target target_;
    std::shared_ptr<Stream> stream_;
    std::atomic<int> * in_flight_;
    SseReader events_{kMaxEventBytes};
    Generation answer_;
    std::string body_;  // a whole answer as it arrives
    std::string error_body_;  // the start of an error's body
    bool finished_ = false;  // the answer is complete: [DONE], or a whole answer read
};

}  // namespace

Failure upstream_fault(int status) {
    switch (status) {
        case 400:  // the request itself: it would fail on every model
        case 413:
        case 422: return Failure::rejected;
        case 408: return Failure::timeout;
        case 429: return Failure::overloaded;
        default: return Failure::failed;  // 401/403/404: this gateway's configuration; 5xx: the server's
    }
}

RemoteBackend::RemoteBackend(const model::PortfolioModel & entry, int timeout_ms)
    : timeout_ms_(timeout_ms), parallel_(std::max(1, entry.parallel)) {
    static const std::regex url(R"(^(https?://[^/]+)(/.*)?$)");
    std::smatch m;
    if (!std::regex_match(entry.endpoint, m, url))
        throw Error("{}: endpoint '{}' is not an http(s) URL", entry.name, entry.endpoint);
    origin_ = m[1];
    prefix_ = m[2];
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    root_prefix_ = prefix_.ends_with("/v1") ? prefix_.substr(0, prefix_.size() - 3) : prefix_;
    remote_model_ = entry.remote_model.empty() ? entry.name : entry.remote_model;
    if (!entry.api_key_env.empty()) {
        const char * key = std::getenv(entry.api_key_env.c_str());
        if (key == nullptr || *key == 0)
            throw Error("{}: the environment variable {} (api_key_env) is not set", entry.name, entry.api_key_env);
        api_key_ = key;
    }
    pool_ = std::make_unique<engine::HttpClientPool>(
        origin_, api_key_, std::chrono::milliseconds(timeout_ms_),
        std::min(std::chrono::milliseconds(timeout_ms_), std::chrono::milliseconds(5000)));
}

std::shared_ptr<Stream> RemoteBackend::start(const ApiRequest & request, const GenerationInput & input,
                                             const std::function<bool()> & client_gone) {
    auto stream = std::make_shared<Stream>();
    const bool chat = input.chat;
    Exchange exchange({.pool = *pool_,
                       .origin = origin_,
                       .path = prefix_ + (chat ? "/chat/completions" : "/completions"),
                       .payload = upstream_body(request, input, remote_model_).dump(),
                       .chat = chat,
                       .streamed = request.stream},
                      stream, in_flight_);
    ++in_flight_;
    // A whole answer is fetched on the caller's thread: a thread start and two hand-offs per
    // request cost more than the gateway's whole overhead. Its deadline is the client's read
    // timeout (request_timeout_ms); a client that hangs up meanwhile is noticed by the shared
    // HangupWatcher within its period. A stream is cancelled by its reader instead.
    if (request.stream) {
        exchanges_.spawn([exchange = std::move(exchange)]() mutable { exchange.run(nullptr); });
    } else {
        exchange.run(client_gone ? &client_gone : nullptr);
    }
    return stream;
}

nlohmann::json RemoteBackend::post_json(const std::string & path, const nlohmann::json & body) const {
    const engine::HttpResult res = pool_->send({.method = "POST", .target = path, .body = body.dump()});
    if (!res)
        throw ApiError{
            502, origin_ + path + ": " + engine::describe(res.failure), "backend_error", {}, "backend_unreachable"};
    if (res.status != 200)
        throw ApiError{res.status >= 500 ? 502 : res.status,
                       "the remote model answered: " + upstream_message(res.body),
                       "backend_error",
                       {},
                       {}};
    try {
        return json::parse(res.body);
    } catch (const json::exception &) {
        throw ApiError{502, origin_ + path + ": the answer is not JSON", "backend_error", {}, {}};
    }
}

std::vector<engine::ScoreResult> RemoteBackend::score_prompts(const std::vector<std::vector<engine::Token>> &, int) {
    throw bad_request("'echo' with 'logprobs' needs an in-process model: send it to the remote server directly",
                      "echo");
}

std::vector<engine::Token> RemoteBackend::tokenize(const std::string & text, bool add_special, bool parse_special) {
    const json answer = post_json(root_prefix_ + "/tokenize",
                                  {{"model", remote_model_},
                                   {"content", text},
                                   {"prompt", text},
                                   {"add_special", add_special},
                                   {"add_special_tokens", add_special},
                                   {"parse_special", parse_special}});
    try {
        return answer.at("tokens").get<std::vector<engine::Token>>();
    } catch (const json::exception &) {
        throw ApiError{502, "the remote model's /tokenize answer has no token list", "backend_error", {}, {}};
    }
}

std::string RemoteBackend::detokenize(const std::vector<engine::Token> & tokens) {
    const json answer = post_json(root_prefix_ + "/detokenize", {{"model", remote_model_}, {"tokens", tokens}});
    const json & text = answer.contains("content") ? answer["content"] : answer.value("prompt", json());
    if (!text.is_string())
        throw ApiError{502, "the remote model's /detokenize answer has no text", "backend_error", {}, {}};
    return text.get<std::string>();
}

std::string RemoteBackend::token_text(engine::Token token) { return detokenize({token}); }

}  // namespace switchyard::serve
