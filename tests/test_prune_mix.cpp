// Pruning, sensitivity and mixed precision on babyllama: requested sparsity is what is stored,
// structure holds, recipes rebuild the same bytes, and bad options are refused cleanly.
#include "compress/calibrate.h"
#include "compress/mix.h"
#include "compress/prune.h"
#include "compress/rebuild.h"
#include "engine/llama_engine.h"
#include "engine/normalize.h"
#include "support/error.h"
#include "test_support.h"

#include <gguf.h>
#include <gtest/gtest.h>

#include <cstring>

using namespace switchyard;
using compress::NmPattern;

namespace {

const char * kBaby = "babyllama-0.9M-f32.gguf";

std::filesystem::path text_file() { return test::data_dir() / "data" / "tinystories-valid-head.txt"; }

compress::PruneOptions prune_options(const test::ScratchDir & dir, const std::string & out) {
    compress::PruneOptions o;
    o.input = test::model_path(kBaby);
    o.output = dir.file(out);
    o.threads = 2;
    return o;
}

std::filesystem::path imatrix_for_babyllama(const test::ScratchDir & dir) {
    compress::CalibrateOptions c;
    c.model = test::model_path(kBaby);
    c.data = {text_file()};
    c.normalize = true;
    c.chunks = 20;
    c.threads = 2;
    c.progress = false;
    const auto path = dir.file("b.imatrix");
    compress::save_imatrix(compress::calibrate(c).imatrix, path);
    return path;
}

// The F32 values of one tensor of a GGUF file.
std::vector<float> tensor_values(const std::filesystem::path & path, const std::string & name) {
    gguf_context * ctx = gguf_init_from_file(path.c_str(), {.no_alloc = true, .ctx = nullptr});
    const auto id = gguf_find_tensor(ctx, name.c_str());
    const std::size_t offset = gguf_get_data_offset(ctx) + gguf_get_tensor_offset(ctx, id);
    std::vector<float> values(gguf_get_tensor_size(ctx, id) / sizeof(float));
    gguf_free(ctx);
    const std::string bytes = test::read_file(path);
    std::memcpy(values.data(), bytes.data() + offset, values.size() * sizeof(float));
    return values;
}

}  // namespace

TEST(PruneRows, MagnitudeZeroesTheSmallestOfEachRow) {
    std::vector<float> w = {0.5f, -0.1f, 0.3f, -0.9f, /* row 2 */ 1.0f, 2.0f, -3.0f, 0.01f};
    compress::prune_rows(w, 4, {}, 0.5, {});
    EXPECT_EQ(w, (std::vector<float>{0.5f, 0.0f, 0.0f, -0.9f, 0.0f, 2.0f, -3.0f, 0.0f}));
}

TEST(PruneRows, WandaWeighsByTheColumnActivations) {
    std::vector<float> w = {0.5f, -0.1f, 0.3f, -0.9f};
    // Column 1 sees large activations (importance 100 -> scale 10): |-0.1| * 10 = 1 survives.
    const std::vector<float> importance = {1.0f, 100.0f, 1.0f, 1.0f};
    compress::prune_rows(w, 4, importance, 0.5, {});
    EXPECT_EQ(w, (std::vector<float>{0.0f, -0.1f, 0.0f, -0.9f}));
}

TEST(PruneRows, NmKeepsTheLargestOfEachGroup) {
    std::vector<float> w = {4, 1, 3, 2, /**/ -1, -8, 7, 0.5f};
    compress::prune_rows(w, 8, {}, 0.0, NmPattern{2, 4});
    EXPECT_EQ(w, (std::vector<float>{4, 0, 3, 0, 0, -8, 7, 0}));
    EXPECT_THROW(compress::parse_pattern("4:2"), Error);
    EXPECT_EQ(compress::parse_pattern("4:8").m, 8);
}

