// AWQ: the exactness of the fold on the real shared models and a generated SmolLM2-135M shape,
// alpha = 0 against plain imatrix quantization, refusals, and the rebuild from a recipe.
#include "compress/awq.h"
#include "compress/calibrate.h"
#include "compress/imatrix.h"
#include "compress/quantize.h"
#include "compress/rebuild.h"
#include "engine/llama_engine.h"
#include "model/synthetic_model.h"
#include "support/sha256.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

using namespace switchyard;

namespace {

const char * kBaby = "babyllama-0.9M-f32.gguf";
const char * kStories = "stories260K-f32.gguf";

std::filesystem::path calibrate(const std::filesystem::path & model, const test::ScratchDir & dir, int chunks) {
    compress::CalibrateOptions o;
    o.model = model;
    o.data = {test::data_dir() / "data" / "tinystories-valid-head.txt"};
    o.chunks = chunks;
    o.context = 64;
    o.normalize = true;
    o.threads = 2;
    o.progress = false;
    const auto path = dir.file(model.stem().string() + ".imatrix");
    compress::save_imatrix(compress::calibrate(o).imatrix, path);
    return path;
}

// Every group of every block at `alpha`, whatever the quantization would choose.
std::map<std::string, double> every_group(const std::filesystem::path & model, double alpha) {
    std::map<std::string, double> alphas;
    for (std::uint64_t b = 0; b < model::inspect_gguf(model).block_count; ++b)
        for (const char * g : {"attn_in", "attn_out", "ffn_in", "ffn_out"})
            alphas[fmt::format("blk.{}.{}", b, g)] = alpha;
    return alphas;
}

std::vector<std::vector<float>> logits(const std::filesystem::path & model, const std::string & text) {
    engine::LlamaEngine engine(
        {.model_path = model, .threads = 2, .kv_cache = {GGML_TYPE_F32, GGML_TYPE_F32}, .no_flash_attention = true});
    const std::vector<std::vector<engine::Token>> sequences = {engine.tokenize(text, true)};
    std::vector<std::vector<float>> out;
    engine.forward(sequences,
                   [&](std::size_t, std::size_t, std::span<const float> l) { out.emplace_back(l.begin(), l.end()); });
    return out;
}

// The fold alone (no quantization) at alpha = 0.5 everywhere changes the weights but not the logits.
void expect_fold_exact(const std::filesystem::path & model, const test::ScratchDir & dir, int chunks) {
    const auto imatrix = calibrate(model, dir, chunks);
    const auto out = dir.file(model.stem().string() + "-awq.gguf");
    const auto r = compress::awq({.input = model,
                                  .output = out,
                                  .imatrix = imatrix,
                                  .type = "Q4_0",
                                  .alphas = every_group(model, 0.5),
                                  .threads = 2});
    ASSERT_NE(sha256_file(out), sha256_file(model)) << "the scales must change the weights";
    ASSERT_TRUE(std::filesystem::exists(r.imatrix_output));
    const std::string text = "Once upon a time there was a little girl named Lily who loved to play in the park";
    const auto before = logits(model, text);
    const auto after = logits(out, text);
    ASSERT_EQ(before.size(), after.size());
    for (std::size_t pos = 0; pos < before.size(); ++pos) {
        float largest = 0, delta = 0;
        for (std::size_t t = 0; t < before[pos].size(); ++t) {
            largest = std::max(largest, std::abs(before[pos][t]));
            delta = std::max(delta, std::abs(before[pos][t] - after[pos][t]));
        }
        EXPECT_LE(delta, 1e-4f * largest) << model.filename() << " position " << pos;
    }
}

}  // namespace

TEST(AwqSearch, ScalesAreOneAtAlphaZeroAndNormalisedOtherwise) {
    const std::vector<float> mean_sq = {4.0f, 1.0f, 0.25f, 0.0f};
    for (const float s : compress::awq_scales(mean_sq, 0.0)) EXPECT_EQ(s, 1.0f);
    const auto s = compress::awq_scales(mean_sq, 1.0);
    const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
    EXPECT_NEAR(*lo * *hi, 1.0, 1e-5);
    EXPECT_NEAR(s[0] / s[1], 2.0, 1e-5);  // RMS 2 against 1
    EXPECT_GT(s[3], 0.0f) << "a dead channel must not get a zero scale";
}

TEST(AwqSearch, GridIsCountedAndBadGridsAreRefused) {
    const auto grid = compress::parse_alpha_grid("0:1:0.05");
    ASSERT_EQ(grid.size(), 21u);
    EXPECT_EQ(grid.front(), 0.0);
    EXPECT_DOUBLE_EQ(grid.back(), 1.0);
    EXPECT_EQ(compress::parse_alpha_grid("0:0:0.1"), std::vector<double>{0.0});
    for (const char * bad : {"1:0:0.1", "0:1:0", "0:1", "a:b:c", "0:1:0.1x"})
        EXPECT_THROW(compress::parse_alpha_grid(bad), Error) << bad;
}

