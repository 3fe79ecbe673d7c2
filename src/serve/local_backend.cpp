#include "serve/local_backend.h"

#include "support/error.h"

#include <llama.h>
#include <spdlog/spdlog.h>

namespace switchyard::serve {

namespace {

// llama.cpp's built-in template formats; a negative size means it does not know the template.
int apply_template(const std::string & tmpl, const std::vector<Message> & messages, std::string & out) {
    std::vector<llama_chat_message> chat;
    std::size_t chars = 0;
    for (const Message & m : messages) {
        chat.push_back({m.role.c_str(), m.content.c_str()});
        chars += m.role.size() + m.content.size();
    }
    out.resize(2 * chars + 256);
    int n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, out.data(), static_cast<std::int32_t>(out.size()));
    if (n > static_cast<int>(out.size())) {
        out.resize(static_cast<std::size_t>(n));
        n = llama_chat_apply_template(tmpl.c_str(), chat.data(), chat.size(), true, out.data(), static_cast<std::int32_t>(out.size()));
    }
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return n;
}

}  // namespace

LocalBackend::LocalBackend(const model::PortfolioModel & entry, int max_queue) {
    engine::ContinuousBatcher::Options options;
    options.engine.model_path = entry.path;
    options.engine.context_length = entry.context;
    options.engine.parallel = entry.parallel;
    options.engine.threads = entry.threads;
    options.engine.gpu_layers = entry.gpu_layers;
    options.max_queue = max_queue;
    batcher_ = std::make_shared<engine::ContinuousBatcher>(options);
    if (const std::string & tmpl = batcher_->chat_template(); !tmpl.empty()) {
        std::string probe;
        use_template_ = apply_template(tmpl, {{"user", "hi"}}, probe) >= 0;
        if (!use_template_) spdlog::warn("{}: llama.cpp does not know this model's chat template; chat uses the plain transcript", entry.name);
    }
}

std::string LocalBackend::render_prompt(const GenerationInput & input) const {
    if (!input.chat) return input.prompt_tokens.empty() ? input.prompt : batcher_->detokenize(input.prompt_tokens);
    if (!use_template_) return plain_transcript(input.messages);
    std::string out;
    apply_template(batcher_->chat_template(), input.messages, out);
    return out;
}

std::shared_ptr<Stream> LocalBackend::start(const ApiRequest &, const GenerationInput & input) {
    auto stream = std::make_shared<Stream>();
    engine::GenerateRequest request;
    request.prompt = render_prompt(input);
    request.max_tokens = input.max_tokens;
    request.sampling = input.sampling;
    request.stop = input.stop;
    request.logprobs = input.logprobs;
    // Checked here so an oversized or unencodable prompt is the client's 400, not a backend failure.
    try {
        const auto tokens = batcher_->tokenize(request.prompt, true);
        if (static_cast<int>(tokens.size()) >= context_length()) {
            stream->fail(Failure::rejected, "the prompt has " + std::to_string(tokens.size()) + " tokens; this model takes at most " +
                                                std::to_string(context_length() - 1) + " (its context is " + std::to_string(context_length()) + ")");
            return stream;
        }
    } catch (const Error & e) {
        stream->fail(Failure::rejected, e.what());
        return stream;
    }
    const bool want_tokens = input.logprobs >= 0;
    engine::ContinuousBatcher::Callbacks callbacks;
    callbacks.on_piece = [stream](std::string_view piece) {
        if (stream->cancelled()) return false;
        stream->push_piece(std::string(piece));
        return true;
    };
    callbacks.on_done = [stream, want_tokens](const engine::GenerateResult & result, const std::string & error) {
        if (!error.empty()) {
            stream->fail(Failure::failed, error);
            return;
        }
        Generation g;
        g.text = result.text;
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

engine::ScoreResult LocalBackend::score_prompt(const std::vector<engine::Token> & tokens, int top_k) {
    if (static_cast<int>(tokens.size()) > context_length()) {
        throw bad_request("the prompt has " + std::to_string(tokens.size()) + " tokens; this model's context is " + std::to_string(context_length()), "prompt");
    }
    for (const auto t : tokens) {
        if (t < 0 || t >= vocab_size()) throw bad_request("token id " + std::to_string(t) + " is outside the vocabulary (" + std::to_string(vocab_size()) + " tokens)", "prompt");
    }
    if (tokens.size() < 2) return {};
    const engine::ScoreRequest request{{tokens.front()}, {tokens.begin() + 1, tokens.end()}};
    return batcher_->score(std::span(&request, 1), top_k).at(0);
}

std::vector<engine::Token> LocalBackend::tokenize(const std::string & text, bool add_special) {
    try {
        return batcher_->tokenize(text, add_special);
    } catch (const Error & e) {
        throw bad_request(e.what(), "content");
    }
}

std::string LocalBackend::detokenize(const std::vector<engine::Token> & tokens) {
    for (const auto t : tokens) {
        if (t < 0 || t >= vocab_size()) throw bad_request("token id " + std::to_string(t) + " is outside the vocabulary (" + std::to_string(vocab_size()) + " tokens)", "tokens");
    }
    return batcher_->detokenize(tokens);
}

std::string LocalBackend::token_text(engine::Token token) { return batcher_->token_text(token); }
int LocalBackend::context_length() const { return batcher_->model().context_length; }
int LocalBackend::vocab_size() const { return batcher_->model().vocab_size; }

int LocalBackend::load() const {
    const auto s = batcher_->stats();
    return s.active + s.queued;
}

}  // namespace switchyard::serve