TEST(Prune, RealSparsityEqualsTheRequestedOne) {
    test::ScratchDir dir;
    auto o = prune_options(dir, "p.gguf");
    o.sparsity = 0.5;
    const auto r = compress::prune(o);
    ASSERT_EQ(r.pruned.size(), 35u);  // blk.* matrices; embeddings and output left alone
    for (const auto & t : r.pruned) EXPECT_DOUBLE_EQ(t.sparsity(), 0.5) << t.name;
    EXPECT_DOUBLE_EQ(r.overall_sparsity, 0.5);
    EXPECT_EQ(r.written.file_bytes, model::inspect_gguf(test::model_path(kBaby)).file_bytes)
        << "dense storage keeps the size";
    EXPECT_NE(r.recipe["parameters"]["note"].get<std::string>().find("unchanged"), std::string::npos);
    const auto embd = tensor_values(o.output, "token_embd.weight");
    EXPECT_EQ(std::count(embd.begin(), embd.end(), 0.0f), 0);
    o.output = dir.file("p30.gguf");
    o.sparsity = 0.3;
    o.include_embeddings = true;
    const auto r30 = compress::prune(o);
    EXPECT_EQ(r30.pruned.size(), 36u);
    for (const auto & t : r30.pruned) EXPECT_NEAR(t.sparsity(), 0.3, 1.0 / 128) << t.name;  // rounding per row
}

TEST(Prune, TwoFourHoldsInEveryGroupAndWandaDiffersFromMagnitude) {
    test::ScratchDir dir;
    const auto imatrix = imatrix_for_babyllama(dir);
    auto o = prune_options(dir, "mag24.gguf");
    o.pattern = {2, 4};
    const auto magnitude = compress::prune(o);
    EXPECT_DOUBLE_EQ(magnitude.overall_sparsity, 0.5);
    const auto w = tensor_values(o.output, "blk.2.ffn_down.weight");
    for (std::size_t g = 0; g < w.size(); g += 4) {
        EXPECT_EQ(std::count(w.begin() + g, w.begin() + g + 4, 0.0f), 2) << "group at " << g;
    }
    o.output = dir.file("wanda24.gguf");
    o.method = compress::PruneMethod::wanda;
    o.imatrix = imatrix;
    const auto wanda = compress::prune(o);
    EXPECT_DOUBLE_EQ(wanda.overall_sparsity, 0.5);
    EXPECT_NE(wanda.recipe["output"]["sha256"], magnitude.recipe["output"]["sha256"]);
}

TEST(Prune, LayerDropAndThenQuantizeStillGenerate) {
    test::ScratchDir dir;
    auto o = prune_options(dir, "small.gguf");
    o.sparsity = 0.25;
    o.layers_drop = {3};
    o.then_quantize = "Q8_0";
    const auto r = compress::prune(o);
    EXPECT_EQ(r.written.block_count, 4u);
    EXPECT_EQ(r.written.tensor_types.at("q8_0"), 30u);
    engine::LlamaEngine e({.model_path = o.output, .threads = 2});
    engine::GenerateRequest g;
    g.prompt = "Once upon a time";
    g.max_tokens = 8;
    g.sampling.temperature = 0;
    EXPECT_EQ(e.generate(std::span(&g, 1))[0].completion_tokens, 8);
    const auto rebuilt = compress::rebuild(r.recipe_path, {}, dir.file("again.gguf"));
    EXPECT_TRUE(rebuilt.identical);
}

TEST(Prune, BadOptionsAreRefusedWithoutOutput) {
    test::ScratchDir dir;
    auto o = prune_options(dir, "x.gguf");
    o.method = compress::PruneMethod::wanda;
    o.sparsity = 0.5;
    try {
        compress::prune(o);
        FAIL();
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("--imatrix"), std::string::npos) << e.what();
    }
    o.method = compress::PruneMethod::magnitude;
    o.sparsity = 1.5;
    EXPECT_THROW(compress::prune(o), Error);
    o.sparsity = 0.3;
    o.pattern = {2, 4};
    EXPECT_THROW(compress::prune(o), Error);  // contradicts 2:4's 50%
    o.pattern = {};
    o.sparsity = 0;
    EXPECT_THROW(compress::prune(o), Error);  // nothing to do
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Prune, QuantizedInputIsRefused) {
    test::ScratchDir dir;
    auto o = prune_options(dir, "q.gguf");
    o.sparsity = 0.5;
    o.then_quantize = "Q4_0";
    compress::prune(o);
    auto again = prune_options(dir, "qq.gguf");
    again.input = dir.file("q.gguf");
    again.sparsity = 0.5;
    try {
        compress::prune(again);
        FAIL();
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("prune works on F32/F16/BF16"), std::string::npos) << e.what();
    }
}

