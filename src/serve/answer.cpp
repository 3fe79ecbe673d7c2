#include "serve/answer.h"

#include "serve/fallback.h"
#include "serve/sse_writer.h"
#include "serve/stream_relay.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace switchyard::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double>(to - from).count();
}

// Which model answered, and under which route (none when the client named the model).
void name_answer(http::Response & res, const std::string & model, const std::string & route) {
    res.set_header("X-Switchyard-Model", model);
    if (!route.empty()) res.set_header("X-Switchyard-Route", route);
}

double cost_of(const Deployment & dep, const std::string & model) {
    return dep.portfolio.find_model(model)->cost_per_1k_tokens;
}

}  // namespace

void send_error(http::Response & res, const ApiError & error) {
    res.status = error.status;
    if (error.retry_after_s > 0) res.set_header("Retry-After", std::to_string(error.retry_after_s));
    res.set_content(error.body(), "application/json");
}

void answer_one(const std::shared_ptr<const Deployment> & dep, const ApiRequest & r, const GenerationInput & input,
                const Resolution & route, const http::Request & req, http::Response & res, const AnswerContext & ctx,
                Delivered delivered, std::shared_ptr<void> hold) {
    const auto error = answer_in_order(
        route.chain, route.route, &ctx.cooldown, ctx.metrics, [&](const std::string & name, bool) -> Attempt {
            const auto backend = dep->backend(name);
            const auto stream = backend->start(r, input, req.client_gone);
            StreamGuard guard{stream};
            Stream::Event first = stream->next(ctx.deadline);
            const auto first_at = Clock::now();
            if (first.kind == Stream::Event::Kind::failed) return first;
            const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
            const double cost = cost_of(*dep, name);
            if (!r.stream) {
                Generation g;
                if (first.kind == Stream::Event::Kind::done) {
                    g = std::move(first.result);
                } else {
                    // Nothing has reached the client yet, so even a failure halfway may still fall back.
                    auto rest = collect(*stream, ctx.deadline, nullptr, req.client_gone);
                    if (auto * e = std::get_if<Stream::Event>(&rest))
                        return std::move(*e);  // the guard cancels the generation
                    g = std::get<Generation>(std::move(rest));
                }
                name_answer(res, name, route.route);
                res.set_content(json_text(whole_response(r, answer, *backend, g)), "application/json");
                ctx.metrics.answered(route.route, name, g.prompt_tokens, g.completion_tokens, cost,
                                     seconds_between(ctx.started, first_at),
                                     seconds_between(ctx.started, Clock::now()));
                if (delivered) delivered(answer, std::move(g));
                return Answered{};
            }
            // Streaming: committed to this model from here on; the relay owns cancellation now.
            name_answer(res, name, route.route);
            res.set_header("Cache-Control", "no-cache");
            guard.stream = nullptr;
            Metrics & metrics = ctx.metrics;
            StreamRelay::Hooks hooks{
                .answered =
                    [&metrics, route = route.route, name, cost, started = ctx.started, first_at](const Generation & g) {
                        metrics.answered(route, name, g.prompt_tokens, g.completion_tokens, cost,
                                         seconds_between(started, first_at), seconds_between(started, Clock::now()));
                    },
                .delivered =
                    [delivered, answer](Generation g) {
                        if (delivered) delivered(answer, std::move(g));
                    },
                .failed =
                    [&metrics, route = route.route, name] {
                        metrics.attempt_failed(name);
                        metrics.route_failed(route);
                    }};
            res.set_stream("text/event-stream",
                           [relay = StreamRelay(r, answer, !backend->in_process(), stream, std::move(first),
                                                ctx.deadline, std::move(hooks)),
                            dep, hold](http::Sink & sink) mutable { relay(sink); });
            return Answered{};
        });
    if (error) send_error(res, *error);
}

