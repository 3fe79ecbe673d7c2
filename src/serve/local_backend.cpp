#include "serve/local_backend.h"

#include "engine/normalize.h"
#include "support/error.h"

#include <fmt/format.h>

#include <spdlog/spdlog.h>

namespace switchyard::serve {

LocalBackend::LocalBackend(const model::PortfolioModel & entry, int max_queue) {
    engine::ContinuousBatcher::Options options;
    options.engine.model_path = entry.path;
    options.engine.context_length = entry.context;
    options.engine.parallel = entry.parallel;
    options.engine.threads = entry.threads;
    options.engine.kv_cache = entry.kv_cache;
    options.engine.gpu_layers = entry.gpu_layers;
    options.engine.rpc = entry.rpc;
    options.engine.draft = {.model_path = entry.draft_path, .max_tokens = entry.draft_max};
    options.max_queue = max_queue;
    batcher_ = std::make_shared<engine::ContinuousBatcher>(options);
    normalize_ = entry.normalize;
    drafted_ = !entry.draft_path.empty();
    parallel_ = std::max(1, entry.parallel);
    if (!batcher_->chat_template().empty()) {
        if (batcher_->chat() == nullptr) {
            spdlog::warn("{}: {}; chat uses the plain transcript", entry.name,
                         batcher_->chat_error().empty() ? "llama.cpp does not know this model's chat template"
                                                        : batcher_->chat_error());
        } else if (std::string_view(engine::ChatTemplate::renderer()) != "jinja") {
            spdlog::info(
                "{}: chat template applied by llama_chat_apply_template (this build has no llama.cpp common library: "
                "llama.cpp's built-in formats only, no tools, no response_format)",
                entry.name);
        }
    }
}

LocalBackend::Prepared LocalBackend::prepare(const GenerationInput & input) const {
    Prepared prepared;
    engine::GenerateRequest & request = prepared.request;
    request.max_tokens = input.max_tokens;
    request.sampling = input.sampling;
    request.stop = input.stop;
    request.logprobs = input.logprobs;
    const auto normalized = [this](std::string_view text) {
        return engine::normalize_for_vocabulary([this](std::string_view t) { return batcher_->tokenize(t, false); },
                                                text);
    };
    if (!input.chat) {
        // Ids are generated from as sent; text is read as llama-server and vLLM read it, "<s>" as BOS.
        request.prompt_tokens = checked_ids(input.prompt_tokens, "prompt");
        request.prompt = normalize_ ? normalized(input.prompt) : input.prompt;
        request.parse_special = true;
        return prepared;
    }
    const engine::ChatTemplate * chat = batcher_->chat();
    if (chat == nullptr) {
        const engine::ChatRequest & c = input.chat_request;
        if (c.tools.is_array() && !c.tools.empty())
            throw bad_request("this model has no chat template, so it cannot take 'tools'", "tools");
    }
    try {
        engine::ChatPrompt prompt = engine::render_chat(
            chat, input.chat_request, normalize_ ? engine::TextFilter(normalized) : engine::TextFilter());
        request.prompt = std::move(prompt.text);
        request.parse_special = prompt.parse_special;
        request.grammar = std::move(prompt.grammar);
        request.stop.insert(request.stop.end(), prompt.stop.begin(), prompt.stop.end());
        request.text_tokens = std::move(prompt.text_tokens);
        prepared.answer_parser = std::move(prompt.answer_parser);
    } catch (const Error & e) {
        throw bad_request(e.what(), "messages");
    }
    return prepared;
}

std::vector<engine::Token> LocalBackend::checked_ids(const std::vector<engine::Token> & tokens,
                                                     const char * field) const {
    for (const auto t : tokens) {
        if (t < 0 || t >= vocab_size())
            throw bad_request(fmt::format("token id {} is outside the vocabulary ({} tokens)", t, vocab_size()), field);
    }
    return tokens;
}

std::vector<engine::Token> LocalBackend::prompt_tokens(const GenerationInput & input) const {
    const engine::GenerateRequest request = prepare(input).request;
    try {
        return batcher_->prompt_tokens(request);
    } catch (const Error & e) {
        throw bad_request(e.what(), input.chat ? "messages" : "prompt");
    }
}

std::shared_ptr<Stream> LocalBackend::start(const ApiRequest &, const GenerationInput & input,
                                            const std::function<bool()> &) {
    auto stream = std::make_shared<Stream>();
    Prepared prepared;
    engine::GenerateRequest & request = prepared.request;
    // Checked here so an oversized or unencodable prompt, or a request the model's template cannot
    // take, is the client's 400, not a backend failure.
    try {
        prepared = prepare(input);
        // A grammar llama.cpp cannot use is the request's problem (as llama-server answers 400).
        if (!request.grammar.gbnf.empty()) batcher_->check_grammar(request.grammar);
        const auto tokens = prompt_tokens(input);
        if (static_cast<int>(tokens.size()) >= context_length()) {
            stream->fail(Failure::rejected,
                         "the prompt has " + std::to_string(tokens.size()) + " tokens; this model takes at most " +
                             std::to_string(context_length() - 1) + " (its context is " +
                             std::to_string(context_length()) + ")");
            return stream;
        }
    } catch (const ApiError & e) {
        stream->fail(Failure::rejected, e.message);
        return stream;
    } catch (const Error & e) {
        stream->fail(Failure::rejected, e.what());
        return stream;
    }
    const bool want_tokens = input.logprobs >= 0;
    // Where tools were offered the answer is read whole at the end, so that a call never reaches
    // a streaming client as text: pieces are held back.
    const std::shared_ptr<const engine::AnswerParser> answer_parser = std::move(prepared.answer_parser);
    engine::ContinuousBatcher::Callbacks callbacks;
    callbacks.on_piece = [stream, hold = answer_parser != nullptr](std::string_view piece) {
        if (stream->cancelled()) return false;
        if (!hold) stream->push_piece(std::string(piece));
        return true;
    };
    callbacks.on_done = [stream, want_tokens, answer_parser](const engine::GenerateResult & result,
                                                             const std::string & error) {
        if (!error.empty()) {
            stream->fail(Failure::failed, error);
            return;
        }
        Generation g;
        g.text = result.text;
        if (answer_parser) {
            engine::ChatAnswer answer =
                answer_parser->parse(result.text, result.finish != engine::FinishReason::length);
            g.text = std::move(answer.content);
            g.tool_calls = std::move(answer.tool_calls);
            for (auto & call : g.tool_calls)
                if (call.id.empty()) call.id = new_tool_call_id();
            if (!g.text.empty()) stream->push_piece(g.text);  // the held-back text, for a streaming client
        }
        g.prompt_tokens = result.prompt_tokens;
        g.completion_tokens = result.completion_tokens;
        g.finish = result.finish;
        g.has_logprobs = want_tokens;
        g.logprobs = result.token_logprobs;
        for (const auto & t : result.token_logprobs) g.tokens.push_back(t.token);
        stream->finish(std::move(g));
    };
    const auto ticket = batcher_->submit(std::move(request), std::move(callbacks));
    if (!ticket) {
        stream->fail(Failure::overloaded, "the model's queue is full");
        return stream;
    }
    stream->set_on_cancel([weak = std::weak_ptr(batcher_), ticket] {
        if (const auto batcher = weak.lock()) batcher->cancel(ticket);
    });
    return stream;
}

std::vector<engine::ScoreResult> LocalBackend::score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                             int top_k) {
    std::vector<engine::ScoreRequest> requests;
    std::vector<std::size_t> owner;  // the prompt of each request (a one-token prompt has nothing to score)
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        const auto & tokens = prompts[i];
        if (static_cast<int>(tokens.size()) > context_length()) {
            throw bad_request(
                fmt::format("the prompt has {} tokens; this model's context is {}", tokens.size(), context_length()),
                "prompt");
        }
        checked_ids(tokens, "prompt");
        if (tokens.size() < 2) continue;
        requests.push_back({{tokens.front()}, {tokens.begin() + 1, tokens.end()}});
        owner.push_back(i);
    }
    std::vector<engine::ScoreResult> results(prompts.size());
    if (requests.empty()) return results;
    auto scored = batcher_->score(requests, top_k);
    for (std::size_t k = 0; k < owner.size(); ++k) results[owner[k]] = std::move(scored[k]);
    return results;
}

std::vector<engine::Token> LocalBackend::tokenize(const std::string & text, bool add_special, bool parse_special) {
    try {
        return batcher_->tokenize(text, add_special, parse_special);
    } catch (const Error & e) {
        throw bad_request(e.what(), "content");
    }
}

std::string LocalBackend::detokenize(const std::vector<engine::Token> & tokens) {
    return batcher_->detokenize(checked_ids(tokens, "tokens"), true);
}

std::string LocalBackend::token_text(engine::Token token) { return batcher_->token_text(token); }
int LocalBackend::context_length() const { return batcher_->model().context_length; }
int LocalBackend::vocab_size() const { return batcher_->model().vocab_size; }

std::optional<engine::DraftStats> LocalBackend::draft_stats() const {
    if (!drafted_) return std::nullopt;
    return batcher_->stats().draft;
}

int LocalBackend::load() const {
    const auto s = batcher_->stats();
    return s.active + s.queued;
}

}  // namespace switchyard::serve
