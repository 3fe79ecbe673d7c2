#include "serve/shadow_worker.h"

#include "serve/local_backend.h"
#include "serve/managed_backend.h"
#include "serve/shadow.h"

#include <spdlog/spdlog.h>

namespace switchyard::serve {

ShadowWorker::ShadowWorker(Metrics & metrics, std::chrono::milliseconds timeout, Current current, OnVerdict on_verdict)
    : metrics_(metrics),
      timeout_(timeout),
      current_(std::move(current)),
      on_verdict_(std::move(on_verdict)),
      thread_([this] { loop(); }) {}

ShadowWorker::~ShadowWorker() { queue_.close(); }

void ShadowWorker::enqueue(ShadowJob job) {
    if (!queue_.try_push(std::move(job))) metrics_.shadow_dropped();
}

void ShadowWorker::loop() {
    while (auto job = queue_.pop()) run(*job);
}

void ShadowWorker::run(const ShadowJob & job) {
    const auto & dep = *job.deployment;
    const auto candidate = dep.backend(job.candidate);
    const auto incumbent = dep.backend(job.incumbent);
    const auto stream = candidate->start(job.request, job.input, {});  // no client waits for a shadow
    StreamGuard guard{stream};
    auto got = collect(*stream, std::chrono::steady_clock::now() + timeout_, nullptr);
    if (std::get_if<Stream::Event>(&got)) {
        metrics_.shadow_sample(job.route, job.candidate, true, 0, 0, nullptr);
        return;
    }
    const Generation & shadow = std::get<Generation>(got);
    const Generation & answer = job.answer;
    const bool same_vocab =
        candidate->in_process() && incumbent->in_process() && candidate->vocab_size() == incumbent->vocab_size();
    double agreement;
    std::optional<double> kld;
    if (same_vocab && answer.has_logprobs && shadow.has_logprobs) {
        agreement = positional_agreement<engine::Token>(answer.tokens, shadow.tokens);
        // KLD on the incumbent's own tokens: the candidate scores the incumbent's answer.
        std::shared_ptr<Backend> scorer = candidate;
        if (const auto * managed = dynamic_cast<const ManagedBackend *>(candidate.get())) scorer = managed->resident();
        if (auto * local = dynamic_cast<LocalBackend *>(scorer.get()); local != nullptr && !answer.tokens.empty()) {
            try {
                std::vector<engine::Token> seq = local->prompt_tokens(job.input);
                seq.insert(seq.end(), answer.tokens.begin(), answer.tokens.end());
                if (static_cast<int>(seq.size()) <= local->context_length()) {
                    const auto scored = local->score_prompts({seq}, kTopK).at(0);
                    const auto tail = std::span(scored.tokens).subspan(scored.tokens.size() - answer.tokens.size());
                    kld = topk_kld(answer.logprobs, tail, local->vocab_size());
                }
            } catch (const ApiError & e) {
                spdlog::debug("shadow KLD skipped: {}", e.message);
            }
        }
    } else {
        const auto a = words(answer.text), b = words(shadow.text);
        agreement = positional_agreement<std::string>(a, b);
    }
    const ShadowCounters totals = metrics_.shadow_sample(
        job.route, job.candidate, false, answer.text == shadow.text ? 1.0 : 0.0, agreement, kld ? &*kld : nullptr);
    // The route may have changed since the request: judge only the shadow it still has.
    const auto now = current_();
    const model::Route * route = now->portfolio.find_route(job.route);
    if (route == nullptr || !route->shadow || route->shadow->model != job.candidate) return;
    const auto verdict = shadow_verdict(*route->shadow, totals.samples, totals.agreement());
    if (verdict != ShadowVerdict::keep) on_verdict_(job.route, job.candidate, verdict == ShadowVerdict::promote);
}

}  // namespace switchyard::serve
