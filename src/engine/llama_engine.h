// LlamaEngine: the Engine over llama.cpp's C API, in process (its generation slots in llama_slots.h, its
// reusable batch in llama_batch.h). Not thread-safe: one caller at a time.
#pragma once

#include "engine/chat_template.h"
#include "engine/drafter.h"
#include "engine/engine.h"
#include "model/kv_cache.h"

#include <ggml-backend.h>
#include <llama-cpp.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace switchyard::engine {

struct LlamaEngineOptions {
    std::filesystem::path model_path;
    int threads = 0;  // 0: every hardware thread
    int context_length = 0;  // tokens per sequence; 0: what the model file declares
    int parallel = 4;  // sequences decoded side by side in one batch
    int batch_size = 512;  // tokens per llama_decode call
    // Positions with logits per llama_decode call (0: batch_size). llama.cpp keeps two buffers of
    // this many rows of the whole vocabulary; a pass that reads logits at few positions per batch
    // saves that memory, and a batch ends early where it would want more.
    int max_outputs = 0;
    int gpu_layers = 0;  // layers to offload to a GPU, -1 for all (needs a GPU build)
    // rpc-server endpoints (rpc://HOST:PORT) that hold the model's layers and compute them: all
    // layers go there, split by the workers' free memory (see engine/rpc_devices.h).
    std::vector<std::string> rpc;
    // llama.cpp's repacked weight layouts (its CPU "extra buffer types"), which speed up some
    // quantized types. RPC workers have none, and the kernels differ in rounding, so task suites
    // are scored without them wherever they run (see eval/run_suite.h).
    bool repack = true;
    // The KV cache's element types (llama-server's -ctk/-ctv; model::parse_cache_type reads their
    // names). A quantized V cache needs flash attention, which the engine then switches on;
    // llama.cpp refuses (a one-line Error here) a quantized type whose block does not divide the
    // model's head size.
    model::KvCacheTypes kv_cache;
    // Attention without flash attention, which on CPU rounds through F16 (5e-4 relative) even with
    // an F32 cache: with kv_cache f32/f32, exact enough to tell whether two models compute the same
    // function (the AWQ fold's tests). A quantized V cache needs flash attention: refused then.
    bool no_flash_attention = false;
    // Sees the intermediate tensors of every decode (ggml's scheduler callback): how calibration
    // observes the activations entering each weight matrix.
    ggml_backend_sched_eval_callback eval_callback = nullptr;
    void * eval_callback_data = nullptr;
    // A draft model for speculative decoding in generate() and continuous batching: it proposes
    // tokens, this model verifies them in one decode and keeps those its own sampler picks, so the
    // output is what this model alone would give (see engine/drafter.h).
    DraftOptions draft;
};

// Parallel sequences for scoring passes (task suites): as many as a KV cache of 4096 tokens holds
// at `context` tokens each, between 4 and 32, so small contexts run many items per model call
// without large models' caches growing past what a single long sequence would need.
int scoring_parallel(int context);

// Choice scoring's packing (LlamaEngine::score_choices): a group needs one sequence per choice, the
// first continuing its context's own, so a group with more choices than there are sequences is
// split into parts, each reading the context again. A part is the group's choices
// [first_choice, first_choice + choices) in sequences first_seq, first_seq + 1, ...; a group
// without choices still takes one sequence, for its context.
struct ChoicePart {
    std::size_t group = 0;
    std::size_t first_choice = 0;
    std::size_t choices = 0;
    int first_seq = 0;
};

// The parts in decode rounds, in the groups' order: a round takes parts while their sequences fit
// in `sequences` (at least 1), and its contexts share model calls. `choices[g]`: group g's choices.
std::vector<std::vector<ChoicePart>> plan_rounds(std::span<const std::size_t> choices, std::size_t sequences);

class LlamaEngine final : public Engine {
public:
    // Throws switchyard::Error when the file is missing, not GGUF, corrupt or not loadable.
    explicit LlamaEngine(const LlamaEngineOptions & options);
    ~LlamaEngine() override;
    LlamaEngine(const LlamaEngine &) = delete;
    LlamaEngine & operator=(const LlamaEngine &) = delete;

    const EngineModel & model() const override { return info_; }
    // The GGUF's chat template (tokenizer.chat_template); empty when the model has none.
    const std::string & chat_template() const { return chat_template_; }
    // That template, ready to render chats; nullptr when the model has none, when llama.cpp cannot
    // parse it (chat_error() says why), or, without llama.cpp's common library, when
    // llama_chat_apply_template does not know it. Thread-safe.
    const ChatTemplate * chat() const;
    const std::string & chat_error() const { return chat_error_; }
    std::vector<Token> tokenize(std::string_view text, bool add_special) const override {
        return tokenize(text, add_special, false);
    }
    // Throws Error when llama.cpp cannot build a sampler with `grammar` (it does not parse, or
    // rejects its prefill as this vocabulary tokenizes it). Thread-safe.
    void check_grammar(const Grammar & grammar) const;
    // `parse_special`: control tokens written as text (`<|im_start|>`) become those tokens.
    std::vector<Token> tokenize(std::string_view text, bool add_special, bool parse_special) const;
    std::string detokenize(std::span<const Token> tokens) const override { return detokenize(tokens, false); }
    // `render_special`: control tokens (BOS included) become their text ("<s>"), as llama-server's
    // and vLLM's /detokenize give them, so that tokenizing with parse_special gives the ids back.
    std::string detokenize(std::span<const Token> tokens, bool render_special) const;
    std::string token_text(Token token) const override { return token_text(token, false); }
    // What generation starts from: the request's token ids as given, else its prompt tokenized
    // with BOS (one, even where the text spells it). Throws UnencodableText, or Error for an id
    // outside the vocabulary.
    std::vector<Token> prompt_tokens(const GenerateRequest & request) const;
    // `special`: a control token as its text (`<tool_call>`) rather than none.
    std::string token_text(Token token, bool special) const;
    std::vector<ScoreResult> score(std::span<const ScoreRequest> requests, int top_k = 0) override;
    // Decodes each context once and copies its KV cells to one sequence per choice; as many groups
    // as the parallel sequences hold share each model call.
    std::vector<std::vector<ScoreResult>> score_choices(std::span<const ChoiceGroup> groups) override;
    std::vector<GenerateResult> generate(std::span<const GenerateRequest> requests,
                                         const PieceCallback & on_piece = {}) override;