TEST(AwqSearch, ErrorWeighsByActivationAndVanishesForFloatTypes) {
    std::vector<float> w(4 * 64);
    for (std::size_t k = 0; k < w.size(); ++k) w[k] = std::sin(0.37f * static_cast<float>(k));
    std::vector<float> ones(64, 1.0f), loud(64, 1.0f), scales(64, 1.0f);
    loud[5] = 100.0f;
    EXPECT_EQ(compress::awq_error(w, 64, ones, scales, GGML_TYPE_F16, 1), 0.0);
    const double plain = compress::awq_error(w, 64, ones, scales, GGML_TYPE_Q4_0, 1);
    EXPECT_GT(plain, 0.0);
    EXPECT_GT(compress::awq_error(w, 64, loud, scales, GGML_TYPE_Q4_0, 1), plain);
}

TEST(Awq, FoldLeavesLogitsUnchangedOnTheSharedModels) {
    test::ScratchDir dir;
    expect_fold_exact(test::model_path(kBaby), dir, 8);  // 8 heads over 4 kv heads
    expect_fold_exact(test::model_path(kStories), dir, 8);
}

TEST(Awq, FoldLeavesLogitsUnchangedOnASmolLM2Shape) {
    test::ScratchDir dir;
    auto shape = model::find_shape("smollm2-135m");  // 9 heads over 3 kv heads
    shape.layers = 4;  // the full 30 change nothing the fold does, at eight times the time
    model::write_synthetic_model({.shape = shape}, dir.file("smol.gguf"));
    expect_fold_exact(dir.file("smol.gguf"), dir, 2);
}

TEST(Awq, AlphaZeroReproducesPlainImatrixQuantization) {
    test::ScratchDir dir;
    const auto base = test::model_path(kBaby);
    const auto imatrix = calibrate(base, dir, 8);
    for (const char * type : {"Q4_0", "Q4_K_M"}) {
        const auto awq = compress::awq({.input = base,
                                        .output = dir.file("awq.gguf"),
                                        .imatrix = imatrix,
                                        .type = type,
                                        .alpha_grid = "0:0:0.05",
                                        .quantize = true,
                                        .threads = 2});
        for (const auto & g : awq.groups) EXPECT_EQ(g.alpha, 0.0) << g.name;
        const auto plain = compress::quantize(
            {.input = base, .output = dir.file("plain.gguf"), .type = type, .imatrix = imatrix, .threads = 2});
        EXPECT_EQ(sha256_file(dir.file("awq.gguf")), sha256_file(dir.file("plain.gguf"))) << type;
    }
}

TEST(Awq, SearchLowersTheWeightedErrorAndRebuildsByteForByte) {
    test::ScratchDir dir;
    const auto base = test::model_path(kBaby);
    const auto imatrix = calibrate(base, dir, 8);
    const auto out = dir.file("q4-awq.gguf");
    const auto r = compress::awq(
        {.input = base, .output = out, .imatrix = imatrix, .type = "Q4_0", .quantize = true, .threads = 2});
    ASSERT_EQ(r.groups.size(), 20u);  // 5 blocks x 4 groups
    double error = 0, unscaled = 0;
    for (const auto & g : r.groups) {
        EXPECT_LE(g.error, g.error_unscaled) << g.name;
        error += g.error;
        unscaled += g.error_unscaled;
    }
    EXPECT_LT(error, unscaled) << "some group must gain from scaling";
    EXPECT_EQ(r.written.tensor_types.at("q4_0"), 36u);  // 35 block matrices and token_embd
    EXPECT_EQ(r.recipe["method"], "awq");
    EXPECT_EQ(r.recipe["parameters"]["groups"].size(), 20u);
    EXPECT_EQ(r.recipe["parameters"]["imatrix"]["sha256"], sha256_file(imatrix));

    const auto rebuilt = compress::rebuild(r.recipe_path, "", dir.file("again.gguf"));
    EXPECT_TRUE(rebuilt.identical);
    EXPECT_EQ(rebuilt.sha256, sha256_file(out));
}

TEST(Awq, OtherArchitecturesAreRefusedInOneLine) {
    test::ScratchDir dir;
    // The same bytes with general.architecture "llama" patched to "gemma" (same length).
    std::string bytes = test::read_file(test::model_path(kBaby));
    const auto key = bytes.find("general.architecture");
    const auto value = bytes.find("llama", key);
    ASSERT_LT(value - key, 40u);
    bytes.replace(value, 5, "gemma");
    test::write_file(dir.file("gemma.gguf"), bytes);
    test::write_file(dir.file("x.imatrix"), "");
    const auto r = test::run_switchyard({"awq", dir.file("gemma.gguf").string(), "-o", dir.file("out.gguf").string(),
                                         "--imatrix", dir.file("x.imatrix").string()});
    test::expect_clean_failure(r, "awq supports the llama architecture only");
    EXPECT_FALSE(std::filesystem::exists(dir.file("out.gguf")));
}
