#include "serve/managed_backend.h"

#include "engine/llama_engine.h"
#include "support/error.h"
#include "support/process_memory.h"

#include <fmt/format.h>

#include <algorithm>

namespace switchyard::serve {

Loaded measured_load(const std::function<std::shared_ptr<Backend>()> & make) {
    const std::uint64_t before = process_status_bytes("VmRSS");
    auto backend = make();
    const std::uint64_t after = process_status_bytes("VmRSS");
    return {std::move(backend), after > before ? after - before : 0};
}

LoadBound load_bound(const model::ModelInfo & info, int context, int parallel, int batch,
                     const model::KvCacheTypes & kv_cache) {
    const auto ctx = static_cast<std::uint64_t>(std::max(1, context));
    const auto rows = static_cast<std::uint64_t>(std::max(1, batch));
    // llama.cpp pads the context's cells to a multiple of 256.
    const auto cells = (ctx * static_cast<std::uint64_t>(std::max(1, parallel)) + 255) / 256 * 256;
    const std::uint64_t kv = model::kv_cache_bytes(info, cells, kv_cache);
    const std::uint64_t logits = 2 * rows * info.vocab_size * 4;
    const std::uint64_t scores = rows * ctx * std::max<std::uint64_t>(1, info.head_count) * 4;
    return {.load = info.file_bytes + kv + (16ull << 20), .buffers = (logits + scores) * 3 / 2};
}

namespace {

// From the file's metadata only (no tensors), as the engine will run the entry.
LoadBound bound_of(const model::PortfolioModel & entry) {
    const int batch = engine::LlamaEngineOptions{}.batch_size;
    LoadBound bound = load_bound(model::inspect_gguf(entry.path), entry.context, std::max(1, entry.parallel), batch,
                                 entry.kv_cache);
    // A draft is a second model in the same engine, with a context of the same shape (f16 cache).
    if (!entry.draft_path.empty()) {
        const LoadBound draft = load_bound(model::inspect_gguf(entry.draft_path), entry.context,
                                           std::max(1, entry.parallel), batch, {});
        bound.load += draft.load;
        bound.buffers += draft.buffers;
    }
    return bound;
}

}  // namespace

ManagedBackend::ManagedBackend(std::shared_ptr<Residency> residency, const model::PortfolioModel & entry,
                               std::chrono::milliseconds timeout, std::function<std::shared_ptr<Backend>()> make)
    : residency_(std::move(residency)),
      timeout_(timeout),
      context_(entry.context),
      parallel_(std::max(1, entry.parallel)) {
    // What a model holds: what its load measured, and the buffers its decodes touch afterwards
    // (bounded from the file, read after the load so that a file llama.cpp rejects fails as before).
    Loader loader = [make = std::move(make), entry] {
        Loaded loaded = measured_load(make);
        loaded.bytes += bound_of(entry).buffers;
        return loaded;
    };
    if (entry.load == model::PortfolioModel::Load::always) {
        model_ = residency_->add_pinned(entry.name, loader);
        pinned_ = residency_->loaded(model_);
        vocab_ = pinned_->vocab_size();
        return;
    }
    vocab_ = static_cast<int>(model::inspect_gguf(entry.path).vocab_size);
    // The room each load is given: the most it can take, known before it has measured itself.
    model_ = residency_->add(entry.name, std::move(loader), bound_of(entry).total(), std::chrono::seconds(entry.ttl_s));
}

ManagedBackend::~ManagedBackend() { residency_->remove(model_); }

Residency::Lease ManagedBackend::lease(const std::function<bool()> & client_gone) const {
    auto got = residency_->acquire(model_, std::chrono::steady_clock::now() + timeout_, client_gone);
    if (auto * refused = std::get_if<Refusal>(&got)) {
        throw ApiError{503, refused->message, "overloaded_error", {}, "model_not_loaded", refused->retry_after_s};
    }
    return std::move(std::get<Residency::Lease>(got));
}

std::shared_ptr<Stream> ManagedBackend::start(const ApiRequest & request, const GenerationInput & input,
                                              const std::function<bool()> & client_gone) {
    if (pinned_) return pinned_->start(request, input, client_gone);
    auto got = residency_->acquire(model_, std::chrono::steady_clock::now() + timeout_, client_gone);
    if (auto * refused = std::get_if<Refusal>(&got)) {
        auto stream = std::make_shared<Stream>();
        if (refused->code == "client_gone")
            stream->fail(Failure::client_gone, refused->message);
        else
            stream->fail(Failure::overloaded, refused->message, 503, refused->retry_after_s);
        return stream;
    }
    auto lease = std::make_shared<Residency::Lease>(std::move(std::get<Residency::Lease>(got)));
    auto stream = lease->backend()->start(request, input, client_gone);
    // The lease goes with the answer: the model stays loaded until its last piece is out.
    stream->set_on_close([lease](bool) {});
    return stream;
}

std::vector<engine::ScoreResult> ManagedBackend::score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                               int top_k) {
    if (pinned_) return pinned_->score_prompts(prompts, top_k);
    return lease({}).backend()->score_prompts(prompts, top_k);
}

std::vector<engine::Token> ManagedBackend::tokenize(const std::string & text, bool add_special, bool parse_special) {
    if (pinned_) return pinned_->tokenize(text, add_special, parse_special);
    return lease({}).backend()->tokenize(text, add_special, parse_special);
}

std::string ManagedBackend::detokenize(const std::vector<engine::Token> & tokens) {
    if (pinned_) return pinned_->detokenize(tokens);
    return lease({}).backend()->detokenize(tokens);
}

std::string ManagedBackend::token_text(engine::Token token) {
    if (pinned_) return pinned_->token_text(token);
    return lease({}).backend()->token_text(token);
}

int ManagedBackend::context_length() const {
    if (pinned_) return pinned_->context_length();
    const auto b = residency_->loaded(model_);
    return b ? b->context_length() : context_;
}

int ManagedBackend::vocab_size() const { return vocab_; }

const engine::EngineModel * ManagedBackend::vocabulary() const {
    if (pinned_) return pinned_->vocabulary();
    // A model's vocabulary never changes (a changed portfolio entry is a new backend), so the copy
    // taken while a lease holds the model stays true after it unloads.
    std::call_once(vocabulary_once_, [this] { vocabulary_ = *lease({}).backend()->vocabulary(); });
    return &vocabulary_;
}

std::string ManagedBackend::chat_template() const {
    if (pinned_) return pinned_->chat_template();
    const auto b = residency_->loaded(model_);
    return b ? b->chat_template() : std::string();
}

int ManagedBackend::load() const {
    if (pinned_) return pinned_->load();
    const auto b = residency_->loaded(model_);
    return b ? b->load() : 0;
}

std::shared_ptr<Backend> ManagedBackend::resident() const { return pinned_ ? pinned_ : residency_->loaded(model_); }

std::optional<engine::DraftStats> ManagedBackend::draft_stats() const {
    const auto b = resident();
    return b ? b->draft_stats() : std::nullopt;
}

bool ManagedBackend::loaded() const { return pinned_ != nullptr || residency_->loaded(model_) != nullptr; }

void ManagedBackend::preload() {
    if (!pinned_) residency_->preload(model_);
}

}  // namespace switchyard::serve
