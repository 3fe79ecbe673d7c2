#include "model/synthetic_model.h"

#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <ggml-cpp.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

namespace switchyard::model {

namespace {

// Real models' shapes, from their published configs. All are written as the llama architecture:
// what matters here is the size of every matrix and vocabulary, not the family's small extras
// (Qwen2's attention biases).
const std::array<ModelShape, 4> kShapes{{
    {.name = "check",
     .vocab = 1024,
     .embedding = 256,
     .layers = 2,
     .heads = 4,
     .kv_heads = 2,
     .feed_forward = 512,
     .context = 512},
    {.name = "smollm2-135m",
     .vocab = 49152,
     .embedding = 576,
     .layers = 30,
     .heads = 9,
     .kv_heads = 3,
     .feed_forward = 1536,
     .context = 8192,
     .tied_output = true},
    {.name = "qwen2.5-0.5b",
     .vocab = 151936,
     .embedding = 896,
     .layers = 24,
     .heads = 14,
     .kv_heads = 2,
     .feed_forward = 4864,
     .context = 32768,
     .tied_output = true},
    {.name = "llama-3.2-1b",
     .vocab = 128256,
     .embedding = 2048,
     .layers = 16,
     .heads = 32,
     .kv_heads = 8,
     .feed_forward = 8192,
     .context = 131072,
     .tied_output = true},
}};

// Standard deviation of the logits: with RMS-normalized hidden states, a trained model's top token
// usually carries a good share of the probability; logits of this spread give that at any
// vocabulary size from 1k to 150k, where unit-scale ones would be nearly uniform.
constexpr double kLogitSpread = 4.0;

// Token ids of SentencePiece's specials and the first byte token, as llama.cpp's converters lay
// them out.
constexpr int kUnknown = 0, kBos = 1, kEos = 2, kFirstByte = 3, kFirstPiece = kFirstByte + 256;

// llama.cpp's token attributes (llama_token_type in llama.h).
constexpr std::int32_t kNormal = 1, kUnknownType = 2, kControl = 3, kByte = 6;

struct Vocabulary {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<std::int32_t> types;
};

// SentencePiece pieces of a real vocabulary's size: the specials, the 256 byte tokens (byte
// fallback: any text encodes), every printable ASCII character, then lower-case strings of growing
// length, each bare and after the word-start mark, so words tokenize into a few pieces, not bytes.
// Earlier pieces score higher, so the tokenizer merges the same way every time.
Vocabulary synthetic_vocabulary(int size) {
    Vocabulary v;
    const auto add = [&](std::string piece, std::int32_t type) {
        v.scores.push_back(-static_cast<float>(v.tokens.size()));
        v.tokens.push_back(std::move(piece));
        v.types.push_back(type);
    };
    add("<unk>", kUnknownType);
    add("<s>", kControl);
    add("</s>", kControl);
    for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), kByte);
    const std::string word_start = "\xE2\x96\x81";  // U+2581, SentencePiece's space
    add(word_start, kNormal);
    for (char c = '!'; c <= '~'; ++c) add(std::string(1, c), kNormal);
    for (int length = 2; static_cast<int>(v.tokens.size()) < size; ++length) {
        std::string piece(length, 'a');
        while (static_cast<int>(v.tokens.size()) < size) {
            add(piece, kNormal);
            if (static_cast<int>(v.tokens.size()) < size) add(word_start + piece, kNormal);
            int i = length - 1;  // next string in lexicographic order
            while (i >= 0 && piece[i] == 'z') piece[i--] = 'a';
            if (i < 0) break;
            ++piece[i];
        }
    }
    return v;
}

