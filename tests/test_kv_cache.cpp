// A quantized KV cache: its names, the portfolio's `kv:`, the engine's refusal of a combination
// the model cannot hold, and that results with it are recorded apart from the file's own.
#include "engine/llama_engine.h"
#include "eval/results_store.h"
#include "eval/suite.h"
#include "model/kv_cache.h"
#include "model/portfolio.h"
#include "model/synthetic_model.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>

using switchyard::Error;
using namespace switchyard;
namespace test = switchyard::test;

namespace {

std::string error_of(const std::function<void()> & f) {
    try {
        f();
    } catch (const Error & e) {
        return e.what();
    }
    return "";
}

const model::KvCacheTypes kQ8{GGML_TYPE_Q8_0, GGML_TYPE_Q8_0};

const char * kKvPortfolio = R"(models:
  - name: small
    path: small.gguf
    kv: {k: q8_0, v: q4_0}
  - name: plain
    path: plain.gguf
)";

// The "check" shape: head size 64, which every quantized cache type's block divides.
std::filesystem::path check_model(const test::ScratchDir & dir) {
    const auto path = dir.file("check.gguf");
    model::write_synthetic_model({.shape = model::find_shape("check"), .seed = 7}, path);
    return path;
}

}  // namespace

TEST(KvCacheType, ReadsLlamaServersNamesAndRefusesOthers) {
    EXPECT_EQ(model::parse_cache_type("q8_0"), GGML_TYPE_Q8_0);
    EXPECT_EQ(model::parse_cache_type("iq4_nl"), GGML_TYPE_IQ4_NL);
    EXPECT_EQ(model::parse_cache_type("f16"), GGML_TYPE_F16);
    const auto message = error_of([] { model::parse_cache_type("q2_K"); });
    EXPECT_NE(message.find("unsupported KV cache type 'q2_K'"), std::string::npos) << message;
    EXPECT_NE(message.find("q8_0, q4_0"), std::string::npos) << message;
}

TEST(KvCacheType, PortfolioReadsWritesAndChecksKv) {
    const auto p = model::parse_portfolio(kKvPortfolio, "p.yaml", "/dir");
    EXPECT_EQ(p.models[0].kv_cache.k, GGML_TYPE_Q8_0);
    EXPECT_EQ(p.models[0].kv_cache.v, GGML_TYPE_Q4_0);
    EXPECT_EQ(p.models[1].kv_cache.k, GGML_TYPE_F16);
    const auto yaml = model::portfolio_to_yaml(p, "/dir");
    EXPECT_NE(yaml.find("kv: {k: q8_0, v: q4_0}"), std::string::npos) << yaml;
    EXPECT_EQ(yaml.find("kv:", yaml.find("name: plain")), std::string::npos) << "f16 is the default, not written";
    EXPECT_EQ(model::portfolio_to_yaml(model::parse_portfolio(yaml, "again.yaml", "/dir"), "/dir"), yaml);

    const auto bad_type = error_of(
        [] { model::parse_portfolio("models:\n  - name: a\n    path: a.gguf\n    kv: {k: q3}\n", "p.yaml", "/dir"); });
    EXPECT_NE(bad_type.find("kv.k"), std::string::npos) << bad_type;
    EXPECT_NE(bad_type.find("'q3'"), std::string::npos) << bad_type;
    const auto remote = error_of([] {
        model::parse_portfolio("models:\n  - name: a\n    endpoint: http://h:1/v1\n    kv: {k: q8_0}\n", "p.yaml",
                               "/dir");
    });
    EXPECT_NE(remote.find("in-process"), std::string::npos) << remote;
}

// babyllama's heads are 16 wide: no 32-element block fits, and llama.cpp says so before allocating.
TEST(KvCache, ACacheTheHeadsCannotHoldIsAOneLineError) {
    const auto r = test::run_switchyard({"generate", "-m", test::model_path("babyllama-0.9M-f32.gguf").string(), "-p",
                                         "Once upon a time", "-n", "4", "--cache-type-k", "q8_0"});
    test::expect_clean_failure(r, "K cache type q8_0 with block size 32 does not divide n_embd_head_k=16");
    const auto bad_name = test::run_switchyard(
        {"generate", "-m", test::model_path("babyllama-0.9M-f32.gguf").string(), "-p", "x", "--cache-type-v", "q9"});
    test::expect_clean_failure(bad_name, "unsupported KV cache type 'q9'");
}

