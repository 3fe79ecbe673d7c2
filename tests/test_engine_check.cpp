// Synthetic models with real shapes, and the engine check that scripts/setup.sh runs once per
// engine build: every kernel family (Q8_0, Q4_0, Q4_K, IQ4_NL) really written and evaluated.
#include "engine/llama_engine.h"
#include "model/model_info.h"
#include "model/synthetic_model.h"
#include "support/error.h"
#include "support/sha256.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

using namespace switchyard;

namespace {

std::filesystem::path check_model(const test::ScratchDir & dir, std::uint32_t seed = 1, bool f16 = false) {
    const auto path = dir.file(fmt::format("check-{}-{}.gguf", seed, f16 ? "f16" : "f32"));
    model::write_synthetic_model({.shape = model::find_shape("check"), .f16 = f16, .seed = seed}, path);
    return path;
}

}  // namespace

TEST(SyntheticModel, HasTheShapeItNamesAndASeedNamesOneModel) {
    test::ScratchDir dir;
    const auto a = check_model(dir, 1);
    const model::ModelInfo info = model::inspect_gguf(a);
    const model::ModelShape & shape = model::find_shape("check");
    EXPECT_EQ(info.architecture, "llama");
    EXPECT_EQ(info.vocab_size, static_cast<std::uint64_t>(shape.vocab));
    EXPECT_EQ(info.block_count, static_cast<std::uint64_t>(shape.layers));
    EXPECT_EQ(info.embedding_length, static_cast<std::uint64_t>(shape.embedding));
    EXPECT_TRUE(info.byte_fallback);
    // Embeddings, output and per layer 7 matrices (q, k with 2 of 4 heads' width, v, o, gate, up, down).
    const std::uint64_t kv = shape.embedding / shape.heads * shape.kv_heads;
    const std::uint64_t matrices = 2ull * shape.vocab * shape.embedding +
        shape.layers *
            (2ull * shape.embedding * shape.embedding + 2 * shape.embedding * kv +
             3ull * shape.embedding * shape.feed_forward);
    const std::uint64_t norms = (2ull * shape.layers + 1) * shape.embedding;
    EXPECT_EQ(info.parameters, matrices + norms);
    EXPECT_EQ(info.tensor_types.at("f32"), info.tensor_count);

    const auto again = dir.file("again.gguf");
    model::write_synthetic_model({.shape = shape, .seed = 1}, again);
    EXPECT_EQ(sha256_file(a), sha256_file(again));
    EXPECT_NE(sha256_file(a), sha256_file(check_model(dir, 2)));

    const model::ModelInfo half = model::inspect_gguf(check_model(dir, 1, true));
    EXPECT_EQ(half.tensor_types.at("f16"), 2u + 7u * shape.layers);
    EXPECT_EQ(half.tensor_types.at("f32"), 2u * shape.layers + 1);
    EXPECT_EQ(half.parameters, info.parameters);
}

TEST(SyntheticModel, RealShapesAndClearErrors) {
    const model::ModelShape & smol = model::find_shape("smollm2-135m");
    EXPECT_EQ(smol.vocab, 49152);
    EXPECT_EQ(smol.layers, 30);
    EXPECT_EQ(smol.embedding, 576);
    EXPECT_EQ(model::find_shape("qwen2.5-0.5b").vocab, 151936);
    EXPECT_TRUE(model::find_shape("llama-3.2-1b").tied_output);
    try {
        model::find_shape("gpt-5");
        FAIL() << "an unknown shape was accepted";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("unknown model shape 'gpt-5' (known: check, smollm2-135m"),
                  std::string::npos)
            << e.what();
    }
    test::ScratchDir dir;
    model::ModelShape bad = model::find_shape("check");
    bad.heads = 3;  // 256 does not split into 3 heads
    EXPECT_THROW(model::write_synthetic_model({.shape = bad}, dir.file("bad.gguf")), Error);
    EXPECT_FALSE(std::filesystem::exists(dir.file("bad.gguf")));
}

