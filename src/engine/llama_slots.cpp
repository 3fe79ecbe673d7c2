#include "engine/llama_slots.h"

#include "engine/llama_batch.h"
#include "engine/text_stream.h"
#include "support/error.h"

#include <llama.h>

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace switchyard::engine {

struct LlamaEngine::Slots::Slot {
    Job job;
    GenerateResult result;
    std::size_t prompt_fed = 0;  // prompt tokens decoded so far
    llama_pos n_past = 0;
    // The tokens whose cells the slot's sequence holds, positions 0..n_past-1: what the next
    // request can start from (see admit).
    std::vector<Token> cached;
    std::uint64_t last_admitted = 0;  // when its last request came in (Slots::admitted_)
    Token next = 0;  // sampled token to feed in the next batch
    int batch_index = -1;  // where this slot's logits are in the batch just decoded
    // The draft's proposal for the positions after `next`, in the batch right after it.
    std::vector<Token> draft;
    llama_sampler_ptr sampler;
    std::optional<TextStream> text;
    bool active = false;

    bool prefilling() const { return prompt_fed < job.prompt.size(); }
};

LlamaEngine::Slots::Slots(LlamaEngine & engine)
    : engine_(engine),
      slots_(static_cast<std::size_t>(engine.parallel_)),
      // Dropping a sequence's tail is only sound where every cell of its prefix is still there:
      // recurrent state cannot be cut back, and a sliding window has evicted the prefix's start.
      reuse_prefixes_(!llama_model_is_recurrent(engine.model_.get()) && !llama_model_is_hybrid(engine.model_.get()) &&
                      llama_model_n_swa(engine.model_.get()) == 0) {
    llama_memory_clear(llama_get_memory(engine_.ctx_.get()), true);
    if (engine_.drafter_) engine_.drafter_->clear();
}

LlamaEngine::Slots::~Slots() = default;

int LlamaEngine::Slots::size() const { return static_cast<int>(slots_.size()); }

namespace {

std::size_t common_prefix(std::span<const Token> a, std::span<const Token> b) {
    return static_cast<std::size_t>(
        std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(std::min(a.size(), b.size())), b.begin())
            .first -
        a.begin());
}

}  // namespace

void LlamaEngine::Slots::admit(Job job) {
    // The free slot whose sequence already holds the longest start of this prompt (a system prompt,
    // the earlier turns of a chat, the same prompt again), as llama-server picks its slots: those
    // tokens are not decoded again. The last prompt token always is, for its logits. A start of
    // one token (the BOS every prompt begins with) saves nothing worth a slot that holds more, so
    // without a longer one the least recently used free slot is taken.
    auto it = slots_.end();
    std::size_t reused = 0;
    for (auto s = slots_.begin(); s != slots_.end(); ++s) {
        if (s->active) continue;
        std::size_t common = reuse_prefixes_ && !job.prompt.empty()
            ? std::min(common_prefix(s->cached, job.prompt), job.prompt.size() - 1)
            : 0;
        if (common < 2) common = 0;
        if (it == slots_.end() || common > reused || (common == reused && s->last_admitted < it->last_admitted)) {
            it = s;
            reused = common;
        }
    }
    if (it == slots_.end()) throw std::logic_error("Slots::admit: no free slot");
    llama_memory_t memory = llama_get_memory(engine_.ctx_.get());
    const auto seq = static_cast<llama_seq_id>(it - slots_.begin());
    if (reused == 0 || !llama_memory_seq_rm(memory, seq, static_cast<llama_pos>(reused), -1)) {
        llama_memory_seq_rm(memory, seq, -1, -1);
        reused = 0;
    }
    // The draft's cells followed the target's through every batch, so they hold the same start.
    if (engine_.drafter_) engine_.drafter_->remove(seq, reused == 0 ? -1 : static_cast<llama_pos>(reused));
    it->cached.resize(reused);
    it->last_admitted = ++admitted_;
    it->n_past = static_cast<llama_pos>(reused);
    it->prompt_fed = reused;
    prompt_reused_ += reused;
    llama_sampler_ptr sampler;
    try {
        sampler = engine_.make_sampler(job.request.sampling, job.request.grammar);
    } catch (const Error & e) {
        GenerateResult result;
        result.prompt_tokens = static_cast<int>(job.prompt.size());
        result.finish = FinishReason::cancelled;
        if (job.on_done) job.on_done(result, e.what());
        return;
    }
    Slot & slot = *it;
    slot.result = {};
    slot.result.prompt_tokens = static_cast<int>(job.prompt.size());
    slot.sampler = std::move(sampler);
    slot.text.emplace(job.request.stop);
    slot.job = std::move(job);
    slot.active = true;
    ++active_;
    if (slot.job.request.max_tokens <= 0) finish(slot, FinishReason::length);
}

