#include "engine/drafter.h"

#include "model/engine_log.h"
#include "support/error.h"

#include <fmt/format.h>
#include <llama-cpp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#if SWITCHYARD_LLAMA_COMMON
#include <common.h>
#include <speculative.h>
#endif

namespace switchyard::engine {

namespace {

struct ModelDeleter {
    void operator()(llama_model * m) const { llama_model_free(m); }
};
using ModelPtr = std::unique_ptr<llama_model, ModelDeleter>;

ModelPtr load_vocabulary(const std::filesystem::path & path) {
    model::init_llama_backend();
    llama_model_params params = llama_model_default_params();
    params.vocab_only = true;
    model::clear_engine_error();
    ModelPtr model(llama_model_load_from_file(path.c_str(), params));
    if (!model) throw Error("{}: llama.cpp cannot read this model: {}", path.string(), model::last_engine_error());
    return model;
}

// llama.cpp's common_speculative checks the same (a draft it would refuse throws there, without
// saying why); its tolerance of a size difference covers families whose vocabularies are padded
// to different multiples.
constexpr int max_size_difference = 128;
constexpr int first_checked_token = 5;

std::string vocabulary_difference(const llama_vocab * target, const llama_vocab * draft) {
    if (llama_vocab_type(target) != llama_vocab_type(draft)) return "their tokenizers are of different kinds";
    if (llama_vocab_get_add_bos(target) != llama_vocab_get_add_bos(draft) ||
        (llama_vocab_get_add_bos(target) && llama_vocab_bos(target) != llama_vocab_bos(draft)))
        return "they begin a text differently (BOS)";
    if (llama_vocab_get_add_eos(target) != llama_vocab_get_add_eos(draft) ||
        (llama_vocab_get_add_eos(target) && llama_vocab_eos(target) != llama_vocab_eos(draft)))
        return "they end a text differently (EOS)";
    const int n_target = llama_vocab_n_tokens(target);
    const int n_draft = llama_vocab_n_tokens(draft);
    if (std::abs(n_target - n_draft) > max_size_difference)
        return fmt::format("the vocabularies differ: {} tokens against {}", n_target, n_draft);
    for (int t = first_checked_token; t < std::min(n_target, n_draft); ++t) {
        if (std::strcmp(llama_vocab_get_text(target, t), llama_vocab_get_text(draft, t)) != 0)
            return fmt::format("the vocabularies differ at token {} ('{}' against '{}')", t,
                               llama_vocab_get_text(target, t), llama_vocab_get_text(draft, t));
    }
    return "";
}

}  // namespace

bool drafting_available() {
#if SWITCHYARD_LLAMA_COMMON
    return true;
#else
    return false;
#endif
}

std::string draft_incompatibility(const std::filesystem::path & target, const std::filesystem::path & draft) {
    const ModelPtr t = load_vocabulary(target);
    const ModelPtr d = load_vocabulary(draft);
    std::string reason = vocabulary_difference(llama_model_get_vocab(t.get()), llama_model_get_vocab(d.get()));
    if (reason.empty() && !drafting_available())
        reason = "this build has no llama.cpp common library (an installed llama.cpp), which drafting needs";
    return reason;
}

#if SWITCHYARD_LLAMA_COMMON

struct Drafter::State {
    ModelPtr model;
    llama_context_ptr context;
    common_speculative_ptr speculative;
    int target_vocab = 0;
};

Drafter::Drafter(const DraftOptions & options, const llama_model_params & params, llama_context * target,
                 ggml_threadpool_t threadpool)
    : state_(std::make_unique<State>()), max_tokens_(std::max(1, options.max_tokens)) {
    const std::string path = options.model_path.string();
    model::clear_engine_error();
    state_->model.reset(llama_model_load_from_file(path.c_str(), params));
    if (!state_->model) throw Error("draft {}: llama.cpp cannot load this model: {}", path, model::last_engine_error());
    const llama_model * target_model = llama_get_model(target);
    const llama_vocab * target_vocab = llama_model_get_vocab(target_model);
    const std::string difference = vocabulary_difference(target_vocab, llama_model_get_vocab(state_->model.get()));
    if (!difference.empty()) throw Error("draft {} cannot draft for this model: {}", path, difference);
    state_->target_vocab = llama_vocab_n_tokens(target_vocab);

    // The target's shape: a cell for each of its cells, a sequence for each of its slots, and its
    // batches whole (follow() decodes them as they are).
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = llama_n_ctx(target);
    cparams.n_batch = llama_n_batch(target);
    cparams.n_ubatch = llama_n_ubatch(target);
    cparams.n_seq_max = llama_n_seq_max(target);
    // Logits for one position per sequence at most (a proposal's next token; follow() asks for
    // none it reads), not llama.cpp's default of a whole batch of vocabulary-wide rows.
    cparams.n_outputs_max = cparams.n_seq_max;
    cparams.kv_unified = false;
    cparams.n_threads = llama_n_threads(target);
    cparams.n_threads_batch = llama_n_threads_batch(target);
    cparams.no_perf = true;
    model::clear_engine_error();
    state_->context.reset(llama_init_from_model(state_->model.get(), cparams));
    if (!state_->context)
        throw Error("draft {}: cannot create a llama.cpp context: {}", path, model::last_engine_error());
    // The two contexts take turns on one thread: one pool serves both.
    if (threadpool != nullptr) llama_attach_threadpool(state_->context.get(), threadpool, nullptr);

    common_params_speculative spec;
    spec.types = {COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE};
    spec.draft.n_max = max_tokens_;
    spec.draft.ctx_tgt = target;
    spec.draft.ctx_dft = state_->context.get();
    try {
        state_->speculative.reset(common_speculative_init(spec, cparams.n_seq_max));
    } catch (const std::exception & e) {
        throw Error("draft {}: llama.cpp cannot draft with it: {}", path, e.what());
    }
    if (!state_->speculative) throw Error("draft {}: llama.cpp started no drafting", path);
}

Drafter::~Drafter() = default;

void Drafter::follow(const llama_batch & batch) {
    model::clear_engine_error();
    if (!common_speculative_process(state_->speculative.get(), batch))
        throw Error("the draft model failed to decode: {}", model::last_engine_error());
}

void Drafter::draft(std::span<const Request> requests) {
    common_speculative * spec = state_->speculative.get();
    for (const auto & r : requests) {
        r.draft->clear();
        common_speculative_get_draft_params(spec, r.seq) = {
            .drafting = true, .n_max = r.max_tokens, .pos0 = r.pos, .id_last = r.last, .prompt = r.history,
            .result = r.draft};
    }
    common_speculative_draft(spec);
    llama_memory_t memory = llama_get_memory(state_->context.get());
    for (const auto & r : requests) {
        // Drafting decoded `last` and the proposal: dropped, as llama-server drops them, for the
        // target's verification batch to bring them back in follow().
        llama_memory_seq_rm(memory, r.seq, r.pos, -1);
        auto outside = std::find_if(r.draft->begin(), r.draft->end(),
                                    [&](Token t) { return t < 0 || t >= state_->target_vocab; });
        r.draft->erase(outside, r.draft->end());
    }
}

void Drafter::accept(llama_seq_id seq, int accepted) {
    common_speculative_accept(state_->speculative.get(), seq, static_cast<std::uint16_t>(accepted));
}

void Drafter::remove(llama_seq_id seq, llama_pos from) {
    llama_memory_seq_rm(llama_get_memory(state_->context.get()), seq, from, -1);
}

void Drafter::clear() { llama_memory_clear(llama_get_memory(state_->context.get()), true); }

#else

struct Drafter::State {};

Drafter::Drafter(const DraftOptions & options, const llama_model_params &, llama_context *, ggml_threadpool_t) {
    throw Error("draft {}: drafting needs llama.cpp's common library, which an installed llama.cpp does not "
                "ship: build the engine from source (scripts/setup.sh does)",
                options.model_path.string());
}

Drafter::~Drafter() = default;
void Drafter::follow(const llama_batch &) {}
void Drafter::draft(std::span<const Request>) {}
void Drafter::accept(llama_seq_id, int) {}
void Drafter::remove(llama_seq_id, llama_pos) {}
void Drafter::clear() {}

#endif

}  // namespace switchyard::engine