void answer_choices(const Deployment & dep, const ApiRequest & r, const Resolution & route, const http::Request & req,
                    http::Response & res, const AnswerContext & ctx) {
    const auto error = answer_in_order(
        route.chain, route.route, &ctx.cooldown, ctx.metrics, [&](const std::string & name, bool) -> Attempt {
            const auto backend = dep.backend(name);
            if (r.n > backend->parallel()) {
                return bad_request(
                    fmt::format("'n' is {}; '{}' generates at most {} sequences at once (its `parallel`)", r.n, name,
                                backend->parallel()),
                    "n");
            }
            // All started before any is awaited, so an in-process model decodes them in one batch.
            std::vector<StreamGuard> streams;
            for (std::size_t i = 0; i < r.choice_count(); ++i)
                streams.emplace_back(backend->start(r, r.choice_input(i), req.client_gone));
            json choices = json::array();
            Generation total;
            Clock::time_point first_at{};
            for (std::size_t i = 0; i < streams.size(); ++i) {
                auto got = collect(*streams[i].stream, ctx.deadline, i == 0 ? &first_at : nullptr, req.client_gone);
                if (auto * e = std::get_if<Stream::Event>(&got))
                    return std::move(*e);  // the guards cancel the choices still running
                const Generation & g = std::get<Generation>(got);
                choices.push_back(choice_json(r, *backend, g, i));
                // Each prompt's tokens are counted once, whatever its n.
                if (i % static_cast<std::size_t>(r.n) == 0) total.prompt_tokens += g.prompt_tokens;
                total.completion_tokens += g.completion_tokens;
            }
            const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
            name_answer(res, name, route.route);
            res.set_content(json_text(choices_response(r, answer, std::move(choices), usage_json(total))),
                            "application/json");
            ctx.metrics.answered(route.route, name, total.prompt_tokens, total.completion_tokens, cost_of(dep, name),
                                 seconds_between(ctx.started, first_at), seconds_between(ctx.started, Clock::now()));
            return Answered{};
        });
    if (error) send_error(res, *error);
}

void answer_cascade(const Deployment & dep, const ApiRequest & r, const Resolution & route, http::Response & res,
                    const AnswerContext & ctx) {
    GenerationInput input = r.input;
    input.logprobs = std::max(input.logprobs, 0);
    // No cooldown: a cascade asks its models in the order written.
    const auto error = answer_in_order(
        route.chain, route.route, nullptr, ctx.metrics, [&](const std::string & name, bool last) -> Attempt {
            const auto backend = dep.backend(name);
            const auto stream = backend->start(r, input, {});  // a cascade runs to its end (docs/serve.md)
            StreamGuard guard{stream};
            Clock::time_point first_at{};
            auto got = collect(*stream, ctx.deadline, &first_at);
            if (auto * e = std::get_if<Stream::Event>(&got)) return std::move(*e);
            Generation g = std::get<Generation>(std::move(got));
            if (!last && should_escalate(g.logprobs, g.has_logprobs, route.cascade->min_mean_logprob))
                return Escalated{};
            const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
            name_answer(res, name, route.route);
            if (const auto mean = mean_logprob(g.logprobs))
                res.set_header("X-Switchyard-Mean-Logprob", std::to_string(*mean));
            if (r.stream) {
                res.set_content(SseWriter(r, answer, false).whole(g), "text/event-stream");
            } else {
                res.set_content(json_text(whole_response(r, answer, *backend, g)), "application/json");
            }
            ctx.metrics.answered(route.route, name, g.prompt_tokens, g.completion_tokens, cost_of(dep, name),
                                 seconds_between(ctx.started, first_at), seconds_between(ctx.started, Clock::now()));
            return Answered{};
        });
    if (error) send_error(res, *error);
}