    using OnLogits = std::function<void(std::size_t sequence, std::size_t pos, std::span<const float> logits)>;
    using WantsLogits = std::function<bool(std::size_t sequence, std::size_t pos)>;

    // Runs the forward pass over each sequence and hands the raw logits of every position `wants`
    // selects (default: all, as llama.cpp's imatrix tool does; llama.cpp computes the last layer
    // only where logits are wanted) to `on_logits`: for comparing whole distributions, and for
    // passes that observe the model through eval_callback.
    void forward(std::span<const std::vector<Token>> sequences, const OnLogits & on_logits,
                 const WantsLogits & wants = {});

    std::uint64_t tokens_decoded() const override { return tokens_decoded_; }

    // Bytes of the KV cache as llama.cpp allocates it for this context: every cell of every layer,
    // keys and values at their types. Exact for models whose layers all cache alike (llama-style;
    // not sliding-window or recurrent layers).
    std::uint64_t kv_cache_bytes() const { return kv_cache_bytes_; }

    // The draft's proposals and the share taken so far; all zero without a draft.
    const DraftStats & draft_stats() const { return draft_stats_; }

    // Generation one decode step at a time, requests joining between steps (engine/llama_slots.h):
    // what generate() runs, and what continuous batching drives.
    class Slots;

private:
    struct Batch;

    // Decodes sequences side by side in the context sequences `seq_ids` (emptied first), as many
    // at a time as there are ids, and hands over the logits of every position `wants` selects
    // once its batch is decoded.
    void decode_sequences(std::span<const std::vector<Token>> sequences, std::span<const int> seq_ids,
                          const WantsLogits & wants, const OnLogits & on_logits);
    std::vector<ScoreResult> score_in(std::span<const ScoreRequest> requests, int top_k, std::span<const int> seq_ids);
    // A round of score_choices: its contexts, whose last logits (returned, one row per part) predict
    // the choices' first tokens; then the choices' other tokens, scored into `results`.
    std::vector<std::vector<float>> decode_contexts(std::span<const ChoiceGroup> groups,
                                                    std::span<const ChoicePart> round);
    void decode_choices(std::span<const ChoiceGroup> groups, std::span<const ChoicePart> round,
                        const std::vector<std::vector<float>> & first_logits,
                        std::vector<std::vector<ScoreResult>> & results);
    std::span<const float> logits_at(int batch_index) const;
    // The prompt's tokens; throws Error when it is empty or leaves no room to generate.
    std::vector<Token> generation_prompt(const GenerateRequest & request) const;
    void check_sequence(std::span<const Token> tokens, const char * what) const;

    // The sampler chain for a request; throws Error when llama.cpp cannot build its grammar.
    llama_sampler_ptr make_sampler(const SamplingParams & sampling, const Grammar & grammar) const;
    std::vector<Token> tokenize_or_throw(std::string_view text, bool add_special, bool parse_special) const;
    void decode(Batch & batch);
    void check_tokens(std::span<const Token> tokens, const char * what) const;
    void attach_threadpool(int threads);

    // Freed in the reverse order of these declarations: the batch, the context, then the
    // threadpool the context computed on, the model last.
    llama_model_ptr model_;
    // Kept across decodes, as llama.cpp's tools do: without one, a ggml built without OpenMP
    // starts and joins its threads in every llama_decode, which costs more than a decode step
    // of a small model. Freed by the CPU backend's own ggml_threadpool_free.
    std::unique_ptr<ggml_threadpool, void (*)(ggml_threadpool_t)> threadpool_{nullptr, nullptr};
    llama_context_ptr ctx_;
    std::unique_ptr<Drafter> drafter_;  // computes on the threadpool: freed before it
    DraftStats draft_stats_;
    const llama_vocab * vocab_ = nullptr;
    std::unique_ptr<Batch> batch_;
    EngineModel info_;
    std::string chat_template_;
    mutable std::once_flag chat_once_;
    mutable std::unique_ptr<ChatTemplate> chat_;
    mutable std::string chat_error_;
    int parallel_ = 1;
    std::uint64_t kv_cache_bytes_ = 0;
    std::vector<int> all_seq_ids_;  // 0..parallel-1
    std::uint64_t tokens_decoded_ = 0;
};

}  // namespace switchyard::engine
