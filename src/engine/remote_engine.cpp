#include "engine/remote_engine.h"

#include "engine/http_client.h"

#include "support/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <exception>
#include <functional>
#include <regex>
#include <thread>

namespace switchyard::engine {

namespace {

using nlohmann::json;

// A non-2xx answer: the status decides whether a request is worth retrying in another form.
class HttpStatusError : public Error {
public:
    HttpStatusError(const std::string & message, int status, std::string server_message)
        : Error(message), status(status), server_message(std::move(server_message)) {}
    int status;
    std::string server_message;
};

bool is_missing(const HttpStatusError & e) { return e.status == 404 || e.status == 405; }
bool is_refused(const HttpStatusError & e) { return e.status == 400 || e.status == 422; }

// What a server wrote in an error answer: OpenAI and llama-server {"error": {"message"}}, vLLM
// {"message"}, FastAPI validation {"detail"}; otherwise the start of the body.
std::string server_message(const std::string & body) {
    try {
        const json j = json::parse(body);
        if (j.contains("error")) {
            const json & e = j["error"];
            if (e.is_object() && e.contains("message") && e["message"].is_string())
                return e["message"].get<std::string>();
            if (e.is_string()) return e.get<std::string>();
        }
        for (const char * key : {"message", "detail"}) {
            if (!j.contains(key)) continue;
            return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
        }
    } catch (const json::exception &) {}
    return body.size() > 200 ? body.substr(0, 200) + "..." : body;
}

// Reads fields out of an answer; a shape the server should not have sent becomes one clear error.
template <class F>
auto reading(const std::string & url, F && read) -> decltype(read()) {
    try {
        return read();
    } catch (const json::exception & e) {
        throw Error("{}: unexpected answer ({})", url, e.what());
    }
}

// Runs work(i) for every i < n on up to `parallel` threads. The first failure stops the rest from
// starting and is rethrown here.
void run_parallel(std::size_t n, int parallel, const std::function<void(std::size_t)> & work) {
    std::atomic<std::size_t> next = 0;
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto worker = [&] {
        for (std::size_t i; (i = next++) < n;) {
            try {
                work(i);
            } catch (...) {
                const std::lock_guard lock(failure_mutex);
                if (!failure) failure = std::current_exception();
                next = n;
            }
        }
    };
    {
        std::vector<std::jthread> threads;
        const auto helpers = std::min(n, static_cast<std::size_t>(parallel)) - (n > 0 ? 1 : 0);
        for (std::size_t t = 0; t < helpers; ++t) threads.emplace_back(worker);
        worker();
    }
    if (failure) std::rethrow_exception(failure);
}

}  // namespace

RemoteEngine::RemoteEngine(const RemoteEngineOptions & options) : options_(options) {
    static const std::regex url(R"(^(https?://[^/?#]+)(/[^?#]*)?$)", std::regex::icase);
    std::smatch m;
    if (!std::regex_match(options.endpoint, m, url))
        throw Error("endpoint '{}' is not an http:// or https:// URL", options.endpoint);
    if (options.timeout_s < 1) throw Error("the endpoint timeout must be at least one second");
    if (options.parallel < 1) throw Error("the requests in flight to an endpoint must be at least one");
    prefix_ = m[2].str();
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    if (prefix_.ends_with("/v1")) prefix_.resize(prefix_.size() - 3);
    base_url_ = m[1].str() + prefix_;
    connections_ =
        std::make_unique<HttpClientPool>(m[1].str(), options.api_key, std::chrono::seconds(options.timeout_s),
                                         std::chrono::seconds(std::min(options.timeout_s, 30)));

    info_.name = options.model;
    int context = 0;
    if (const auto models = get_optional("/v1/models")) {
        reading(base_url_ + "/v1/models", [&] {
            std::vector<std::string> ids;
            for (const auto & entry : models->at("data")) ids.push_back(entry.at("id").get<std::string>());
            auto named = std::find(ids.begin(), ids.end(), info_.name);
            if (info_.name.empty() && ids.size() == 1) named = ids.begin();
            if (named == ids.end() && !ids.empty()) {
                std::string list;
                for (const auto & id : ids) list += (list.empty() ? "" : ", ") + id;
                if (info_.name.empty())
                    throw Error("{} serves several models ({}): name one with --model", base_url_, list);
                throw Error("{} does not serve a model named '{}' (it serves: {})", base_url_, info_.name, list);
            }
            if (named == ids.end()) return;
            info_.name = *named;
            const json & entry = models->at("data").at(static_cast<std::size_t>(named - ids.begin()));
            if (entry.contains("max_model_len") && entry["max_model_len"].is_number_integer())
                context = entry["max_model_len"].get<int>();
            if (entry.contains("meta") && entry["meta"].is_object()) {
                const json & meta = entry["meta"];
                if (meta.contains("n_ctx") && meta["n_ctx"].is_number_integer()) context = meta["n_ctx"].get<int>();
                if (meta.contains("n_vocab") && meta["n_vocab"].is_number_integer())
                    info_.vocab_size = meta["n_vocab"].get<int>();
            }
        });
    }
    if (info_.name.empty())
        throw Error("{} does not list its models (GET /v1/models): name the model with --model", base_url_);
    if (context == 0) {
        if (const auto props = get_optional("/props")) {
            const json settings = props->value("default_generation_settings", json::object());
            if (settings.contains("n_ctx") && settings["n_ctx"].is_number_integer())
                context = settings["n_ctx"].get<int>();
        }
    }
    info_.context_length = options.context_length > 0 ? options.context_length : context;
    if (info_.context_length <= 0)
        throw Error("{} does not say its context length (GET /v1/models or /props): give it with --ctx", base_url_);
    const auto bos = tokenize("", true);
    info_.adds_bos = !bos.empty();
    if (info_.adds_bos) bos_ = bos.front();
}

RemoteEngine::~RemoteEngine() = default;

nlohmann::json RemoteEngine::call(const std::string & path, const nlohmann::json * body) const {
    const std::string where = base_url_ + path;
    HttpRequest request{.method = body != nullptr ? "POST" : "GET", .target = prefix_ + path};
    if (body != nullptr) request.body = body->dump(-1, ' ', false, json::error_handler_t::replace);
    const HttpResult result = connections_->send(request);
    if (!result) throw Error("{}: {}", where, result.why());
    if (result.status < 200 || result.status >= 300) {
        const std::string said = server_message(result.body);
        throw HttpStatusError(
            where + ": the server answered " + std::to_string(result.status) + (said.empty() ? "" : ": " + said),
            result.status, said);
    }
    try {
        return json::parse(result.body);
    } catch (const json::parse_error &) {
        throw Error("{}: the answer is not JSON: {}", where, server_message(result.body));
    }
}

nlohmann::json RemoteEngine::post(const std::string & path, const nlohmann::json & body) const {
    return call(path, &body);
}

std::optional<nlohmann::json> RemoteEngine::get_optional(const std::string & path) const {
    try {
        return call(path, nullptr);
    } catch (const HttpStatusError & e) {
        if (is_missing(e)) return std::nullopt;
        throw;
    }
}

std::vector<Token> RemoteEngine::tokenize(std::string_view text, bool add_special) const {
    const std::string content(text);
    // The same request in llama-server's words (content, add_special) and vLLM's (prompt, add_special_tokens).
    const json body = {{"model", info_.name},
                       {"content", content},
                       {"prompt", content},
                       {"add_special", add_special},
                       {"add_special_tokens", add_special},
                       {"parse_special", false}};
    json answer;
    try {
        answer = post("/tokenize", body);
    } catch (const HttpStatusError & e) {
        // llama-server fails this way (500, "unordered_map::at") where the vocabulary lacks a
        // character: as in process, such a text is counted apart, not the end of a run.
        if (e.status == 500)
            throw UnencodableText(base_url_ + "/tokenize: the server could not tokenize the text (" + e.server_message +
                                  ")");
        if (!is_missing(e)) throw;
        throw Error(
            "{} has no /tokenize endpoint: switchyard needs the server's token ids to fit prompts into the context and to score (llama-server, vLLM and switchyard serve offer it)",
            base_url_);
    }
    return reading(base_url_ + "/tokenize", [&] { return answer.at("tokens").get<std::vector<Token>>(); });
}

std::string RemoteEngine::detokenize(std::span<const Token> tokens) const {
    // As in LlamaEngine, a leading BOS is not part of the text.
    if (!tokens.empty() && info_.adds_bos && tokens.front() == bos_) tokens = tokens.subspan(1);
    if (tokens.empty()) return "";
    const json answer =
        post("/detokenize", {{"model", info_.name}, {"tokens", std::vector<Token>(tokens.begin(), tokens.end())}});
    return reading(base_url_ + "/detokenize", [&] {
        return (answer.contains("content") ? answer.at("content") : answer.at("prompt")).get<std::string>();
    });
}

std::string RemoteEngine::token_text(Token token) const {
    {
        const std::lock_guard lock(cache_mutex_);
        if (const auto it = text_of_token_.find(token); it != text_of_token_.end()) return it->second;
    }
    std::string text = detokenize(std::span(&token, 1));
    const std::lock_guard lock(cache_mutex_);
    return text_of_token_.emplace(token, std::move(text)).first->second;
}

std::optional<Token> RemoteEngine::token_of(const std::string & text) const {
    {
        const std::lock_guard lock(cache_mutex_);
        if (const auto it = token_of_text_.find(text); it != token_of_text_.end()) return it->second;
    }
    // SentencePiece tokenizers put a space before the text they are given, so " a" is the token
    // of "a" there; other tokenizers take " a" as it is.
    std::optional<Token> token;
    for (const std::string & candidate : {text, text.starts_with(' ') ? text.substr(1) : std::string()}) {
        if (candidate.empty()) continue;
        if (const auto ids = tokenize(candidate, false); ids.size() == 1) {
            token = ids.front();
            break;
        }
    }
    const std::lock_guard lock(cache_mutex_);
    return token_of_text_.emplace(text, token).first->second;
}

void RemoteEngine::cannot_score(const std::string & why) const {
    throw Error(
        "this backend ({}) cannot score multiple-choice items: it does not return the prompt's log-probabilities (echo with logprobs); {}",
        base_url_, why);
}

std::vector<ScoreResult> RemoteEngine::score(std::span<const ScoreRequest> requests, int top_k) {
    std::vector<ScoreResult> results(requests.size());
    run_parallel(requests.size(), options_.parallel,
                 [&](std::size_t i) { results[i] = score_one(requests[i], top_k); });
    return results;
}

ScoreResult RemoteEngine::score_one(const ScoreRequest & request, int top_k) {
    if (request.context.empty()) throw Error("score: the context must hold at least one token");
    std::vector<Token> prompt = request.context;
    prompt.insert(prompt.end(), request.continuation.begin(), request.continuation.end());
    json body = {{"model", info_.name},
                 {"prompt", prompt},
                 {"echo", true},
                 {"logprobs", std::max(top_k, 1)},
                 {"temperature", 0}};
    const std::string path = "/v1/completions";
    json answer;
    for (;;) {
        const int max_tokens = score_max_tokens_;
        body["max_tokens"] = max_tokens;
        try {
            answer = post(path, body);
            break;
        } catch (const HttpStatusError & e) {
            if (!is_refused(e)) throw;
            // Some servers generate at least one token; what they generate is ignored.
            if (max_tokens == 0) {
                score_max_tokens_ = 1;
                continue;
            }
            cannot_score("it refused the request: " + e.server_message);
        }
    }
    return reading(base_url_ + path, [&] {
        const json & logprobs = answer.at("choices").at(0).value("logprobs", json());
        if (!logprobs.is_object() || !logprobs.contains("token_logprobs") || !logprobs["token_logprobs"].is_array() ||
            logprobs["token_logprobs"].size() < prompt.size()) {
            cannot_score("its answer gives them for generated tokens only");
        }
        const json & values = logprobs["token_logprobs"];
        const json top = logprobs.value("top_logprobs", json());
        ScoreResult result;
        for (std::size_t i = 0; i < request.continuation.size(); ++i) {
            const std::size_t pos = request.context.size() + i;
            if (!values[pos].is_number())
                cannot_score("its answer has no log-probability for prompt token " + std::to_string(pos));
            TokenLogprob t{request.continuation[i], values[pos].get<float>(), {}};
            if (top_k > 0 && top.is_array() && pos < top.size() && top[pos].is_object()) {
                for (const auto & [text, logprob] : top[pos].items()) {
                    if (const auto id = token_of(text)) t.top.push_back({*id, logprob.get<float>()});
                }
                std::sort(t.top.begin(), t.top.end(),
                          [](const TopToken & a, const TopToken & b) { return a.logprob > b.logprob; });
                // vLLM adds the prompt's own token to the k best: it is past the k-th when not among them.
                if (t.top.size() > static_cast<std::size_t>(top_k)) t.top.resize(static_cast<std::size_t>(top_k));
            }
            result.tokens.push_back(std::move(t));
        }
        return result;
    });
}

std::vector<GenerateResult> RemoteEngine::generate(std::span<const GenerateRequest> requests,
                                                   const PieceCallback & on_piece) {
    std::vector<GenerateResult> results(requests.size());
    std::mutex piece_mutex;
    run_parallel(requests.size(), options_.parallel, [&](std::size_t i) {
        results[i] = generate_one(requests[i]);
        if (!on_piece) return;
        const std::lock_guard lock(piece_mutex);
        on_piece(i, results[i].text);
    });
    return results;
}

GenerateResult RemoteEngine::generate_one(const GenerateRequest & request) {
    const SamplingParams & s = request.sampling;
    json body = {
        {"model", info_.name}, {"max_tokens", request.max_tokens}, {"temperature", std::max(0.0f, s.temperature)}};
    if (options_.chat) {
        body["messages"] = json::array({{{"role", "user"}, {"content", request.prompt}}});
    } else if (!request.prompt_tokens.empty()) {
        body["prompt"] = request.prompt_tokens;
    } else {
        body["prompt"] = request.prompt;
    }
    // Truncating samplers only matter when sampling; left out otherwise, as not every server knows them.
    if (s.temperature > 0) {
        if (s.top_p < 1) body["top_p"] = s.top_p;
        if (s.top_k > 0) body["top_k"] = s.top_k;
        if (s.min_p > 0) body["min_p"] = s.min_p;
    }
    if (s.seed != 0xFFFFFFFF) body["seed"] = s.seed;
    if (!request.stop.empty()) body["stop"] = request.stop;
    const std::string path = options_.chat ? "/v1/chat/completions" : "/v1/completions";
    const json answer = post(path, body);
    return reading(base_url_ + path, [&] {
        const json & choice = answer.at("choices").at(0);
        GenerateResult r;
        const json & text = options_.chat ? choice.at("message").value("content", json()) : choice.at("text");
        if (!text.is_null()) r.text = text.get<std::string>();
        // OpenAI's "stop" covers both a stop string and the model's own end, without saying which.
        const json reason = choice.value("finish_reason", json());
        r.finish =
            reason.is_string() && reason.get<std::string>() == "stop" ? FinishReason::stop : FinishReason::length;
        if (answer.contains("usage") && answer["usage"].is_object()) {
            r.prompt_tokens = answer["usage"].value("prompt_tokens", 0);
            r.completion_tokens = answer["usage"].value("completion_tokens", 0);
        }
        return r;
    });
}

}  // namespace switchyard::engine