TEST(Mix, SensitivityRanksAndMixFitsTheBudget) {
    test::ScratchDir dir;
    compress::DriftData data{.files = {text_file()}, .chunks = 4, .normalize = true, .threads = 2, .progress = false};
    const auto ranking = compress::measure_sensitivity(test::model_path(kBaby), {"Q4_0"}, data);
    ASSERT_EQ(ranking.size(), 37u);  // every weight matrix
    for (std::size_t i = 1; i < ranking.size(); ++i)
        EXPECT_GE(ranking[i - 1].drift.kld.mean, ranking[i].drift.kld.mean);
    EXPECT_GT(ranking.front().drift.kld.mean, 0.0);
    EXPECT_LT(ranking.front().drift.top1_agreement, 1.0);

    compress::MixOptions o{
        .input = test::model_path(kBaby), .output = dir.file("mix.gguf"), .budget = "600K", .data = data};
    const auto r = compress::mix(o);
    EXPECT_LE(r.written.file_bytes, 600u * 1024);
    ASSERT_EQ(r.uniform.size(), 3u);
    // Between Q4_0 and Q5_0 in size, so its drift should be too (measured, not assumed).
    EXPECT_GT(r.written.file_bytes, r.uniform[2].file_bytes);
    EXPECT_LT(r.drift.kld.mean, r.uniform[2].drift.kld.mean);
    EXPECT_EQ(r.recipe["method"], "mix");
    EXPECT_TRUE(compress::rebuild(r.recipe_path, {}, dir.file("mix-again.gguf")).identical);

    o.budget = "100K";
    try {
        compress::mix(o);
        FAIL();
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("below the smallest file"), std::string::npos) << e.what();
    }
    o.budget = "lots";
    EXPECT_THROW(compress::mix(o), Error);
    o.budget = "4.5bpw";
    o.types = {"Q4_K_M"};
    EXPECT_THROW(compress::mix(o), Error);  // a mix of types cannot be assigned per tensor
}

TEST(Mix, TrialsComeBackFromTheResultsStoreSoANewBudgetQuantizesOnlyTheMix) {
    test::ScratchDir dir;
    compress::DriftData data{.files = {text_file()},
                             .chunks = 2,
                             .normalize = true,
                             .threads = 2,
                             .progress = false,
                             .results = dir.file("results.sqlite")};
    const auto first = compress::measure_sensitivity(test::model_path(kBaby), {"Q4_0"}, data);
    const auto again = compress::measure_sensitivity(test::model_path(kBaby), {"Q4_0"}, data);
    ASSERT_EQ(first.size(), 37u);
    ASSERT_EQ(again.size(), first.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
        EXPECT_EQ(again[i].tensor, first[i].tensor);
        EXPECT_EQ(again[i].type, first[i].type);
        EXPECT_EQ(again[i].bytes, first[i].bytes);
        EXPECT_EQ(again[i].drift.kld.mean, first[i].drift.kld.mean);
        EXPECT_EQ(again[i].drift.top1_agreement, first[i].drift.top1_agreement);
    }

    // The Q4_0 trials are known: the first mix runs the 37 Q8_0 ones, two uniform files and the mix.
    compress::MixOptions o{.input = test::model_path(kBaby),
                           .output = dir.file("mix.gguf"),
                           .budget = "700K",
                           .types = {"Q8_0", "Q4_0"},
                           .data = data};
    const auto r = compress::mix(o);
    EXPECT_EQ(r.reused, 37u);
    EXPECT_EQ(r.quantized, 37u + 2u + 1u);
    EXPECT_LE(r.written.file_bytes, 700u * 1024);
    // A new budget: only the mix itself is quantized and measured.
    o.budget = "620K";
    o.output = dir.file("mix-620.gguf");
    const auto tighter = compress::mix(o);
    EXPECT_EQ(tighter.quantized, 1u);
    EXPECT_EQ(tighter.reused, 2u * 37u + 2u);
    EXPECT_LE(tighter.written.file_bytes, 620u * 1024);
    EXPECT_LT(tighter.written.file_bytes, r.written.file_bytes);
    ASSERT_EQ(tighter.uniform.size(), 2u);
    EXPECT_EQ(tighter.uniform[1].drift.kld.mean, r.uniform[1].drift.kld.mean);
    // The same budget without the store chooses the same tensors.
    o.data.results.clear();
    o.output = dir.file("mix-620-fresh.gguf");
    EXPECT_EQ(compress::mix(o).choice, tighter.choice);
}
