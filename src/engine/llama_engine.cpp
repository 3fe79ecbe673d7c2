#include "engine/llama_engine.h"

#include "engine/llama_slots.h"
#include "engine/rpc_devices.h"
#include "engine/text_stream.h"
#include "model/engine_log.h"
#include "model/model_info.h"
#include "stats/logprobs.h"
#include "support/error.h"
#include "support/utf8.h"

#include <fmt/format.h>
#include <llama-cpp.h>
#include <llama.h>

#include <algorithm>
#include <cctype>
#include <numeric>
#include <optional>
#include <thread>

namespace switchyard::engine {

// One reusable llama_batch sized for the engine's batch and sequence limits.
struct LlamaEngine::Batch {
    llama_batch raw;
    int capacity;
    int output_capacity;  // positions with logits per call: llama.cpp asserts its n_outputs_max
    int outputs = 0;

    Batch(int tokens, int sequences, int max_outputs)
        : raw(llama_batch_init(tokens, 0, sequences)), capacity(tokens), output_capacity(std::min(tokens, max_outputs)) {}
    ~Batch() { llama_batch_free(raw); }

    void clear() {
        raw.n_tokens = 0;
        outputs = 0;
    }
    bool full() const { return raw.n_tokens >= capacity; }
    // Whether one more token fits, with logits or without: a token without logits still does when
    // the outputs are at their limit, so a chunk's unscored last token is not cut into a call of
    // its own (a call of another size gives other last digits).
    bool fits(bool logits) const { return !full() && (!logits || outputs < output_capacity); }
    int size() const { return raw.n_tokens; }