// A quantized cache changes the arithmetic, not the program: the same prompt still generates; the
// logits move (the cache is really quantized); f16 named explicitly is today's engine exactly.
TEST(KvCache, QuantizedCachesGenerateAndF16IsTheDefault) {
    test::ScratchDir dir;
    const auto path = check_model(dir);
    const auto last_logits = [&](engine::LlamaEngineOptions options) {
        options.model_path = path;
        options.threads = 2;
        options.context_length = 128;
        options.parallel = 1;
        engine::LlamaEngine e(options);
        const std::vector<std::vector<engine::Token>> sequence = {e.tokenize("Once upon a time there was a dog", true)};
        std::vector<float> last;
        e.forward(sequence, [&](std::size_t, std::size_t pos, std::span<const float> logits) {
            if (pos + 1 == sequence[0].size()) last.assign(logits.begin(), logits.end());
        });
        engine::GenerateRequest request{.prompt = "Once upon a time there was", .max_tokens = 24};
        request.sampling.temperature = 0;
        EXPECT_GT(e.generate(std::span(&request, 1))[0].completion_tokens, 0);
        return last;
    };
    const auto max_difference = [](const std::vector<float> & a, const std::vector<float> & b) {
        double worst = 0;
        for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
        return worst;
    };
    const auto defaults = last_logits({});
    ASSERT_FALSE(defaults.empty());
    EXPECT_EQ(last_logits({.kv_cache = {}}), defaults);
    const auto q8 = last_logits({.kv_cache = kQ8});
    const auto q4 = last_logits({.kv_cache = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_0}});
    EXPECT_GT(max_difference(q8, defaults), 0.0);
    EXPECT_GT(max_difference(q4, defaults), max_difference(q8, defaults)) << "4 bits move the logits more than 8";
}

// The results store keys a run by the model's bytes; with a quantized cache it is another model,
// so `eval` neither reuses the file's f16 results for it nor the other way round.
TEST(KvCache, EvalRecordsAQuantizedCacheApart) {
    test::ScratchDir dir;
    const auto path = check_model(dir);
    const auto suite = dir.file("suite.jsonl");
    std::string lines;
    for (int i = 0; i < 12; ++i)
        lines += R"({"good": "The dog runs )" + std::to_string(i) + R"( times.", "bad": "The dog run )" +
            std::to_string(i) + R"( times."})" + "\n";
    test::write_file(suite, lines);
    const auto store = dir.file("results.sqlite");
    const auto eval = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = {"eval",      "-m",           path.string(), "--tasks", suite.string(),
                                         "--results", store.string(), "--json",      "-t",      "2"};
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_switchyard(args);
    };
    const auto finished = [&](const model::KvCacheTypes & kv) {
        eval::ResultsStore results(store);
        return results.has_finished_run(results.file_model(path, kv), eval::load_suite(suite.string()),
                                        eval::recorded_options({}));
    };
    const auto plain = eval({});
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    EXPECT_FALSE(nlohmann::json::parse(plain.out).contains("kv_cache"));
    EXPECT_TRUE(finished({}));
    EXPECT_FALSE(finished(kQ8)) << "the f16 run does not stand for a q8_0 cache";

    const auto kv = eval({"--cache-type-k", "q8_0", "--cache-type-v", "q8_0"});
    ASSERT_EQ(kv.exit_code, 0) << kv.err;
    EXPECT_EQ(nlohmann::json::parse(kv.out).value("kv_cache", ""), "q8_0/q8_0") << kv.out;
    EXPECT_TRUE(finished(kQ8));
    eval::ResultsStore results(store);
    EXPECT_EQ(results.file_model(path, kQ8).key, results.file_model(path).key + "+kv=q8_0/q8_0");
}

