// ManagedBackend: an in-process model under the server's Residency, loaded at once and kept
// (`load: always`) or loaded when a request needs it and unloaded for room or after its ttl
// (`load: on_demand`); what it holds is measured as it loads.
#pragma once

#include "model/model_info.h"
#include "model/portfolio.h"
#include "serve/backend.h"
#include "serve/residency.h"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

namespace switchyard::serve {

// The process's resident memory grown while `make` loads a backend (loads are serialized, so the
// growth is the model's: weights as mapped and read, KV cache, buffers the load touches).
Loaded measured_load(const std::function<std::shared_ptr<Backend>()> & make);

// An upper bound of what loading the model of `info` with `context` tokens for each of `parallel`
// sequences and `batch` tokens per decode adds to the process (f16 KV cache, as the engine makes it).
struct LoadBound {
    // file bytes (the weights as mapped)
    // + n_layer x cells x (n_embd_k_gqa + n_embd_v_gqa) at the entry's KV types (the KV cache:
    //   context x parallel cells, padded to 256 as llama.cpp does; 2 bytes each at f16)
    // + 16 MiB (the context's own structures, the decode thread, the allocator's slack)
    std::uint64_t load = 0;
    // 1.5 x (2 x batch x n_vocab x 4 (llama.cpp's output buffer and the graph's logits)
    //        + batch x context x n_head x 4 (one batch's attention scores)):
    // allocated by the load, touched by the decodes after it, so not in what a load measures.
    std::uint64_t buffers = 0;
    std::uint64_t total() const { return load + buffers; }
};
LoadBound load_bound(const model::ModelInfo & info, int context, int parallel, int batch,
                     const model::KvCacheTypes & kv_cache = {});

class ManagedBackend final : public Backend {
public:
    // `make` loads the model (slow; throws switchyard::Error); an `always` entry is loaded now.
    ManagedBackend(std::shared_ptr<Residency> residency, const model::PortfolioModel & entry,
                   std::chrono::milliseconds timeout, std::function<std::shared_ptr<Backend>()> make);
    ~ManagedBackend() override;
    ManagedBackend(const ManagedBackend &) = delete;
    ManagedBackend & operator=(const ManagedBackend &) = delete;

    bool in_process() const override { return true; }
    // Waits for the model to load (503 with Retry-After, as a failed `overloaded` event with
    // status 503, when it cannot); the model stays loaded until the answer ends.
    std::shared_ptr<Stream> start(const ApiRequest & request, const GenerationInput & input,
                                  const std::function<bool()> & client_gone) override;
    std::vector<engine::ScoreResult> score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                   int top_k) override;
    std::vector<engine::Token> tokenize(const std::string & text, bool add_special, bool parse_special) override;
    std::string detokenize(const std::vector<engine::Token> & tokens) override;
    std::string token_text(engine::Token token) override;
    // From the portfolio entry and the file's metadata while unloaded: no load for a model listing.
    int context_length() const override;
    int vocab_size() const override;
    // A copy of the model's vocabulary facts, kept by this backend (so the pointer outlives any
    // unload); the first call loads the model when it is not and copies them under a lease.
    const engine::EngineModel * vocabulary() const override;
    std::string chat_template() const override;
    int parallel() const override { return parallel_; }
    int load() const override;
    bool loaded() const override;
    std::optional<engine::DraftStats> draft_stats() const override;
    void preload() override;
    // The loaded model itself (null while unloaded): what the shadow's KLD scores with.
    std::shared_ptr<Backend> resident() const;

private:
    Residency::Lease lease(const std::function<bool()> & client_gone) const;  // throws ApiError (503)

    std::shared_ptr<Residency> residency_;
    std::shared_ptr<ResidentModel> model_;
    std::shared_ptr<Backend> pinned_;  // load: always: held for this backend's life, as before
    std::chrono::milliseconds timeout_;
    int context_ = 0;
    int vocab_ = 0;
    int parallel_ = 1;
    mutable std::once_flag vocabulary_once_;
    mutable engine::EngineModel vocabulary_;  // written once, under vocabulary_once_
};

}  // namespace switchyard::serve
