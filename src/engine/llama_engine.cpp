#include "engine/llama_engine.h"

#include "engine/llama_batch.h"
#include "engine/llama_slots.h"
#include "engine/rpc_devices.h"
#include "model/engine_log.h"
#include "model/model_info.h"
#include "support/error.h"
#include "support/utf8.h"

#include <fmt/format.h>
#include <llama.h>

#include <algorithm>
#include <cctype>
#include <numeric>
#include <thread>

namespace switchyard::engine {

namespace {

std::string engine_detail(const char * fallback) {
    std::string detail = model::last_engine_error();
    return detail.empty() ? fallback : detail;
}

}  // namespace

LlamaEngine::LlamaEngine(const LlamaEngineOptions & options) {
    model::init_llama_backend();
    // The gguf reader gives precise one-line reasons for broken files; llama.cpp's loader would
    // only say that loading failed.
    const model::ModelInfo file = model::inspect_gguf(options.model_path);

    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = options.gpu_layers;
    mparams.use_extra_bufts = options.repack;
    std::vector<ggml_backend_dev_t> devices = rpc_devices(options.rpc);
    if (!devices.empty()) {
        devices.push_back(nullptr);
        mparams.devices = devices.data();
        if (mparams.n_gpu_layers == 0) mparams.n_gpu_layers = -1;
    }
    model::clear_engine_error();
    model_.reset(llama_model_load_from_file(options.model_path.c_str(), mparams));
    if (!model_) {
        throw Error("{}: llama.cpp cannot load this model: {}", options.model_path.string(),
                    engine_detail("unknown reason"));
    }
    vocab_ = llama_model_get_vocab(model_.get());

    const int declared = llama_model_n_ctx_train(model_.get());
    info_.name = file.name.empty() ? options.model_path.filename().string() : file.name;
    info_.context_length = options.context_length > 0 ? options.context_length : declared;
    info_.vocab_size = llama_vocab_n_tokens(vocab_);
    info_.adds_bos = llama_vocab_get_add_bos(vocab_);
    info_.bos = llama_vocab_bos(vocab_);
    info_.eos = llama_vocab_eos(vocab_);
    parallel_ = std::max(1, options.parallel);
    all_seq_ids_.resize(static_cast<std::size_t>(parallel_));
    std::iota(all_seq_ids_.begin(), all_seq_ids_.end(), 0);
    if (const char * tmpl = llama_model_chat_template(model_.get(), nullptr)) chat_template_ = tmpl;

    const int threads = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
    llama_context_params cparams = llama_context_default_params();
    // One KV stream of context_length cells per sequence (not one shared cache): attention then
    // spans only the sequence's own cells, which llama-perplexity's speed needs; copying a
    // context between sequences (score_choices) works across streams.
    cparams.n_ctx = static_cast<uint32_t>(info_.context_length * parallel_);
    cparams.n_batch = static_cast<uint32_t>(std::max(1, options.batch_size));
    cparams.n_ubatch = cparams.n_batch;
    cparams.n_seq_max = static_cast<uint32_t>(parallel_);
    // llama.cpp sizes its compute and output buffers for this many rows of logits, each the whole
    // vocabulary (at 512 rows and 49k tokens, 100 MB each); batches stop there (Batch::full).
    const int max_outputs =
        options.max_outputs > 0 ? std::min(options.max_outputs, options.batch_size) : options.batch_size;
    cparams.n_outputs_max = static_cast<uint32_t>(std::max({1, max_outputs, parallel_}));
    cparams.kv_unified = false;
    cparams.type_k = options.kv_cache.k;
    cparams.type_v = options.kv_cache.v;
    if (ggml_is_quantized(options.kv_cache.v)) cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    if (options.no_flash_attention) cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    cparams.no_perf = true;
    cparams.cb_eval = options.eval_callback;
    cparams.cb_eval_user_data = options.eval_callback_data;
    model::clear_engine_error();
    ctx_.reset(llama_init_from_model(model_.get(), cparams));
    if (!ctx_) {
        throw Error("{}: cannot create a llama.cpp context: {}", options.model_path.string(),
                    engine_detail("unknown reason"));
    }
    kv_cache_bytes_ = model::kv_cache_bytes(file, llama_n_ctx(ctx_.get()), options.kv_cache);
    batch_ =
        std::make_unique<Batch>(static_cast<int>(cparams.n_batch), parallel_, static_cast<int>(cparams.n_outputs_max));
    attach_threadpool(threads);
    if (!options.draft.model_path.empty())
        drafter_ = std::make_unique<Drafter>(options.draft, mparams, ctx_.get(), threadpool_.get());
}

void LlamaEngine::attach_threadpool(int threads) {
    // Looked up through the CPU backend's registry, as llama.cpp's own tools do, so that this
    // also works where the backend is loaded dynamically.
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) return;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    using New = ggml_threadpool_t (*)(ggml_threadpool_params *);
    const auto create = reinterpret_cast<New>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
    const auto release =
        reinterpret_cast<void (*)(ggml_threadpool_t)>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
    if (create == nullptr || release == nullptr) return;
    ggml_threadpool_params params = ggml_threadpool_params_default(threads);
    threadpool_ = {create(&params), release};
    if (threadpool_) llama_attach_threadpool(ctx_.get(), threadpool_.get(), nullptr);
}