namespace {

std::string kv_plan(const std::filesystem::path & base) {
    const auto text = test::data_dir() / "data" / "tinystories-valid-head.txt";
    return "base: {name: check, path: " + base.string() +
        "}\n"
        "variants:\n  - {kv: {k: q8_0, v: q8_0}}\n  - {kv: {k: q4_0, v: q4_0}}\n"
        "screen:\n  files: [" +
        text.string() +
        "]\n  chunks: 4\n"
        "tasks:\n  - cloze: {text: " +
        text.string() +
        ", items: 200, skip_passages: 1500}\n    name: story-cloze\n"
        // A random-weight model answers about a third right: the floor and the limit are set so
        // that the caches pass on the evidence, and the tie-break (no price: no cost step) decides.
        "policy:\n  accuracy_floor: 0.0\n  max_drop: 0.5\n  budgets: {memory: 2G}\n  deployment: {context: 4096}\n"
        "speed: {prompt_tokens: 16, generate_tokens: 4, repeats: 6}\n";
}

}  // namespace

// A KV cache variant is measured like any other (drift, tasks, speed and memory at the deployment's
// context), its cache's bytes are what llama.cpp allocates, and with costs not compared the
// smallest file and cache wins and is served with its cache.
TEST(KvCachePlan, AKvCacheVariantIsMeasuredAndServedWithItsCache) {
    test::ScratchDir dir;
    const auto base = check_model(dir);
    test::write_file(dir.file("plan.yaml"), kv_plan(base));
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    std::map<std::string, nlohmann::json> by_name;
    for (const auto & c : decision["candidates"]) by_name[c["name"]] = c;
    ASSERT_TRUE(by_name.count("kv:q8_0") && by_name.count("kv:q4_0")) << decision["candidates"].dump();
    const auto & q8 = by_name["kv:q8_0"];
    const auto & q4 = by_name["kv:q4_0"];
    EXPECT_EQ(q8["kv_cache"], "q8_0/q8_0");
    EXPECT_GT(q8["drift"]["kld_mean"].get<double>(), 0.0);
    EXPECT_GT(q4["drift"]["kld_mean"].get<double>(), q8["drift"]["kld_mean"].get<double>());
    // 2 layers x 4096 cells x 128 keys and 128 values per cell: 2 bytes each at f16, 34 per 32 at
    // q8_0, 18 per 32 at q4_0 (ggml's block sizes).
    EXPECT_EQ(by_name["check"]["cost"]["kv_cache_bytes"], 2u * 4096 * 256 * 2);
    EXPECT_EQ(q8["cost"]["kv_cache_bytes"], 2u * 4096 * (2 * 4 * 34));
    EXPECT_EQ(q4["cost"]["kv_cache_bytes"], 2u * 4096 * (2 * 4 * 18));
    EXPECT_GT(q4["cost"]["peak_rss_bytes"].get<std::uint64_t>(), q4["cost"]["kv_cache_bytes"].get<std::uint64_t>());

    const auto portfolio = model::load_portfolio(out / "portfolio.yaml");
    const auto * chosen = portfolio.find_model(portfolio.routes.front().model);
    ASSERT_NE(chosen, nullptr);
    EXPECT_EQ(chosen->kv_cache.label(), "q4_0/q4_0") << test::read_file(out / "portfolio.yaml");
    EXPECT_NE(r.out.find("smallest file and KV cache"), std::string::npos) << r.out;
}

// A cache the base cannot hold stops the plan before anything is measured, naming the variant.
TEST(KvCachePlan, ACacheTheBaseCannotHoldNamesTheVariant) {
    test::ScratchDir dir;
    std::string plan = kv_plan(test::model_path("babyllama-0.9M-f32.gguf"));
    plan += "normalize: true\n";
    test::write_file(dir.file("plan.yaml"), plan);
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", dir.file("out").string()});
    test::expect_clean_failure(r, "variant kv:q8_0:");
    EXPECT_NE(r.err.find("does not divide n_embd_head_k=16"), std::string::npos) << r.err;
}
