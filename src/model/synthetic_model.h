// Synthetic models: GGUF files with the exact shapes of real Llama-family models, seeded random
// weights and a synthetic vocabulary of the real size with byte fallback, for the engine check,
// tests and benchmarks (these machines cannot download a real model).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace switchyard::model {

struct ModelShape {
    std::string name;
    int vocab = 0;
    int embedding = 0;  // width of the residual stream
    int layers = 0;
    int heads = 0;
    int kv_heads = 0;  // grouped-query attention when fewer than heads
    int feed_forward = 0;
    int context = 0;  // declared training context
    bool tied_output = false;  // the output matrix is the token embedding (no output.weight)
};

// The shapes switchyard knows by name: "check" (the smallest model whose matrices every
// quantization type applies to: rows of 256), "smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b".
std::span<const ModelShape> known_shapes();

// Throws switchyard::Error listing the known names.
const ModelShape & find_shape(std::string_view name);

struct SyntheticModelOptions {
    ModelShape shape;
    bool f16 = false;  // weight matrices in F16 instead of F32 (norms stay F32, as converters write them)
    std::uint32_t seed = 1;
};

// Writes a llama-architecture GGUF with `options.shape`, atomically. Weights are drawn from a
// normal distribution scaled by 1/sqrt(fan-in), so activations stay finite at any depth, and the
// output matrix is scaled so that next-token distributions are peaked (a few tokens carry most of
// the probability), as a trained model's are. The vocabulary is SentencePiece with the 256 byte
// tokens, so any text tokenizes. The same options always give the same bytes.
// Throws switchyard::Error on an invalid shape or a failed write.
void write_synthetic_model(const SyntheticModelOptions & options, const std::filesystem::path & path);

}  // namespace switchyard::model