LlamaEngine::~LlamaEngine() = default;

void LlamaEngine::check_grammar(const Grammar & grammar) const { make_sampler({.temperature = 0}, grammar); }

// The grammar, when there is one, goes first: the other samplers then choose among the tokens it allows.
llama_sampler_ptr LlamaEngine::make_sampler(const SamplingParams & p, const Grammar & grammar) const {
    const llama_vocab * vocab = vocab_;
    llama_sampler_ptr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    if (!grammar.gbnf.empty()) {
        llama_sampler * g = nullptr;
        if (grammar.lazy) {
            std::vector<const char *> patterns;
            for (const auto & t : grammar.trigger_patterns) patterns.push_back(t.c_str());
            g = llama_sampler_init_grammar_lazy_patterns(vocab, grammar.gbnf.c_str(), "root", patterns.data(),
                                                         patterns.size(), grammar.trigger_tokens.data(),
                                                         grammar.trigger_tokens.size());
        } else {
            g = llama_sampler_init_grammar(vocab, grammar.gbnf.c_str(), "root");
        }
        if (g == nullptr)
            throw Error("llama.cpp cannot parse the grammar for this request: {}", engine_detail("no detail"));
        llama_sampler_chain_add(chain.get(), g);
        if (!grammar.prefill.empty()) {
            std::vector<Token> tokens(grammar.prefill.size() + 4);
            const int n = llama_tokenize(vocab, grammar.prefill.data(), static_cast<int32_t>(grammar.prefill.size()),
                                         tokens.data(), static_cast<int32_t>(tokens.size()), false, true);
            tokens.resize(static_cast<std::size_t>(std::max(n, 0)));
            try {
                for (std::size_t i = 0; i < tokens.size(); ++i) {
                    // A tokenizer may put a space before the first special token: not part of the text.
                    if (i == 0) {
                        char piece[64] = {};
                        const bool space = llama_token_to_piece(vocab, tokens[0], piece, sizeof piece, 0, true) > 0 &&
                            std::isspace(static_cast<unsigned char>(piece[0]));
                        if (space && !std::isspace(static_cast<unsigned char>(grammar.prefill[0]))) continue;
                    }
                    llama_sampler_accept(g, tokens[i]);
                }
            } catch (const std::exception & e) {
                throw Error("the grammar for this request rejects the template's opening of the answer: {}", e.what());
            }
        }
    }
    if (p.temperature <= 0.0f) {
        llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
        return chain;
    }
    if (p.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(p.top_k));
    if (p.top_p < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(p.top_p, 1));
    if (p.min_p > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(p.min_p, 1));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(p.temperature));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(p.seed));
    return chain;
}

const ChatTemplate * LlamaEngine::chat() const {
    // Parsed on first use: scoring and quantizing never need it.
    std::call_once(chat_once_, [this] {
        try {
            chat_ = ChatTemplate::for_model(model_.get());
        } catch (const Error & e) {
            chat_error_ = e.what();
        }
    });
    return chat_.get();
}

