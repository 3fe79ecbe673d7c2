#include "eval/drift.h"

#include "support/error.h"

#include <algorithm>
#include <cmath>

namespace switchyard::eval {

namespace {

bool scored(std::size_t pos, std::size_t length) { return pos >= length / 2 && pos + 1 < length; }

}  // namespace

Reference record_reference(engine::LlamaEngine & original, std::vector<std::vector<engine::Token>> chunks, int k) {
    Reference ref;
    ref.chunks = std::move(chunks);
    ref.vocab_size = original.model().vocab_size;
    ref.k = k > 0 ? std::min(k, original.model().vocab_size) : original.model().vocab_size;
    // Positions arrive in order within each chunk and chunks in order, so appending keeps one index.
    original.forward(ref.chunks, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
        if (!scored(pos, ref.chunks[s].size())) return;
        const double norm = stats::log_sum_exp(logits);
        ref.top.push_back(stats::top_k_logprobs(logits, norm, ref.k));
        ref.nll_sum -= logits[ref.chunks[s][pos + 1]] - norm;
    });
    return ref;
}

Drift measure_drift(const Reference & ref, engine::LlamaEngine & variant) {
    if (variant.model().vocab_size != ref.vocab_size) {
        throw Error("drift: the models' vocabularies differ (" + std::to_string(ref.vocab_size) + " vs " +
                    std::to_string(variant.model().vocab_size) + " tokens); compare them by task accuracy instead");
    }
    std::vector<double> kld;
    kld.reserve(ref.top.size());
    std::size_t agree = 0;
    double nll = 0.0;
    variant.forward(ref.chunks, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
        if (!scored(pos, ref.chunks[s].size())) return;
        const auto & base = ref.top[kld.size()];
        kld.push_back(stats::kl_divergence_topk(base, logits));
        const auto best = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        agree += best == base.front().index;
        nll -= logits[ref.chunks[s][pos + 1]] - stats::log_sum_exp(logits);
    });
    Drift d;
    d.positions = kld.size();
    d.top1_agreement = d.positions > 0 ? static_cast<double>(agree) / d.positions : 0.0;
    d.perplexity = d.positions > 0 ? std::exp(nll / d.positions) : 0.0;
    d.reference_perplexity = d.positions > 0 ? std::exp(ref.nll_sum / d.positions) : 0.0;
    d.kld = stats::summarize(std::move(kld));
    return d;
}

}  // namespace switchyard::eval