void answer_echo(const Deployment & dep, const ApiRequest & r, const Resolution & route, http::Response & res,
                 const AnswerContext & ctx) {
    // Prompt log-probabilities need the model's own forward pass: the first in-process model of the chain.
    std::shared_ptr<Backend> backend;
    std::string name;
    for (const auto & m : route.chain) {
        if (dep.backend(m)->in_process()) {
            backend = dep.backend(m);
            name = m;
            break;
        }
    }
    if (!backend)
        return send_error(res,
                          bad_request("'echo' needs an in-process model; this route has only remote ones", "echo"));
    const engine::EngineModel * vocab = backend->vocabulary();
    // The echo is the prompt as the client sent it; a BOS the model asks for in front of text is
    // context, not echoed, so the client's token counts index the answer (lm-eval's
    // token_logprobs[ctxlen:-1]). Ids are taken as they are.
    std::vector<std::vector<engine::Token>> full(r.prompts.size());
    std::vector<std::size_t> added(r.prompts.size(), 0);
    for (std::size_t i = 0; i < r.prompts.size(); ++i) {
        const Prompt & p = r.prompts[i];
        if (p.tokens.empty()) {
            const auto sent = backend->tokenize(p.text, false, true);
            if (vocab != nullptr && vocab->adds_bos && vocab->bos >= 0 && (sent.empty() || sent.front() != vocab->bos))
                full[i].push_back(vocab->bos);
            added[i] = full[i].size();
            full[i].insert(full[i].end(), sent.begin(), sent.end());
        } else {
            full[i] = p.tokens;
        }
        if (full[i].empty())
            return send_error(
                res,
                bad_request(
                    fmt::format("prompt {} is empty and this model adds no BOS token: there is nothing to score", i),
                    "prompt"));
    }
    // The generations start together (the batcher decodes them side by side) and the prompts are
    // scored in one batch meanwhile.
    std::vector<StreamGuard> generations;
    for (std::size_t i = 0; i < r.prompts.size() && r.input.max_tokens > 0; ++i) {
        GenerationInput input = r.choice_input(i);
        input.prompt.clear();
        input.prompt_tokens = full[i];
        generations.emplace_back(backend->start(r, input, {}));  // in process: start() does not wait
    }
    const auto scored =
        r.input.logprobs >= 0 ? backend->score_prompts(full, r.input.logprobs) : std::vector<engine::ScoreResult>();
    json choices = json::array();
    Generation total;
    for (std::size_t i = 0; i < r.prompts.size(); ++i) {
        Generation g;
        if (!generations.empty()) {
            auto got = collect(*generations[i].stream, ctx.deadline, nullptr);
            if (auto * e = std::get_if<Stream::Event>(&got)) {
                return send_error(
                    res,
                    failure_error(e->failure, e->failure == Failure::rejected ? e->message : name + ": " + e->message,
                                  e->status));
            }
            g = std::get<Generation>(std::move(got));
        }
        const Prompt & p = r.prompts[i];
        const std::string prompt_text = p.tokens.empty() ? p.text : backend->detokenize(p.tokens);
        json choice = {{"index", i},
                       {"text", prompt_text + g.text},
                       {"finish_reason", finish_reason_name(g.finish)},
                       {"logprobs", nullptr}};
        if (!scored.empty()) {
            LegacyLogprobs lp;
            for (std::size_t k = added[i]; k < full[i].size(); ++k)
                lp.add(*backend, full[i][k], k == 0 ? nullptr : &scored[i].tokens.at(k - 1));
            for (const auto & t : g.logprobs) lp.add(*backend, t.token, &t);
            choice["logprobs"] = lp.to_json();
        }
        choices.push_back(std::move(choice));
        total.prompt_tokens += static_cast<int>(full[i].size());
        total.completion_tokens += g.completion_tokens;
    }
    const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
    name_answer(res, name, route.route);
    res.set_content(json_text(choices_response(r, answer, std::move(choices), usage_json(total))), "application/json");
    const double took = seconds_between(ctx.started, Clock::now());
    ctx.metrics.answered(route.route, name, total.prompt_tokens, total.completion_tokens, cost_of(dep, name), took,
                         took);
}

}  // namespace switchyard::serve