std::vector<Token> LlamaEngine::tokenize_or_throw(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<Token> tokens(text.size() + 4);
    int n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                           static_cast<int32_t>(tokens.size()), add_special, parse_special);
    if (n < 0) {
        if (n == INT32_MIN) throw Error("text is too long to tokenize");
        tokens.resize(static_cast<std::size_t>(-n));
        n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                           static_cast<int32_t>(tokens.size()), add_special, parse_special);
    }
    tokens.resize(static_cast<std::size_t>(std::max(n, 0)));
    return tokens;
}

std::vector<Token> LlamaEngine::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    try {
        return tokenize_or_throw(text, add_special, parse_special);
    } catch (const Error &) {
        throw;
    } catch (const std::exception & e) {
        // llama.cpp throws when a vocabulary without byte fallback meets a character it lacks.
        // Find the first such character so the user knows what to remove or normalise.
        for (std::size_t i = 0; i < text.size(); i += utf8::sequence_length(text, i)) {
            const std::string_view one = text.substr(i, utf8::sequence_length(text, i));
            try {
                tokenize_or_throw(one, false, false);
            } catch (const std::exception &) {
                throw UnencodableText("the model's vocabulary cannot encode " +
                                      utf8::describe(utf8::decode_at(text, i)) + " at byte " + std::to_string(i) +
                                      " of the text (it has no such token and no byte fallback)");
            }
        }
        throw UnencodableText(std::string("the model's tokenizer rejected the text: ") + e.what());
    }
}

std::string LlamaEngine::token_text(Token token, bool special) const {
    std::string piece(16, '\0');
    int n = llama_token_to_piece(vocab_, token, piece.data(), static_cast<int32_t>(piece.size()), 0, special);
    if (n < 0) {
        piece.resize(static_cast<std::size_t>(-n));
        n = llama_token_to_piece(vocab_, token, piece.data(), static_cast<int32_t>(piece.size()), 0, special);
    }
    piece.resize(static_cast<std::size_t>(std::max(n, 0)));
    return piece;
}

std::string LlamaEngine::detokenize(std::span<const Token> tokens, bool render_special) const {
    // llama.cpp keeps the space it prefixed to the text when BOS leads; drop BOS here so that
    // detokenize(tokenize(text)) gives the text back.
    if (!render_special && !tokens.empty() && info_.adds_bos && tokens.front() == llama_vocab_bos(vocab_))
        tokens = tokens.subspan(1);
    // Rendered, leading control tokens (BOS) are written apart: the space llama.cpp prefixes to
    // the text after a control token is then dropped as at the start, and tokenizing with
    // parse_special reads the same ids back (what lm-eval's text requests rely on).
    std::string head;
    while (render_special && !tokens.empty() && llama_vocab_is_control(vocab_, tokens.front())) {
        head += token_text(tokens.front(), true);
        tokens = tokens.subspan(1);
    }
    if (!head.empty()) return head + detokenize(tokens, true);
    std::string text(tokens.size() * 4 + 16, '\0');
    int n = llama_detokenize(vocab_, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), !render_special, render_special);
    if (n < 0) {
        text.resize(static_cast<std::size_t>(-n));
        n = llama_detokenize(vocab_, tokens.data(), static_cast<int32_t>(tokens.size()), text.data(),
                             static_cast<int32_t>(text.size()), !render_special, render_special);
    }
    text.resize(static_cast<std::size_t>(std::max(n, 0)));
    return text;
}

void LlamaEngine::check_tokens(std::span<const Token> tokens, const char * what) const {
    for (const Token t : tokens) {
        if (t < 0 || t >= info_.vocab_size) {
            throw Error("{} holds token id {}, outside the vocabulary (0..{})", std::string(what), t,
                        info_.vocab_size - 1);
        }
    }
}

void LlamaEngine::decode(Batch & batch) {
    model::clear_engine_error();
    tokens_decoded_ += static_cast<std::uint64_t>(batch.size());
    const int rc = llama_decode(ctx_.get(), batch.raw);
    if (rc != 0) throw Error("llama_decode failed (code {}): {}", rc, engine_detail("no detail"));
}

