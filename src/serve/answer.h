// How a routed request is answered: one choice (whole or streamed), several side by side, a
// cascade, or an echo of the prompts with their log-probabilities; each on the first model of the
// route's chain that answers (serve/fallback.h). The gateway parses, routes and counts requests;
// these write the response and count answers and failures.
#pragma once

#include "serve/backend.h"
#include "serve/deployment.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/openai_response.h"
#include "serve/router.h"

#include <chrono>
#include <functional>
#include <memory>

namespace switchyard::serve {

// An ApiError as the response: its status and OpenAI error object.
void send_error(http::Response & res, const ApiError & error);

struct AnswerContext {
    Metrics & metrics;
    Cooldown & cooldown;
    std::chrono::steady_clock::time_point started;  // the request's arrival: latencies count from it
    std::chrono::steady_clock::time_point deadline;  // request_timeout_ms after it
};

// One choice. `input`: the request's, with what a shadow or capture of the answer needs;
// `delivered` (may be empty) runs once the client has the whole answer; `hold` (the gateway's count of open
// requests and streams) lives until the answer ends, a stream's included.
using Delivered = std::function<void(const Answer &, Generation)>;
void answer_one(const std::shared_ptr<const Deployment> & dep, const ApiRequest & r, const GenerationInput & input,
                const Resolution & route, const http::Request & req, http::Response & res, const AnswerContext & ctx,
                Delivered delivered, std::shared_ptr<void> hold);

// Several choices (a batch of prompts, or n > 1), generated side by side on one model.
void answer_choices(const Deployment & dep, const ApiRequest & r, const Resolution & route, const http::Request & req,
                    http::Response & res, const AnswerContext & ctx);

// A cascade: the chain's models in order until one answers surely enough (its last, however unsure).
void answer_cascade(const Deployment & dep, const ApiRequest & r, const Resolution & route, http::Response & res,
                    const AnswerContext & ctx);

// Completions with `echo`: the prompts as sent, with their log-probabilities when asked (what
// lm-eval's loglikelihood reads), and their continuations; on the chain's first in-process model.
void answer_echo(const Deployment & dep, const ApiRequest & r, const Resolution & route, http::Response & res,
                 const AnswerContext & ctx);

}  // namespace switchyard::serve
