#include "serve/remote_backend.h"

#include "serve/hangup_watcher.h"
#include "support/error.h"

#include <cstdlib>
#include <functional>
#include <optional>
#include <regex>
#include <thread>

namespace switchyard::serve {

using nlohmann::json;

namespace {

std::string upstream_message(const std::string & body) {
    try {
        const json j = json::parse(body);
        if (j.contains("error") && j["error"].is_object() && j["error"].contains("message")) return j["error"]["message"].get<std::string>();
    } catch (const json::exception &) {
    }
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
        if (part.is_object() && part.contains("content") && part["content"].is_string()) text = part["content"].get<std::string>();
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

RemoteBackend::RemoteBackend(const model::PortfolioModel & entry, int timeout_ms) : timeout_ms_(timeout_ms), parallel_(std::max(1, entry.parallel)) {
    static const std::regex url(R"(^(https?://[^/]+)(/.*)?$)");
    std::smatch m;
    if (!std::regex_match(entry.endpoint, m, url)) throw Error(entry.name + ": endpoint '" + entry.endpoint + "' is not an http(s) URL");
    origin_ = m[1];
    prefix_ = m[2];
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    root_prefix_ = prefix_.ends_with("/v1") ? prefix_.substr(0, prefix_.size() - 3) : prefix_;
    remote_model_ = entry.remote_model.empty() ? entry.name : entry.remote_model;
    if (!entry.api_key_env.empty()) {
        const char * key = std::getenv(entry.api_key_env.c_str());
        if (key == nullptr || *key == 0) throw Error(entry.name + ": the environment variable " + entry.api_key_env + " (api_key_env) is not set");
        api_key_ = key;
    }
    pool_ = std::make_shared<engine::HttpClientPool>(origin_, api_key_, std::chrono::milliseconds(timeout_ms_),
                                                     std::min(std::chrono::milliseconds(timeout_ms_), std::chrono::milliseconds(5000)));
}

std::shared_ptr<Stream> RemoteBackend::start(const ApiRequest & request, const GenerationInput & input, const std::function<bool()> & client_gone) {
    auto stream = std::make_shared<Stream>();
    json body = request.body;
    body["model"] = remote_model_;
    // The client's max_tokens / max_completion_tokens go as sent; none sent, none added (an
    // injected default can exceed what the server's context leaves, and vLLM then refuses).
    body.erase("metadata");  // switchyard's routing hint, not the upstream's business
    // One choice of the client's request (a batch or n > 1 is split by the gateway): its prompt and seed.
    body.erase("n");
    if (!input.chat) body["prompt"] = input.prompt_tokens.empty() ? json(input.prompt) : json(input.prompt_tokens);
    if (body.contains("seed") && request.n > 1) body["seed"] = input.sampling.seed;
    const bool streamed = request.stream;
    body["stream"] = streamed;
    if (streamed) {
        body["stream_options"] = {{"include_usage", true}};
    } else {
        body.erase("stream_options");
    }
    const bool chat = input.chat;
    if (input.logprobs >= 0) {
        if (chat) {
            body["logprobs"] = true;
            if (input.logprobs > 0) body["top_logprobs"] = input.logprobs;
        } else {
            body["logprobs"] = input.logprobs;
        }
    }
    const std::string path = prefix_ + (chat ? "/chat/completions" : "/completions");
    ++*in_flight_;
    // Owns copies of everything it needs: a streaming exchange runs on its own thread, and the
    // backend may be swapped out meanwhile. `client_gone` lives as long as this call, which
    // waits for a whole answer; a stream is cancelled by its reader instead.
    const std::function<bool()> * gone = streamed || !client_gone ? nullptr : &client_gone;
    auto exchange = [stream, origin = origin_, pool = pool_, path, payload = body.dump(), chat, streamed, counter = in_flight_, gone] {
        auto connection = pool->take();
        Generation g;
        std::string buffer;
        std::string error_body;
        bool finished = false;
        const auto receive = [&](int status, std::string_view data) {
            if (stream->cancelled()) return false;
            if (status != 200) {
                error_body.append(data.substr(0, 4096 - std::min<std::size_t>(error_body.size(), 4096)));
                return true;
            }
            buffer.append(data);
            if (!streamed) return true;
            std::size_t eol;
            while ((eol = buffer.find('\n')) != std::string::npos) {
                std::string line = buffer.substr(0, eol);
                buffer.erase(0, eol + 1);
                if (!line.empty() && line.back() == '\r') line.pop_back();
                if (!line.starts_with("data:")) continue;
                std::string_view data_part = std::string_view(line).substr(5);
                while (!data_part.empty() && data_part.front() == ' ') data_part.remove_prefix(1);
                if (data_part == "[DONE]") {
                    finished = true;
                    continue;
                }
                try {
                    json chunk = json::parse(data_part);
                    std::string piece = absorb(chunk, chat, g);
                    stream->push_piece(std::move(piece), std::move(chunk));
                } catch (const json::exception &) {
                    stream->fail(Failure::failed, "the remote model sent a chunk that is not JSON");
                    return false;
                }
            }
            return true;
        };
        // A whole answer blocks this thread in the exchange: the shared watcher asks meanwhile
        // whether the client left, and if so fails the stream and shuts the upstream socket, so
        // a long generation stops running for nobody. A stopped connection is not reused.
        std::optional<HangupWatcher::Watch> watch;
        if (gone != nullptr) {
            watch.emplace(HangupWatcher::shared().watch(std::ref(*gone), [stream, upstream = connection.get()] {
                stream->fail(Failure::client_gone, "the client hung up");
                stream->cancel();
                upstream->stop();
            }));
        }
        const engine::HttpResult result = connection->exchange({.method = "POST", .target = path, .body = payload, .event_stream = streamed}, receive);
        watch.reset();  // from here on the watcher no longer touches the connection
        const int status = result.status;
        --*counter;
        if (stream->cancelled()) return;
        pool->give_back(std::move(connection));
        if (result && status == 200 && !streamed) {
            try {
                g.upstream = json::parse(buffer);
                absorb(g.upstream, chat, g);
                finished = true;
            } catch (const json::exception &) {
                stream->fail(Failure::failed, origin + path + ": the answer is not JSON");
                return;
            }
        }
        if (!result) {
            stream->fail(result.failure == engine::HttpFailure::timeout ? Failure::timeout : Failure::failed,
                         origin + path + ": " + result.why());
        } else if (status != 200) {
            const std::string said = "the remote model answered " + std::to_string(status) + ": " + upstream_message(error_body);
            switch (upstream_fault(status)) {
                case Failure::rejected: stream->fail(Failure::rejected, said, status); break;
                case Failure::failed:
                    stream->fail(Failure::failed, status / 100 == 4 ? said + " (a setting of this gateway's: endpoint, remote_model or api_key_env)" : said);
                    break;
                default: stream->fail(upstream_fault(status), said); break;
            }
        } else if (!finished) {
            stream->fail(Failure::failed, origin + path + (streamed ? ": the stream ended before [DONE]" : ": no answer"));
        } else {
            stream->finish(std::move(g));
        }
    };
    // A whole answer is fetched on the caller's thread: a thread start and two hand-offs per
    // request cost more than the gateway's whole overhead. Its deadline is the client's read
    // timeout (request_timeout_ms); a client that hangs up meanwhile is noticed by the shared
    // HangupWatcher within its period.
    if (streamed) {
        std::thread(std::move(exchange)).detach();
    } else {
        exchange();
    }
    return stream;
}

nlohmann::json RemoteBackend::post_json(const std::string & path, const nlohmann::json & body) const {
    const engine::HttpResult res = pool_->send({.method = "POST", .target = path, .body = body.dump()});
    if (!res) throw ApiError{502, origin_ + path + ": " + engine::describe(res.failure), "backend_error", {}, "backend_unreachable"};
    if (res.status != 200) throw ApiError{res.status >= 500 ? 502 : res.status, "the remote model answered: " + upstream_message(res.body), "backend_error", {}, {}};
    try {
        return json::parse(res.body);
    } catch (const json::exception &) {
        throw ApiError{502, origin_ + path + ": the answer is not JSON", "backend_error", {}, {}};
    }
}

std::vector<engine::ScoreResult> RemoteBackend::score_prompts(const std::vector<std::vector<engine::Token>> &, int) {
    throw bad_request("'echo' with 'logprobs' needs an in-process model: send it to the remote server directly", "echo");
}

std::vector<engine::Token> RemoteBackend::tokenize(const std::string & text, bool add_special, bool parse_special) {
    const json answer = post_json(root_prefix_ + "/tokenize", {{"model", remote_model_}, {"content", text}, {"prompt", text}, {"add_special", add_special},
                                                             {"add_special_tokens", add_special}, {"parse_special", parse_special}});
    try {
        return answer.at("tokens").get<std::vector<engine::Token>>();
    } catch (const json::exception &) {
        throw ApiError{502, "the remote model's /tokenize answer has no token list", "backend_error", {}, {}};
    }
}

std::string RemoteBackend::detokenize(const std::vector<engine::Token> & tokens) {
    const json answer = post_json(root_prefix_ + "/detokenize", {{"model", remote_model_}, {"tokens", tokens}});
    const json & text = answer.contains("content") ? answer["content"] : answer.value("prompt", json());
    if (!text.is_string()) throw ApiError{502, "the remote model's /detokenize answer has no text", "backend_error", {}, {}};
    return text.get<std::string>();
}

std::string RemoteBackend::token_text(engine::Token token) { return detokenize({token}); }

}  // namespace switchyard::serve