void LlamaEngine::check_sequence(std::span<const Token> tokens, const char * what) const {
    if (tokens.size() > static_cast<std::size_t>(info_.context_length)) {
        throw Error("{}: {} tokens exceed the context length of {}", std::string(what), tokens.size(),
                    info_.context_length);
    }
    check_tokens(tokens, what);
}

void LlamaEngine::decode_sequences(std::span<const std::vector<Token>> sequences, std::span<const int> seq_ids,
                                   const WantsLogits & wants, const OnLogits & on_logits) {
    llama_memory_t memory = llama_get_memory(ctx_.get());
    struct Output {
        std::size_t sequence;
        std::size_t pos;
        int batch_index;
    };
    std::vector<Output> outputs;
    for (std::size_t first = 0; first < sequences.size(); first += seq_ids.size()) {
        const std::size_t last = std::min(sequences.size(), first + seq_ids.size());
        for (std::size_t s = first; s < last; ++s) llama_memory_seq_rm(memory, seq_ids[s - first], -1, -1);
        // Each sequence's position of the next token to feed; sequences fill the batch in turn.
        std::vector<std::size_t> fed(last - first, 0);
        while (true) {
            batch_->clear();
            outputs.clear();
            for (std::size_t s = first; s < last && !batch_->full(); ++s) {
                const auto & tokens = sequences[s];
                for (auto & pos = fed[s - first]; pos < tokens.size(); ++pos) {
                    const bool wanted = wants(s, pos);
                    if (!batch_->fits(wanted)) break;
                    const int index = batch_->add(tokens[pos], static_cast<llama_pos>(pos), seq_ids[s - first], wanted);
                    if (wanted) outputs.push_back({s, pos, index});
                }
            }
            if (batch_->size() == 0) break;
            decode(*batch_);
            for (const auto & out : outputs) {
                on_logits(out.sequence, out.pos, logits_at(out.batch_index));
            }
        }
    }
}

std::vector<ScoreResult> LlamaEngine::score(std::span<const ScoreRequest> requests, int top_k) {
    return score_in(requests, top_k, all_seq_ids_);
}

std::vector<ScoreResult> LlamaEngine::score_in(std::span<const ScoreRequest> requests, int top_k,
                                               std::span<const int> seq_ids) {
    std::vector<std::vector<Token>> sequences;
    sequences.reserve(requests.size());
    for (const auto & r : requests) {
        if (r.context.empty()) throw Error("score: the context must hold at least one token (normally BOS)");
        auto & all = sequences.emplace_back(r.context);
        all.insert(all.end(), r.continuation.begin(), r.continuation.end());
        check_sequence(all, "score");
    }
    std::vector<ScoreResult> results(requests.size());
    // Logits at position p predict token p+1: wanted from the last context token on.
    const auto wants = [&](std::size_t s, std::size_t pos) {
        return pos + 1 >= requests[s].context.size() && pos + 1 < sequences[s].size();
    };
    decode_sequences(sequences, seq_ids, wants, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
        results[s].tokens.push_back(token_logprob(logits, sequences[s][pos + 1], top_k));
    });
    return results;
}

int scoring_parallel(int context) { return std::clamp(4096 / std::max(context, 1), 4, 32); }

std::vector<std::vector<ChoicePart>> plan_rounds(std::span<const std::size_t> choices, std::size_t sequences) {
    sequences = std::max<std::size_t>(sequences, 1);
    std::vector<ChoicePart> parts;
    for (std::size_t g = 0; g < choices.size(); ++g)
        for (std::size_t first = 0; first < std::max<std::size_t>(choices[g], 1); first += sequences)
            parts.push_back({.group = g,
                             .first_choice = first,
                             .choices = std::min(sequences, choices[g] - std::min(first, choices[g]))});
    std::vector<std::vector<ChoicePart>> rounds;
    std::size_t used = sequences;
    for (auto & part : parts) {
        const std::size_t needs = std::max<std::size_t>(part.choices, 1);
        if (used + needs > sequences) {
            rounds.emplace_back();
            used = 0;
        }
        part.first_seq = static_cast<int>(used);
        used += needs;
        rounds.back().push_back(part);
    }
    return rounds;
}

