// Shadow comparison: how closely a candidate model's answer matches the incumbent's (exact text,
// token agreement, KLD), and when the accumulated agreement says promote or roll back.
#pragma once

#include "engine/engine.h"
#include "model/portfolio.h"

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace switchyard::serve {

// Share of positions 0..max(len)-1 where both sequences hold the same element; 1 when both are empty.
template <typename T>
double positional_agreement(std::span<const T> a, std::span<const T> b) {
    const std::size_t n = std::max(a.size(), b.size());
    if (n == 0) return 1.0;
    std::size_t same = 0;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) same += a[i] == b[i] ? 1 : 0;
    return static_cast<double>(same) / static_cast<double>(n);
}

// Whitespace-separated words: the common unit when two models do not share a vocabulary.
std::vector<std::string> words(const std::string & text);

// Mean per-position KL(incumbent || candidate) from the top-k log-probabilities both kept at the
// same positions (the candidate scored on the incumbent's tokens), over a vocabulary of
// `vocab_size`. The mass outside each top-k is spread evenly over the other tokens, so this is an
// estimate, close when the top k hold most of the mass. nullopt when there is nothing to compare.
std::optional<double> topk_kld(std::span<const engine::TokenLogprob> incumbent,
                               std::span<const engine::TokenLogprob> candidate, int vocab_size);

enum class ShadowVerdict { keep, promote, roll_back };

// After min_samples: agreement >= promote_at promotes; agreement < rollback_below rolls back.
ShadowVerdict shadow_verdict(const model::Shadow & shadow, std::uint64_t samples, double agreement);

}  // namespace switchyard::serve