    // Adds a token and returns its index in the batch (where its logits will be, if wanted).
    int add(Token token, llama_pos pos, llama_seq_id seq, bool logits) {
        const int i = raw.n_tokens++;
        raw.token[i] = token;
        raw.pos[i] = pos;
        raw.n_seq_id[i] = 1;
        raw.seq_id[i][0] = seq;
        raw.logits[i] = logits;
        outputs += logits;
        return i;
    }
};

namespace {

std::string engine_detail(const char * fallback) {
    std::string detail = model::last_engine_error();
    return detail.empty() ? fallback : detail;
}


// The grammar, when there is one, goes first: the other samplers then choose among the tokens it allows.
llama_sampler_ptr make_sampler(const SamplingParams & p, const llama_vocab * vocab, const Grammar & grammar) {
    llama_sampler_ptr chain(llama_sampler_chain_init(llama_sampler_chain_default_params()));
    if (!grammar.gbnf.empty()) {
        llama_sampler * g = nullptr;
        if (grammar.lazy) {
            std::vector<const char *> patterns;
            for (const auto & t : grammar.trigger_patterns) patterns.push_back(t.c_str());
            g = llama_sampler_init_grammar_lazy_patterns(vocab, grammar.gbnf.c_str(), "root", patterns.data(), patterns.size(),
                                                         grammar.trigger_tokens.data(), grammar.trigger_tokens.size());
        } else {
            g = llama_sampler_init_grammar(vocab, grammar.gbnf.c_str(), "root");
        }
        if (g == nullptr) throw Error("llama.cpp cannot parse the grammar for this request: " + engine_detail("no detail"));
        llama_sampler_chain_add(chain.get(), g);
        if (!grammar.prefill.empty()) {
            std::vector<Token> tokens(grammar.prefill.size() + 4);
            const int n = llama_tokenize(vocab, grammar.prefill.data(), static_cast<int32_t>(grammar.prefill.size()), tokens.data(),
                                         static_cast<int32_t>(tokens.size()), false, true);
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
                throw Error(std::string("the grammar for this request rejects the template's opening of the answer: ") + e.what());
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
    model_ = llama_model_load_from_file(options.model_path.c_str(), mparams);
    if (model_ == nullptr) {
        throw Error(options.model_path.string() + ": llama.cpp cannot load this model: " + engine_detail("unknown reason"));
    }
    vocab_ = llama_model_get_vocab(model_);

    const int declared = llama_model_n_ctx_train(model_);
    info_.name = file.name.empty() ? options.model_path.filename().string() : file.name;
    info_.context_length = options.context_length > 0 ? options.context_length : declared;
    info_.vocab_size = llama_vocab_n_tokens(vocab_);
    info_.adds_bos = llama_vocab_get_add_bos(vocab_);
    info_.bos = llama_vocab_bos(vocab_);
    info_.eos = llama_vocab_eos(vocab_);
    parallel_ = std::max(1, options.parallel);
    all_seq_ids_.resize(static_cast<std::size_t>(parallel_));
    std::iota(all_seq_ids_.begin(), all_seq_ids_.end(), 0);
    if (const char * tmpl = llama_model_chat_template(model_, nullptr)) chat_template_ = tmpl;

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
    const int max_outputs = options.max_outputs > 0 ? std::min(options.max_outputs, options.batch_size) : options.batch_size;
    cparams.n_outputs_max = static_cast<uint32_t>(std::max({1, max_outputs, parallel_}));
    cparams.kv_unified = false;
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    cparams.no_perf = true;
    cparams.cb_eval = options.eval_callback;
    cparams.cb_eval_user_data = options.eval_callback_data;
    model::clear_engine_error();
    ctx_ = llama_init_from_model(model_, cparams);
    if (ctx_ == nullptr) {
        llama_model_free(model_);
        throw Error(options.model_path.string() + ": cannot create a llama.cpp context: " + engine_detail("unknown reason"));
    }
    batch_ = std::make_unique<Batch>(static_cast<int>(cparams.n_batch), parallel_, static_cast<int>(cparams.n_outputs_max));
    attach_threadpool(threads);
}

void LlamaEngine::attach_threadpool(int threads) {
    // Looked up through the CPU backend's registry, as llama.cpp's own tools do, so that this
    // also works where the backend is loaded dynamically.
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) return;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    using New = ggml_threadpool_t (*)(ggml_threadpool_params *);
    const auto create = reinterpret_cast<New>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new"));
    threadpool_free_ = reinterpret_cast<void (*)(ggml_threadpool_t)>(ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free"));
    if (create == nullptr || threadpool_free_ == nullptr) return;
    ggml_threadpool_params params = ggml_threadpool_params_default(threads);
    threadpool_ = create(&params);
    if (threadpool_ != nullptr) llama_attach_threadpool(ctx_, threadpool_, nullptr);
}

LlamaEngine::~LlamaEngine() {
    batch_.reset();
    llama_free(ctx_);
    if (threadpool_ != nullptr) threadpool_free_(threadpool_);
    llama_model_free(model_);
}

void LlamaEngine::check_grammar(const Grammar & grammar) const { make_sampler({.temperature = 0}, vocab_, grammar); }

const ChatTemplate * LlamaEngine::chat() const {
    // Parsed on first use: scoring and quantizing never need it.
    std::call_once(chat_once_, [this] {
        try {
            chat_ = ChatTemplate::for_model(model_);
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
                throw UnencodableText("the model's vocabulary cannot encode " + utf8::describe(utf8::decode_at(text, i)) +
                            " at byte " + std::to_string(i) + " of the text (it has no such token and no byte fallback)");
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
    if (!render_special && !tokens.empty() && info_.adds_bos && tokens.front() == llama_vocab_bos(vocab_)) tokens = tokens.subspan(1);
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
            throw Error(std::string(what) + " holds token id " + std::to_string(t) + ", outside the vocabulary (0.." +
                        std::to_string(info_.vocab_size - 1) + ")");
        }
    }
}

void LlamaEngine::decode(Batch & batch) {
    model::clear_engine_error();
    tokens_decoded_ += static_cast<std::uint64_t>(batch.size());
    const int rc = llama_decode(ctx_, batch.raw);
    if (rc != 0) throw Error("llama_decode failed (code " + std::to_string(rc) + "): " + engine_detail("no detail"));
}

void LlamaEngine::check_sequence(std::span<const Token> tokens, const char * what) const {
    if (tokens.size() > static_cast<std::size_t>(info_.context_length)) {
        throw Error(std::string(what) + ": " + std::to_string(tokens.size()) + " tokens exceed the context length of " +
                    std::to_string(info_.context_length));
    }
    check_tokens(tokens, what);
}

void LlamaEngine::decode_sequences(std::span<const std::vector<Token>> sequences, std::span<const int> seq_ids, const WantsLogits & wants,
                                   const OnLogits & on_logits) {
    llama_memory_t memory = llama_get_memory(ctx_);
    const auto n_vocab = static_cast<std::size_t>(info_.vocab_size);
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
                on_logits(out.sequence, out.pos, std::span<const float>(llama_get_logits_ith(ctx_, out.batch_index), n_vocab));
            }
        }
    }
}

std::vector<ScoreResult> LlamaEngine::score(std::span<const ScoreRequest> requests, int top_k) {
    return score_in(requests, top_k, all_seq_ids_);
}

std::vector<ScoreResult> LlamaEngine::score_in(std::span<const ScoreRequest> requests, int top_k, std::span<const int> seq_ids) {
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

std::vector<std::vector<ScoreResult>> LlamaEngine::score_choices(std::span<const ChoiceGroup> groups) {
    if (parallel_ < 2) return Engine::score_choices(groups);  // no sequence to copy a context into
    for (const auto & g : groups) {
        if (g.context.empty()) throw Error("score: the context must hold at least one token (normally BOS)");
        for (const auto & choice : g.choices) {
            std::vector<Token> all(g.context.begin(), g.context.end());
            all.insert(all.end(), choice.begin(), choice.end());
            check_sequence(all, "score");
        }
    }
    // A group needs one sequence per choice (the first choice continues the context's own
    // sequence); a group with more choices than sequences is split, each part re-reading the context.
    struct Part {
        std::size_t group;
        std::size_t first_choice;
        std::size_t choices;
    };
    const auto slots = static_cast<std::size_t>(parallel_);
    std::vector<Part> parts;
    for (std::size_t g = 0; g < groups.size(); ++g)
        for (std::size_t first = 0; first < std::max<std::size_t>(groups[g].choices.size(), 1); first += slots)
            parts.push_back({g, first, std::min(slots, groups[g].choices.size() - std::min(first, groups[g].choices.size()))});

    std::vector<std::vector<ScoreResult>> results(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) results[g].resize(groups[g].choices.size());
    llama_memory_t memory = llama_get_memory(ctx_);
    const auto n_vocab = static_cast<std::size_t>(info_.vocab_size);
    auto logprob = [&](std::span<const float> logits, Token target) { return token_logprob(logits, target, 0); };
    auto logits_at = [&](int batch_index) { return std::span<const float>(llama_get_logits_ith(ctx_, batch_index), n_vocab); };

    for (std::size_t begin = 0; begin < parts.size();) {
        // One round: as many parts as the sequences hold, each part's sequences consecutive.
        std::size_t end = begin, used = 0;
        std::vector<llama_seq_id> base;
        while (end < parts.size() && used + std::max<std::size_t>(parts[end].choices, 1) <= slots) {
            base.push_back(static_cast<llama_seq_id>(used));
            used += std::max<std::size_t>(parts[end].choices, 1);
            ++end;
        }
        llama_memory_clear(memory, true);

        // Every context of the round, packed into as few calls as the batch allows; each context's
        // last logits predict its choices' first tokens.
        std::vector<std::vector<float>> first_logits(end - begin);
        std::vector<std::pair<std::size_t, int>> last_of;  // part in round, batch index
        batch_->clear();
        auto flush = [&] {
            if (batch_->size() == 0) return;
            decode(*batch_);
            for (const auto & [k, index] : last_of) {
                const auto l = logits_at(index);
                first_logits[k].assign(l.begin(), l.end());
            }
            last_of.clear();
            batch_->clear();
        };
        for (std::size_t k = 0; k < end - begin; ++k) {
            const auto & context = groups[parts[begin + k].group].context;
            for (std::size_t pos = 0; pos < context.size(); ++pos) {
                const bool last = pos + 1 == context.size();
                if (!batch_->fits(last)) flush();
                const int index = batch_->add(context[pos], static_cast<llama_pos>(pos), base[k], last);
                if (last) last_of.emplace_back(k, index);
            }
        }
        flush();

        struct Feed {
            std::size_t group;
            std::size_t choice;
            llama_seq_id seq;
            std::size_t fed = 0;  // choice tokens decoded (the last needs no logits)
        };
        std::vector<Feed> feeds;
        for (std::size_t k = 0; k < end - begin; ++k) {
            const auto & part = parts[begin + k];
            const auto & group = groups[part.group];
            for (std::size_t c = 0; c < part.choices; ++c) {
                const auto seq = static_cast<llama_seq_id>(base[k] + static_cast<llama_seq_id>(c));
                if (c > 0) llama_memory_seq_cp(memory, base[k], seq, -1, -1);
                const std::size_t choice = part.first_choice + c;
                if (!group.choices[choice].empty()) results[part.group][choice].tokens.push_back(logprob(first_logits[k], group.choices[choice][0]));
                feeds.push_back({part.group, choice, seq});
            }
        }
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
                scored.push_back(logprob(logits_at(out.batch_index), groups[feed.group].choices[feed.choice][scored.size()]));
            }
        }
        begin = end;
    }
    return results;
}

void LlamaEngine::forward(std::span<const std::vector<Token>> sequences, const OnLogits & on_logits, const WantsLogits & wants) {
    for (const auto & tokens : sequences) check_sequence(tokens, "forward");
    decode_sequences(sequences, all_seq_ids_, wants ? wants : [](std::size_t, std::size_t) { return true; }, on_logits);
}

std::vector<Token> LlamaEngine::prompt_tokens(const GenerateRequest & request) const {
    std::vector<Token> tokens = request.prompt_tokens;
    if (tokens.empty()) {
        tokens = tokenize(request.prompt, true, request.parse_special);
        // Text that spells the BOS token itself (a client's detokenized ids) would otherwise get a second one.
        const Token bos = llama_vocab_bos(vocab_);
        if (request.parse_special && tokens.size() >= 2 && bos != LLAMA_TOKEN_NULL && tokens[0] == bos && tokens[1] == bos) tokens.erase(tokens.begin());
    }
    for (const Token t : tokens) {
        if (t < 0 || t >= info_.vocab_size) throw Error(fmt::format("token id {} is outside the vocabulary ({} tokens)", t, info_.vocab_size));
    }
    return tokens;
}

std::vector<Token> LlamaEngine::generation_prompt(const GenerateRequest & request) const {
    const std::vector<Token> tokens = prompt_tokens(request);
    if (tokens.empty()) throw Error("generate: the prompt is empty and the model adds no BOS token");
    if (tokens.size() >= static_cast<std::size_t>(info_.context_length)) {
        throw Error("generate: the prompt has " + std::to_string(tokens.size()) + " tokens, which leaves no room in the context of " +
                    std::to_string(info_.context_length));
    }
    return tokens;
}

std::vector<GenerateResult> LlamaEngine::generate(std::span<const GenerateRequest> requests, const PieceCallback & on_piece) {
    Slots slots(*this);
    std::vector<std::vector<Token>> prompts;
    prompts.reserve(requests.size());
    for (const auto & r : requests) prompts.push_back(slots.prompt_tokens(r));

    std::vector<GenerateResult> results(requests.size());
    for (std::size_t next = 0; next < requests.size() || slots.active() > 0;) {
        for (; next < requests.size() && slots.free() > 0; ++next) {
            Slots::Job job{requests[next], std::move(prompts[next]), {}, {}, {}};
            if (on_piece) job.on_piece = [&on_piece, next](std::string_view piece) { return on_piece(next, piece); };
            job.on_done = [&results, next](GenerateResult & result, const std::string &) { results[next] = std::move(result); };
            slots.admit(std::move(job));
        }
        if (slots.active() > 0) slots.step();
    }
    return results;
}

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
      reuse_prefixes_(!llama_model_is_recurrent(engine.model_) && !llama_model_is_hybrid(engine.model_) && llama_model_n_swa(engine.model_) == 0) {
    llama_memory_clear(llama_get_memory(engine_.ctx_), true);
}

LlamaEngine::Slots::~Slots() = default;

int LlamaEngine::Slots::size() const { return static_cast<int>(slots_.size()); }

namespace {

std::size_t common_prefix(std::span<const Token> a, std::span<const Token> b) {
    return static_cast<std::size_t>(std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(std::min(a.size(), b.size())), b.begin()).first - a.begin());
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
        std::size_t common = reuse_prefixes_ && !job.prompt.empty() ? std::min(common_prefix(s->cached, job.prompt), job.prompt.size() - 1) : 0;
        if (common < 2) common = 0;
        if (it == slots_.end() || common > reused || (common == reused && s->last_admitted < it->last_admitted)) {
            it = s;
            reused = common;
        }
    }
    if (it == slots_.end()) throw std::logic_error("Slots::admit: no free slot");
    llama_memory_t memory = llama_get_memory(engine_.ctx_);
    const auto seq = static_cast<llama_seq_id>(it - slots_.begin());
    if (reused == 0 || !llama_memory_seq_rm(memory, seq, static_cast<llama_pos>(reused), -1)) {
        llama_memory_seq_rm(memory, seq, -1, -1);
        reused = 0;
    }
    it->cached.resize(reused);
    it->last_admitted = ++admitted_;
    it->n_past = static_cast<llama_pos>(reused);
    it->prompt_fed = reused;
    prompt_reused_ += reused;
    llama_sampler_ptr sampler;
    try {
        sampler = make_sampler(job.request.sampling, engine_.vocab_, job.request.grammar);
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
    Batch & batch = *engine_.batch_;
    batch.clear();
    for (auto & slot : slots_) {
        slot.batch_index = -1;
        if (slot.active && !slot.prefilling() && batch.fits(true)) {
            slot.batch_index = batch.add(slot.next, slot.n_past++, static_cast<llama_seq_id>(&slot - slots_.data()), true);
            slot.cached.push_back(slot.next);
        }
    }
    for (auto & slot : slots_) {
        if (!slot.active || !slot.prefilling()) continue;
        const auto & prompt = slot.job.prompt;
        for (; slot.prompt_fed < prompt.size(); ++slot.prompt_fed) {
            const bool last = slot.prompt_fed + 1 == prompt.size();
            if (!batch.fits(last)) break;
            const int index = batch.add(prompt[slot.prompt_fed], slot.n_past++, static_cast<llama_seq_id>(&slot - slots_.data()), last);
            slot.cached.push_back(prompt[slot.prompt_fed]);
            if (last) slot.batch_index = index;
            ++prompt_decoded_;
        }
    }
    if (batch.size() == 0) return;
    engine_.decode(batch);
    for (auto & slot : slots_) {
        if (slot.active && slot.batch_index >= 0) sample(slot);
    }
}

void LlamaEngine::Slots::sample(Slot & slot) {
    llama_context * ctx = engine_.ctx_;
    const Token token = llama_sampler_sample(slot.sampler.get(), ctx, slot.batch_index);
    if (llama_vocab_is_eog(engine_.vocab_, token) && !slot.job.request.ignore_eos) {
        finish(slot, FinishReason::eos);
        return;
    }
    ++generated_;
    ++slot.result.completion_tokens;
    if (slot.job.request.logprobs >= 0) {
        const std::span<const float> logits(llama_get_logits_ith(ctx, slot.batch_index), static_cast<std::size_t>(engine_.info_.vocab_size));
        slot.result.token_logprobs.push_back(token_logprob(logits, token, slot.job.request.logprobs));
    }
    const auto & text_tokens = slot.job.request.text_tokens;
    const bool as_text = std::find(text_tokens.begin(), text_tokens.end(), token) != text_tokens.end();
    const std::string piece = slot.text->push(engine_.token_text(token, as_text));
    if (!piece.empty() && slot.job.on_piece && !slot.job.on_piece(piece)) {
        finish(slot, FinishReason::cancelled);
    } else if (slot.text->stopped()) {
        finish(slot, FinishReason::stop);
    } else if (slot.result.completion_tokens >= slot.job.request.max_tokens || slot.n_past >= engine_.info_.context_length) {
        finish(slot, FinishReason::length);
    } else {
        slot.next = token;
    }
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