TEST(SyntheticModel, AnyTextTokenizesAndPredictionsArePeaked) {
    test::ScratchDir dir;
    engine::LlamaEngine engine({.model_path = check_model(dir), .threads = 2, .context_length = 128});
    // Byte fallback: characters outside the synthetic pieces (accents, emoji, newline) still encode.
    const std::string text = "Tom said: \"héllo wörld\" 🙂 #1\nand went home.";
    const auto tokens = engine.tokenize(text, false);
    EXPECT_EQ(engine.detokenize(tokens), text);
    // Words become pieces, not bytes: fewer tokens than characters.
    const std::string sentence = "the little dog ran after the ball";
    EXPECT_LT(engine.tokenize(sentence, false).size(), sentence.size() * 3 / 4);

    // A trained model puts much of the mass on a few tokens; uniform over 1024 would give 0.1%.
    const auto context = engine.tokenize("Once upon a time there was a little girl who liked to play", true);
    double top_mass = 0;
    int positions = 0;
    engine.forward(std::span(&context, 1), [&](std::size_t, std::size_t, std::span<const float> logits) {
        const float max = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (const float l : logits) sum += std::exp(l - max);
        top_mass += 1.0 / sum;
        ++positions;
    });
    ASSERT_GT(positions, 0);
    EXPECT_GT(top_mass / positions, 0.10);
    EXPECT_LT(top_mass / positions, 0.99);
}

TEST(EngineCheck, EveryKernelFamilyRunsAndAgreesWithF32) {
    const auto r = test::run_switchyard({"check-engine", "-t", "4"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("instruction sets: "), std::string::npos) << r.out;
    for (const char * type : {"F32", "Q8_0", "Q4_0", "Q4_K_S", "IQ4_NL"})
        EXPECT_NE(r.out.find(fmt::format("{:<7} ok", type)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("engine check passed"), std::string::npos) << r.out;
}

// Not only F32: a Q8_0 and a Q4_K variant, really holding q8_0 and q4_K matrices, measured by eval.
TEST(EngineCheck, EvalMeasuresQ8_0AndQ4_KVariants) {
    test::ScratchDir dir;
    const auto original = check_model(dir);
    std::string text;
    for (int i = 0; i < 12; ++i)
        text += "Lily and Tom went to the park on a sunny day. They saw a big red ball under a tree. ";
    test::write_file(dir.file("text.txt"), text);
    double q8_kld = 0;
    for (const auto & [type, tensor_type] : {std::pair{"Q8_0", "q8_0"}, std::pair{"Q4_K_M", "q4_K"}}) {
        const auto variant = dir.file(std::string(type) + ".gguf");
        const auto q = test::run_switchyard({"quantize", original.string(), variant.string(), type});
        ASSERT_EQ(q.exit_code, 0) << q.err;
        EXPECT_GT(model::inspect_gguf(variant).tensor_types.count(tensor_type), 0u) << type;
        const auto r =
            test::run_switchyard({"eval", "-m", variant.string(), "--base", original.string(), "--text",
                                  dir.file("text.txt").string(), "--ctx", "64", "--no-results", "--json", "-t", "2"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const auto out = nlohmann::json::parse(r.out);
        const double kld = out["drift"]["kld"]["mean"].get<double>();
        EXPECT_TRUE(std::isfinite(out["perplexity"].get<double>())) << type;
        EXPECT_GT(kld, 0.0) << type;  // quantization moves the predictions a little...
        EXPECT_LT(kld, 1.0) << type;  // ...not completely (random weights suffer more than trained ones)
        EXPECT_GT(out["drift"]["top1_agreement"].get<double>(), 0.35) << type;
        if (std::string(type) == "Q8_0")
            q8_kld = kld;
        else
            EXPECT_GT(kld, q8_kld) << "4-bit drifts further than 8-bit";
    }
}