std::span<const float> LlamaEngine::logits_at(int batch_index) const {
    return {llama_get_logits_ith(ctx_.get(), batch_index), static_cast<std::size_t>(info_.vocab_size)};
}

std::vector<std::vector<ScoreResult>> LlamaEngine::score_choices(std::span<const ChoiceGroup> groups) {
    if (parallel_ < 2) return Engine::score_choices(groups);  // no sequence to copy a context into
    std::vector<std::size_t> choices;
    std::vector<std::vector<ScoreResult>> results(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
        if (groups[g].context.empty()) throw Error("score: the context must hold at least one token (normally BOS)");
        for (const auto & choice : groups[g].choices) {
            std::vector<Token> all(groups[g].context.begin(), groups[g].context.end());
            all.insert(all.end(), choice.begin(), choice.end());
            check_sequence(all, "score");
        }
        choices.push_back(groups[g].choices.size());
        results[g].resize(groups[g].choices.size());
    }
    for (const auto & round : plan_rounds(choices, static_cast<std::size_t>(parallel_))) {
        llama_memory_clear(llama_get_memory(ctx_.get()), true);
        decode_choices(groups, round, decode_contexts(groups, round), results);
    }
    return results;
}

std::vector<std::vector<float>> LlamaEngine::decode_contexts(std::span<const ChoiceGroup> groups,
                                                             std::span<const ChoicePart> round) {
    // Every context of the round, packed into as few calls as the batch allows.
    std::vector<std::vector<float>> last_logits(round.size());
    std::vector<std::pair<std::size_t, int>> last_of;  // part in round, batch index
    batch_->clear();
    auto flush = [&] {
        if (batch_->size() == 0) return;
        decode(*batch_);
        for (const auto & [k, index] : last_of) {
            const auto l = logits_at(index);
            last_logits[k].assign(l.begin(), l.end());
        }
        last_of.clear();
        batch_->clear();
    };
    for (std::size_t k = 0; k < round.size(); ++k) {
        const auto & context = groups[round[k].group].context;
        for (std::size_t pos = 0; pos < context.size(); ++pos) {
            const bool last = pos + 1 == context.size();
            if (!batch_->fits(last)) flush();
            const int index = batch_->add(context[pos], static_cast<llama_pos>(pos), round[k].first_seq, last);
            if (last) last_of.emplace_back(k, index);
        }
    }
    flush();
    return last_logits;
}

namespace {

// A choice on its way through decode_choices: its sequence, and how many of its tokens are in it.
struct ChoiceFeed {
    std::size_t group;
    std::size_t choice;
    llama_seq_id seq;
    std::size_t fed = 0;  // choice tokens decoded (the last needs no logits)
};

// Each part's context copied into the sequences of its other choices, whose first tokens its last
// logits score.
std::vector<ChoiceFeed> start_choices(llama_memory_t memory, std::span<const ChoiceGroup> groups,
                                      std::span<const ChoicePart> round,
                                      const std::vector<std::vector<float>> & first_logits,
                                      std::vector<std::vector<ScoreResult>> & results) {
    std::vector<ChoiceFeed> feeds;
    for (std::size_t k = 0; k < round.size(); ++k) {
        const auto & part = round[k];
        const auto & group = groups[part.group];
        for (std::size_t c = 0; c < part.choices; ++c) {
            const auto seq = static_cast<llama_seq_id>(part.first_seq + static_cast<llama_seq_id>(c));
            if (c > 0) llama_memory_seq_cp(memory, part.first_seq, seq, -1, -1);
            const std::size_t choice = part.first_choice + c;
            if (!group.choices[choice].empty())
                results[part.group][choice].tokens.push_back(
                    token_logprob(first_logits[k], group.choices[choice][0], 0));
            feeds.push_back({part.group, choice, seq});
        }
    }
    return feeds;
}

}  // namespace

