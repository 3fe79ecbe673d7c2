#include "serve/tokenizer_api.h"

#include <memory>

namespace switchyard::serve {

using nlohmann::json;

namespace {

// The backend behind a model or route name, as a completion request would reach it first.
std::variant<std::shared_ptr<Backend>, ApiError> backend_for(const Deployment & dep, const std::string & model) {
    std::string name = model;
    if (name.empty() || dep.portfolio.find_model(name) == nullptr) {
        const model::Route * route = dep.portfolio.find_route(name.empty() ? dep.portfolio.default_route : name);
        if (route == nullptr) {
            return ApiError{404, "the model '" + model + "' does not exist here (GET /v1/models lists what does)",
                            "invalid_request_error", "model", "model_not_found"};
        }
        name = route->cascade ? route->cascade->models.front() : route->model;
    }
    return dep.backend(name);
}

}  // namespace

std::variant<json, ApiError> tokenize_answer(const Deployment & dep, std::string_view body) {
    auto parsed = parse_tokenize(body);
    if (auto * e = std::get_if<ApiError>(&parsed)) return std::move(*e);
    const auto & r = std::get<TokenizeRequest>(parsed);
    auto found = backend_for(dep, r.model);
    if (auto * e = std::get_if<ApiError>(&found)) return std::move(*e);
    Backend & backend = *std::get<std::shared_ptr<Backend>>(found);
    const auto tokens = backend.tokenize(r.content, r.add_special, r.parse_special);
    json answer = {{"tokens", tokens}, {"count", tokens.size()}};
    if (backend.context_length() > 0) answer["max_model_len"] = backend.context_length();
    return answer;
}

std::variant<json, ApiError> detokenize_answer(const Deployment & dep, std::string_view body) {
    auto parsed = parse_detokenize(body);
    if (auto * e = std::get_if<ApiError>(&parsed)) return std::move(*e);
    const auto & r = std::get<DetokenizeRequest>(parsed);
    auto found = backend_for(dep, r.model);
    if (auto * e = std::get_if<ApiError>(&found)) return std::move(*e);
    // llama-server's field and vLLM's (what lm-eval's remote tokenizer reads).
    const std::string text = std::get<std::shared_ptr<Backend>>(found)->detokenize(r.tokens);
    return json{{"content", text}, {"prompt", text}};
}

std::variant<json, ApiError> tokenizer_info(const Deployment & dep, const std::string & model) {
    auto found = backend_for(dep, model);
    if (auto * e = std::get_if<ApiError>(&found)) return std::move(*e);
    Backend & backend = *std::get<std::shared_ptr<Backend>>(found);
    const engine::EngineModel * vocab = backend.vocabulary();
    if (vocab == nullptr) {
        return bad_request("'" + (model.empty() ? dep.portfolio.default_route : model) +
                               "' runs on a remote server: ask that server for its tokenizer",
                           "model");
    }
    // Special tokens as the text /tokenize reads back.
    const auto special = [&](engine::Token t) { return t >= 0 ? json(backend.detokenize({t})) : json(nullptr); };
    json info = {{"tokenizer_class", "llama.cpp"},
                 {"bos_token", special(vocab->bos)},
                 {"eos_token", special(vocab->eos)},
                 {"bos_token_id", vocab->bos >= 0 ? json(vocab->bos) : json(nullptr)},
                 {"eos_token_id", vocab->eos >= 0 ? json(vocab->eos) : json(nullptr)},
                 {"add_bos_token", vocab->adds_bos},
                 {"model_max_length", vocab->context_length},
                 {"vocab_size", vocab->vocab_size}};
    if (const std::string t = backend.chat_template(); !t.empty()) info["chat_template"] = t;
    return info;
}

}  // namespace switchyard::serve