void LlamaEngine::Slots::finish(Slot & slot, FinishReason reason, const std::string & error) {
    const std::string rest = slot.text->finish();
    if (!rest.empty() && slot.job.on_piece) slot.job.on_piece(rest);
    slot.result.text = slot.text->text();
    slot.result.finish = reason;
    slot.active = false;
    --active_;
    // Moved out, so that the slot is free and clean while the callback runs.
    Job job = std::move(slot.job);
    GenerateResult result = std::move(slot.result);
    if (job.on_done) job.on_done(result, error);
}

void LlamaEngine::Slots::end_all(FinishReason reason, const std::string & error) {
    for (auto & slot : slots_) {
        if (slot.active) finish(slot, reason, error);
        // After a failed decode the cells are not known to match.
        slot.cached.clear();
    }
}

void LlamaEngine::Slots::step() {
    for (auto & slot : slots_) {
        if (slot.active && slot.job.cancelled && slot.job.cancelled->load()) finish(slot, FinishReason::cancelled);
    }
    if (engine_.drafter_) propose();
    Batch & batch = *engine_.batch_;
    batch.clear();
    for (auto & slot : slots_) {
        slot.batch_index = -1;
        if (slot.active && !slot.prefilling() && batch.fits(true)) {
            const auto seq = static_cast<llama_seq_id>(&slot - slots_.data());
            slot.batch_index = batch.add(slot.next, slot.n_past++, seq, true);
            slot.cached.push_back(slot.next);
            // The proposal goes in after it, to be verified by this one decode; its cells stay
            // only as far as the slot's sampler takes it (verify).
            for (std::size_t i = 0; i < slot.draft.size(); ++i) {
                if (!batch.fits(true)) {
                    slot.draft.resize(i);
                    break;
                }
                batch.add(slot.draft[i], slot.n_past + static_cast<llama_pos>(i), seq, true);
            }
        } else {
            slot.draft.clear();
        }
    }
    for (auto & slot : slots_) {
        if (!slot.active || !slot.prefilling()) continue;
        const auto & prompt = slot.job.prompt;
        for (; slot.prompt_fed < prompt.size(); ++slot.prompt_fed) {
            const bool last = slot.prompt_fed + 1 == prompt.size();
            if (!batch.fits(last)) break;
            const int index = batch.add(prompt[slot.prompt_fed], slot.n_past++,
                                        static_cast<llama_seq_id>(&slot - slots_.data()), last);
            slot.cached.push_back(prompt[slot.prompt_fed]);
            if (last) slot.batch_index = index;
            ++prompt_decoded_;
        }
    }
    if (batch.size() == 0) return;
    engine_.decode(batch);
    if (engine_.drafter_) engine_.drafter_->follow(batch.raw);
    for (auto & slot : slots_) {
        if (!slot.active || slot.batch_index < 0) continue;
        if (slot.draft.empty()) {
            take(slot, slot.batch_index);
        } else {
            verify(slot);
        }
    }
}