void LlamaEngine::decode_choices(std::span<const ChoiceGroup> groups, std::span<const ChoicePart> round,
                                 const std::vector<std::vector<float>> & first_logits,
                                 std::vector<std::vector<ScoreResult>> & results) {
    std::vector<ChoiceFeed> feeds = start_choices(llama_get_memory(ctx_.get()), groups, round, first_logits, results);
    struct Output {
        std::size_t feed;
        int batch_index;
    };
    std::vector<Output> outputs;
    while (true) {
        batch_->clear();
        outputs.clear();
        for (std::size_t f = 0; f < feeds.size() && !batch_->full(); ++f) {
            auto & feed = feeds[f];
            const auto & group = groups[feed.group];
            const auto & tokens = group.choices[feed.choice];
            for (; feed.fed + 1 < tokens.size() && batch_->fits(true); ++feed.fed) {
                const auto pos = static_cast<llama_pos>(group.context.size() + feed.fed);
                outputs.push_back({f, batch_->add(tokens[feed.fed], pos, feed.seq, true)});
            }
        }
        if (batch_->size() == 0) break;
        decode(*batch_);
        for (const auto & out : outputs) {
            const auto & feed = feeds[out.feed];
            auto & scored = results[feed.group][feed.choice].tokens;
            scored.push_back(
                token_logprob(logits_at(out.batch_index), groups[feed.group].choices[feed.choice][scored.size()], 0));
        }
    }
}

void LlamaEngine::forward(std::span<const std::vector<Token>> sequences, const OnLogits & on_logits,
                          const WantsLogits & wants) {
    for (const auto & tokens : sequences) check_sequence(tokens, "forward");
    decode_sequences(
        sequences, all_seq_ids_, wants ? wants : [](std::size_t, std::size_t) { return true; }, on_logits);
}

std::vector<Token> LlamaEngine::prompt_tokens(const GenerateRequest & request) const {
    std::vector<Token> tokens = request.prompt_tokens;
    if (tokens.empty()) {
        tokens = tokenize(request.prompt, true, request.parse_special);
        // Text that spells the BOS token itself (a client's detokenized ids) would otherwise get a second one.
        const Token bos = llama_vocab_bos(vocab_);
        if (request.parse_special && tokens.size() >= 2 && bos != LLAMA_TOKEN_NULL && tokens[0] == bos &&
            tokens[1] == bos)
            tokens.erase(tokens.begin());
    }
    for (const Token t : tokens) {
        if (t < 0 || t >= info_.vocab_size)
            throw Error("token id {} is outside the vocabulary ({} tokens)", t, info_.vocab_size);
    }
    return tokens;
}

std::vector<Token> LlamaEngine::generation_prompt(const GenerateRequest & request) const {
    const std::vector<Token> tokens = prompt_tokens(request);
    if (tokens.empty()) throw Error("generate: the prompt is empty and the model adds no BOS token");
    if (tokens.size() >= static_cast<std::size_t>(info_.context_length)) {
        throw Error("generate: the prompt has {} tokens, which leaves no room in the context of {}", tokens.size(),
                    info_.context_length);
    }
    return tokens;
}

std::vector<GenerateResult> LlamaEngine::generate(std::span<const GenerateRequest> requests,
                                                  const PieceCallback & on_piece) {
    Slots slots(*this);
    std::vector<std::vector<Token>> prompts;
    prompts.reserve(requests.size());
    for (const auto & r : requests) prompts.push_back(slots.prompt_tokens(r));

    std::vector<GenerateResult> results(requests.size());
    for (std::size_t next = 0; next < requests.size() || slots.active() > 0;) {
        for (; next < requests.size() && slots.free() > 0; ++next) {
            Slots::Job job{requests[next], std::move(prompts[next]), {}, {}, {}};
            if (on_piece) job.on_piece = [&on_piece, next](std::string_view piece) { return on_piece(next, piece); };
            job.on_done = [&results, next](GenerateResult & result, const std::string &) {
                results[next] = std::move(result);
            };
            slots.admit(std::move(job));
        }
        if (slots.active() > 0) slots.step();
    }
    return results;
}

}  // namespace switchyard::engine