// xoshiro256**: fast, and the same numbers on every platform, so a seed names one model.
class Random {
public:
    explicit Random(std::uint64_t seed) {
        for (auto & s : state_) {
            seed += 0x9E3779B97F4A7C15ull;  // splitmix64 expands the seed
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            s = z ^ (z >> 31);
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }
    // Close to a standard normal (the sum of four uniforms, rescaled), one draw per value: a
    // billion weights take seconds, where exact normals would take a minute.
    float normal() {
        const std::uint64_t r = next();
        double sum = 0;
        for (int i = 0; i < 4; ++i) sum += static_cast<double>((r >> (16 * i)) & 0xFFFF) / 65536.0;
        return static_cast<float>((sum - 2.0) * 1.7320508075688772);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> state_{};
};

struct TensorPlan {
    std::string name;
    std::int64_t columns;  // ne[0], the input width
    std::int64_t rows;  // ne[1]; 1 for a norm vector
    double stddev;  // 0: a norm, all ones
};

std::vector<TensorPlan> tensor_plan(const ModelShape & s) {
    const std::int64_t head_dim = s.embedding / s.heads;
    const std::int64_t kv_width = head_dim * s.kv_heads;
    const double in = 1.0 / std::sqrt(static_cast<double>(s.embedding));
    // Each layer adds to the residual stream; scaling what it adds keeps the stream's size
    // independent of depth.
    const double residual = 1.0 / std::sqrt(2.0 * s.layers);
    const double logits = kLogitSpread * in;
    std::vector<TensorPlan> plan{{"token_embd.weight", s.embedding, s.vocab, logits}};
    for (int l = 0; l < s.layers; ++l) {
        const auto n = [l](const char * what) { return fmt::format("blk.{}.{}.weight", l, what); };
        plan.push_back({n("attn_norm"), s.embedding, 1, 0});
        plan.push_back({n("attn_q"), s.embedding, s.embedding, in});
        plan.push_back({n("attn_k"), s.embedding, kv_width, in});
        plan.push_back({n("attn_v"), s.embedding, kv_width, in});
        plan.push_back({n("attn_output"), s.embedding, s.embedding, in * residual});
        plan.push_back({n("ffn_norm"), s.embedding, 1, 0});
        plan.push_back({n("ffn_gate"), s.embedding, s.feed_forward, in});
        plan.push_back({n("ffn_up"), s.embedding, s.feed_forward, in});
        plan.push_back(
            {n("ffn_down"), s.feed_forward, s.embedding, residual / std::sqrt(static_cast<double>(s.feed_forward))});
    }
    plan.push_back({"output_norm.weight", s.embedding, 1, 0});
    if (!s.tied_output) plan.push_back({"output.weight", s.embedding, s.vocab, logits});
    return plan;
}

void check_shape(const ModelShape & s) {
    if (s.vocab < kFirstPiece + 96)
        throw Error("model shape {}: the vocabulary needs at least {} tokens", s.name, kFirstPiece + 96);
    if (s.embedding <= 0 || s.layers <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.feed_forward <= 0 || s.context <= 0)
        throw Error("model shape {}: every size must be positive", s.name);
    if (s.embedding % s.heads != 0 || s.heads % s.kv_heads != 0)
        throw Error("model shape {}: the width must divide into heads, and heads into KV heads", s.name);
}

void write_or_throw(std::FILE * f, const void * data, std::size_t bytes, const std::filesystem::path & path) {
    if (std::fwrite(data, 1, bytes, f) != bytes) throw Error("{}: write failed (disk full?)", path.string());
}

}  // namespace

std::span<const ModelShape> known_shapes() { return kShapes; }

const ModelShape & find_shape(std::string_view name) {
    std::string names;
    for (const auto & s : kShapes) {
        if (s.name == name) return s;
        names += (names.empty() ? "" : ", ") + s.name;
    }
    throw Error("unknown model shape '{}' (known: {})", name, names);
}

void write_synthetic_model(const SyntheticModelOptions & options, const std::filesystem::path & path) {
    const ModelShape & s = options.shape;
    check_shape(s);
    const std::vector<TensorPlan> plan = tensor_plan(s);

    gguf_context_ptr gguf{gguf_init_empty()};
    gguf_set_val_str(gguf.get(), "general.architecture", "llama");
    gguf_set_val_str(gguf.get(), "general.name", fmt::format("synthetic {} (seed {})", s.name, options.seed).c_str());
    gguf_set_val_u32(gguf.get(), "general.file_type", options.f16 ? LLAMA_FTYPE_MOSTLY_F16 : LLAMA_FTYPE_ALL_F32);
    gguf_set_val_u32(gguf.get(), "llama.context_length", s.context);
    gguf_set_val_u32(gguf.get(), "llama.embedding_length", s.embedding);
    gguf_set_val_u32(gguf.get(), "llama.block_count", s.layers);
    gguf_set_val_u32(gguf.get(), "llama.feed_forward_length", s.feed_forward);
    gguf_set_val_u32(gguf.get(), "llama.attention.head_count", s.heads);
    gguf_set_val_u32(gguf.get(), "llama.attention.head_count_kv", s.kv_heads);
    gguf_set_val_u32(gguf.get(), "llama.rope.dimension_count", s.embedding / s.heads);
    gguf_set_val_f32(gguf.get(), "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_u32(gguf.get(), "llama.vocab_size", s.vocab);

    const Vocabulary vocab = synthetic_vocabulary(s.vocab);
    std::vector<const char *> token_ptrs;
    for (const auto & t : vocab.tokens) token_ptrs.push_back(t.c_str());
    gguf_set_val_str(gguf.get(), "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(gguf.get(), "tokenizer.ggml.tokens", token_ptrs.data(), token_ptrs.size());
    gguf_set_arr_data(gguf.get(), "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, vocab.scores.data(), vocab.scores.size());
    gguf_set_arr_data(gguf.get(), "tokenizer.ggml.token_type", GGUF_TYPE_INT32, vocab.types.data(), vocab.types.size());
    gguf_set_val_u32(gguf.get(), "tokenizer.ggml.unknown_token_id", kUnknown);
    gguf_set_val_u32(gguf.get(), "tokenizer.ggml.bos_token_id", kBos);
    gguf_set_val_u32(gguf.get(), "tokenizer.ggml.eos_token_id", kEos);
    gguf_set_val_bool(gguf.get(), "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(gguf.get(), "tokenizer.ggml.add_eos_token", false);

    // Tensor descriptions only (no_alloc): the data is generated and written one tensor at a time,
    // so a model of any size needs memory for its largest tensor alone.
    ggml_init_params params{.mem_size = plan.size() * ggml_tensor_overhead(), .mem_buffer = nullptr, .no_alloc = true};
    ggml_context_ptr ctx{ggml_init(params)};
    std::vector<ggml_tensor *> tensors;
    for (const auto & t : plan) {
        const ggml_type type = t.stddev == 0 || !options.f16 ? GGML_TYPE_F32 : GGML_TYPE_F16;
        ggml_tensor * tensor = t.rows == 1 ? ggml_new_tensor_1d(ctx.get(), type, t.columns)
                                           : ggml_new_tensor_2d(ctx.get(), type, t.columns, t.rows);
        ggml_set_name(tensor, t.name.c_str());
        gguf_add_tensor(gguf.get(), tensor);
        tensors.push_back(tensor);
    }

    AtomicFile out(path);
    std::unique_ptr<std::FILE, int (*)(std::FILE *)> f(std::fopen(out.temp_path().c_str(), "wb"), &std::fclose);
    if (!f) throw Error("{}: cannot create the file", path.string());
    if (!gguf_write_to_file_ptr(gguf.get(), f.get(), /*only_meta=*/true))
        throw Error("{}: write failed", path.string());

    Random random(options.seed);
    const std::size_t alignment = gguf_get_alignment(gguf.get());
    std::vector<float> values;
    std::vector<ggml_fp16_t> halves;
    std::vector<char> padding(alignment, 0);
    for (std::size_t i = 0; i < plan.size(); ++i) {
        const TensorPlan & t = plan[i];
        values.resize(static_cast<std::size_t>(t.columns * t.rows));
        for (auto & v : values) v = t.stddev == 0 ? 1.0f : static_cast<float>(t.stddev) * random.normal();
        const std::size_t bytes = ggml_nbytes(tensors[i]);
        if (tensors[i]->type == GGML_TYPE_F16) {
            halves.resize(values.size());
            ggml_fp32_to_fp16_row(values.data(), halves.data(), static_cast<std::int64_t>(values.size()));
            write_or_throw(f.get(), halves.data(), bytes, path);
        } else {
            write_or_throw(f.get(), values.data(), bytes, path);
        }
        write_or_throw(f.get(), padding.data(), GGML_PAD(bytes, alignment) - bytes, path);
    }
    if (std::fclose(f.release()) != 0) throw Error("{}: write failed (disk full?)", path.string());
    out.commit();
}

}  // namespace switchyard::model