void LlamaEngine::Slots::propose() {
    std::vector<Drafter::Request> requests;
    const int context = engine_.info_.context_length;
    for (auto & slot : slots_) {
        slot.draft.clear();
        if (!slot.active || slot.prefilling()) continue;
        // Room for the proposal and the token the target adds after it: within max_tokens, and
        // within the sequence's context after `next`.
        const int budget = std::min({engine_.drafter_->max_tokens(),
                                     slot.job.request.max_tokens - slot.result.completion_tokens - 1,
                                     context - static_cast<int>(slot.n_past) - 2});
        if (budget <= 0) continue;
        requests.push_back({.seq = static_cast<llama_seq_id>(&slot - slots_.data()),
                            .pos = slot.n_past,
                            .last = slot.next,
                            .history = &slot.cached,
                            .max_tokens = budget,
                            .draft = &slot.draft});
    }
    if (!requests.empty()) engine_.drafter_->draft(requests);
}

// The target's sampler at each position of the proposal in turn, as llama.cpp's
// common_sampler_sample_and_accept_n: a proposed token it picks itself is taken, and the logits
// after it are already there; the first one it does not pick ends the step with its own choice.
void LlamaEngine::Slots::verify(Slot & slot) {
    const auto seq = static_cast<llama_seq_id>(&slot - slots_.data());
    const std::vector<Token> draft = std::move(slot.draft);
    slot.draft.clear();
    std::size_t accepted = 0;
    for (std::size_t i = 0; i <= draft.size(); ++i) {
        const Token token = take(slot, slot.batch_index + static_cast<int>(i));
        if (!slot.active || i == draft.size() || token != draft[i]) break;
        // Its cell is already decoded: the slot moves past it rather than feeding it again.
        slot.cached.push_back(token);
        ++slot.n_past;
        ++accepted;
    }
    ++engine_.draft_stats_.steps;
    engine_.draft_stats_.drafted += draft.size();
    engine_.draft_stats_.accepted += accepted;
    engine_.drafter_->accept(seq, static_cast<int>(accepted));
    // The cells of the proposal past what was taken.
    llama_memory_seq_rm(llama_get_memory(engine_.ctx_.get()), seq, slot.n_past, -1);
    engine_.drafter_->remove(seq, slot.n_past);
}

Token LlamaEngine::Slots::take(Slot & slot, int batch_index) {
    llama_context * ctx = engine_.ctx_.get();
    const Token token = llama_sampler_sample(slot.sampler.get(), ctx, batch_index);
    if (llama_vocab_is_eog(engine_.vocab_, token) && !slot.job.request.ignore_eos) {
        finish(slot, FinishReason::eos);
        return token;
    }
    ++generated_;
    ++slot.result.completion_tokens;
    if (slot.job.request.logprobs >= 0) {
        const std::span<const float> logits(llama_get_logits_ith(ctx, batch_index),
                                            static_cast<std::size_t>(engine_.info_.vocab_size));
        slot.result.token_logprobs.push_back(token_logprob(logits, token, slot.job.request.logprobs));
    }
    const auto & text_tokens = slot.job.request.text_tokens;
    const bool as_text = std::find(text_tokens.begin(), text_tokens.end(), token) != text_tokens.end();
    const std::string piece = slot.text->push(engine_.token_text(token, as_text));
    if (!piece.empty() && slot.job.on_piece && !slot.job.on_piece(piece)) {
        finish(slot, FinishReason::cancelled);
    } else if (slot.text->stopped()) {
        finish(slot, FinishReason::stop);
    } else if (slot.result.completion_tokens >= slot.job.request.max_tokens ||
               slot.n_past >= engine_.info_.context_length) {
        finish(slot, FinishReason::length);
    } else {
        slot.next = token;
    }
    return token;
}

std::vector<ScoreResult> LlamaEngine::Slots::score(std::span<const ScoreRequest> requests, int top_k) {
    std::vector<int> free_ids;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].active) continue;
        free_ids.push_back(static_cast<int>(i));
        slots_[i].cached.clear();  // scoring writes over the sequence
    }
    if (free_ids.empty()) throw std::logic_error("Slots::score: no free slot");
    return engine_.score_in(requests, top_k, free_ids);
}

}  // namespace switchyard::engine
