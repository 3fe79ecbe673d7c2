// Evaluation on the real shared models and data: suites and adapters, scoring of each item kind,
// intervals, paired comparisons, and perplexity against llama.cpp's own llama-perplexity.
#include "engine/llama_engine.h"
#include "eval/cloze.h"
#include "eval/perplexity.h"
#include "eval/results_store.h"
#include "eval/run_suite.h"
#include "eval/speed.h"
#include "eval/suite.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <regex>

using namespace switchyard;

namespace {

engine::LlamaEngine & stories() {
    static engine::LlamaEngine engine(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 256});
    return engine;
}

std::string blimp(const std::string & name) {
    return "blimp:" + (test::data_dir() / "data" / "blimp" / (name + ".jsonl")).string();
}

eval::RunOptions quiet() { return {.normalize = false, .progress = false}; }

}  // namespace

TEST(Suite, ReadsEveryKindAndReportsMalformedLines) {
    test::ScratchDir dir;
    test::write_file(dir.file("mine.jsonl"),
                     "{\"suite\": {\"name\": \"facts\", \"critical\": true, \"requires\": \"context:512\"}}\n"
                     "{\"context\": \"The sky is\", \"choices\": [\" blue\", \" green\"], \"answer\": 0}\n"
                     "{\"good\": \"She runs.\", \"bad\": \"She run.\"}\n"
                     "{\"prompt\": \"2+2=\", \"answer\": 4, \"match\": \"number\", \"max_tokens\": 4}\n"
                     "\n"
                     "{\"context\": \"x\", \"choices\": [\" a\", \" b\"], \"answer\": 5}\n"
                     "not json\n"
                     "{\"prompt\": \"p\", \"answer\": \"(\", \"match\": \"regex\"}\n");
    const auto s = eval::load_suite(dir.file("mine.jsonl").string());
    EXPECT_EQ(s.settings.name, "facts");
    EXPECT_TRUE(s.settings.critical);
    EXPECT_EQ(s.settings.requires_capability, "context:512");
    ASSERT_EQ(s.items.size(), 3u);
    EXPECT_EQ(s.items[0].kind, eval::ItemKind::multiple_choice);
    EXPECT_EQ(s.items[1].kind, eval::ItemKind::pair);
    EXPECT_EQ(s.items[2].kind, eval::ItemKind::generation);
    EXPECT_EQ(s.items[2].line, 4u);
    ASSERT_EQ(s.skipped.size(), 3u);
    EXPECT_EQ(s.skipped[0].line, 6u);
    EXPECT_NE(s.skipped[0].reason.find("'answer' must be an index"), std::string::npos) << s.skipped[0].reason;
    EXPECT_EQ(s.skipped[1].line, 7u);
    EXPECT_EQ(s.skipped[2].line, 8u);
    EXPECT_TRUE(eval::matches(s.items[2], " 4, of course"));
    EXPECT_FALSE(eval::matches(s.items[2], " 5"));
    EXPECT_THROW(eval::load_suite(dir.file("missing.jsonl").string()), Error);
}

TEST(Suite, AdaptersReadTheSharedDataAsItIs) {
    const auto b = eval::load_suite(blimp("anaphor_gender_agreement"));
    EXPECT_EQ(b.items.size(), 1000u);
    EXPECT_EQ(b.items[0].good, "Katherine can't help herself.");
    EXPECT_EQ(b.settings.name, "blimp-anaphor_gender_agreement");
    const auto l = eval::load_suite("lambada:" + (test::data_dir() / "data" / "lambada-test.jsonl").string());
    EXPECT_EQ(l.items.size(), 5153u);
    EXPECT_TRUE(l.skipped.empty());
    const auto & item = l.items[0];
    EXPECT_EQ(item.kind, eval::ItemKind::generation);
    EXPECT_NE(item.prompt.back(), ' ');
    EXPECT_NE(b.content_hash, l.content_hash);
}

TEST(Cloze, IsDeterministicAndWellFormed) {
    test::ScratchDir dir;
    const eval::ClozeOptions o{
        .text = test::data_dir() / "data" / "tinystories-valid-head.txt", .items = 50, .seed = 3};
    const std::string a = eval::build_cloze(o);
    EXPECT_EQ(a, eval::build_cloze(o));
    eval::ClozeOptions other = o;
    other.seed = 4;
    EXPECT_NE(a, eval::build_cloze(other));
    test::write_file(dir.file("cloze.jsonl"), a);
    const auto s = eval::load_suite(dir.file("cloze.jsonl").string());
    ASSERT_EQ(s.items.size(), 50u);
    for (const auto & item : s.items) {
        EXPECT_EQ(item.choices.size(), 4u);
        EXPECT_GE(item.answer, 0);
    }
    other.items = 100000000;
    EXPECT_THROW(eval::build_cloze(other), Error);
}

TEST(RunSuite, PairsOnBlimpBeatChanceWithAnInterval) {
    auto suite = eval::load_suite(blimp("determiner_noun_agreement_1"));
    suite.items.resize(200);
    const auto r = eval::run_suite(stories(), suite, quiet());
    EXPECT_EQ(r.scored, 200u);
    EXPECT_GT(r.accuracy(), 0.6);  // chance is 0.5; this model is far above it on this phenomenon
    EXPECT_LT(r.ci95.lo, r.accuracy());
    EXPECT_GT(r.ci95.hi, r.accuracy());
    EXPECT_FALSE(r.has_norm);
}

TEST(RunSuite, MultipleChoiceAndGenerationItems) {
    test::ScratchDir dir;
    test::write_file(
        dir.file("s.jsonl"),
        "{\"context\": \"Once upon a time, there was a little girl named Lily. She loved to play\", \"choices\": [\" outside\", \" chess tournament\", \" xylophone\"], \"answer\": 0}\n"
        "{\"prompt\": \"Once upon a time\", \"answer\": \", there was a little girl named Lily\", \"match\": \"contains\", \"max_tokens\": 16}\n"
        "{\"prompt\": \"Once upon a time\", \"answer\": \"dragon\", \"match\": \"contains\", \"max_tokens\": 8}\n");
    const auto r = eval::run_suite(stories(), eval::load_suite(dir.file("s.jsonl").string()), quiet());
    ASSERT_EQ(r.outcomes.size(), 3u);
    EXPECT_TRUE(r.outcomes[0].correct);
    EXPECT_TRUE(r.outcomes[1].correct) << r.outcomes[1].output;
    EXPECT_FALSE(r.outcomes[2].correct) << r.outcomes[2].output;
    EXPECT_TRUE(r.has_norm);
    EXPECT_EQ(r.correct, 2u);
}

TEST(RunSuite, ConsistencyItemsReproduceAReferenceAndScoreIt) {
    // The model's own greedy answers are references it reproduces; a changed one it does not, and
    // finds less likely. A chat is rendered as serve renders it (no template: the transcript).
    engine::GenerateRequest g{.prompt = "User: Once upon a time\nAssistant:", .max_tokens = 8};
    g.sampling.temperature = 0;
    const std::string chat_answer = stories().generate(std::span(&g, 1))[0].text;
    g.prompt = "Once upon a time";
    const std::string answer = stories().generate(std::span(&g, 1))[0].text;
    test::ScratchDir dir;
    const nlohmann::json items = {
        {{"prompt", "Once upon a time"}, {"reference", answer}, {"max_tokens", 8}},
        {{"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}},
         {"reference", chat_answer},
         {"max_tokens", 8}},
        {{"prompt", "Once upon a time"}, {"reference", " the dragon ate seven moons"}, {"max_tokens", 8}},
        {{"kind", "consistency"}, {"prompt", "x"}},
    };
    std::string jsonl;
    for (const auto & i : items) jsonl += i.dump() + "\n";
    test::write_file(dir.file("c.jsonl"), jsonl);
    const auto suite = eval::load_suite(dir.file("c.jsonl").string());
    ASSERT_EQ(suite.items.size(), 3u);
    ASSERT_EQ(suite.skipped.size(), 1u);
    EXPECT_NE(suite.skipped[0].reason.find("'reference'"), std::string::npos) << suite.skipped[0].reason;
    EXPECT_EQ(suite.items[1].kind, eval::ItemKind::consistency);
    EXPECT_TRUE(suite.items[0].stop.empty());  // unlike generation items, no stop at a newline unless given
    const auto r = eval::run_suite(stories(), suite, quiet());
    EXPECT_TRUE(r.outcomes[0].correct) << r.outcomes[0].output;
    EXPECT_TRUE(r.outcomes[1].correct) << r.outcomes[1].output;
    EXPECT_FALSE(r.outcomes[2].correct);
    ASSERT_TRUE(r.outcomes[0].reference_logprob && r.outcomes[2].reference_logprob);
    EXPECT_GT(*r.outcomes[0].reference_logprob, *r.outcomes[2].reference_logprob + 1.0);
    ASSERT_EQ(r.reference_scored, 3u);
    nlohmann::json j = r;
    EXPECT_NEAR(
        j["reference_logprob"]["mean"].get<double>(),
        (*r.outcomes[0].reference_logprob + *r.outcomes[1].reference_logprob + *r.outcomes[2].reference_logprob) / 3,
        1e-9);
    // The results store keeps the log-probabilities: a reused run reports the same.
    eval::ResultsStore store(dir.file("results.sqlite"));
    const auto model = test::model_path("stories260K-f32.gguf");
    eval::run_suite_recorded(store, stories(), model, suite, quiet());
    bool reused = false;
    const auto again = eval::run_suite_recorded(store, stories(), model, suite, quiet(), &reused);
    EXPECT_TRUE(reused);
    ASSERT_TRUE(again.mean_reference_logprob.has_value());
    EXPECT_DOUBLE_EQ(*again.mean_reference_logprob, *r.mean_reference_logprob);
}

TEST(RunSuite, UnencodableItemsAreCountedNotDropped) {
    engine::LlamaEngine baby({.model_path = test::model_path("babyllama-0.9M-f32.gguf"), .threads = 2});
    test::ScratchDir dir;
    test::write_file(
        dir.file("s.jsonl"),
        "{\"good\": \"The cat sat.\", \"bad\": \"The cat sit.\"}\n{\"good\": \"Line one\\nline two.\", \"bad\": \"Line one\\nline twos.\"}\n");
    const auto suite = eval::load_suite(dir.file("s.jsonl").string());
    const auto plain = eval::run_suite(baby, suite, quiet());
    EXPECT_EQ(plain.scored, 1u);
    EXPECT_EQ(plain.unencodable, 1u);
    const auto normalized = eval::run_suite(baby, suite, {.normalize = true, .progress = false});
    EXPECT_EQ(normalized.scored, 2u);
    EXPECT_EQ(normalized.unencodable, 0u);
}

TEST(RunSuite, PairedComparisonCountsFlips) {
    auto suite = eval::load_suite(blimp("anaphor_gender_agreement"));
    suite.items.resize(100);
    const auto a = eval::run_suite(stories(), suite, quiet());
    auto b = a;
    // Flip two right answers to wrong and one wrong to right, by hand.
    std::vector<std::size_t> right, wrong;
    for (std::size_t i = 0; i < b.outcomes.size(); ++i) (b.outcomes[i].correct ? right : wrong).push_back(i);
    ASSERT_GE(right.size(), 2u);
    ASSERT_GE(wrong.size(), 1u);
    b.outcomes[right[0]].correct = b.outcomes[right[1]].correct = false;
    b.outcomes[wrong[0]].correct = true;
    const auto c = eval::compare_outcomes(a, b);
    EXPECT_EQ(c.n, 100u);
    EXPECT_EQ(c.right_to_wrong.size(), 2u);
    EXPECT_EQ(c.wrong_to_right.size(), 1u);
    EXPECT_DOUBLE_EQ(c.mcnemar_p, 1.0);  // 2 vs 1 discordant: no evidence
    EXPECT_NEAR(c.drop_absolute.mean_drop, 0.01, 1e-12);
    const auto same = eval::compare_outcomes(a, a);
    EXPECT_EQ(same.right_to_wrong.size() + same.wrong_to_right.size(), 0u);
}

// Same numbers as llama.cpp's llama-perplexity on the same file, model and context.
TEST(Perplexity, MatchesLlamaPerplexity) {
    const std::filesystem::path tool = std::filesystem::path(SWITCHYARD_REFERENCE_TOOLS_DIR) / "llama-perplexity";
    if (std::string(SWITCHYARD_REFERENCE_TOOLS_DIR).empty() || !std::filesystem::exists(tool))
        GTEST_SKIP() << "llama-perplexity not built";
    const auto text = test::data_dir() / "data" / "tinystories-valid-head.txt";
    test::ScratchDir dir;
    const std::string command = tool.string() + " -m " + test::model_path("stories260K-f32.gguf").string() + " -f " +
        text.string() + " -c 128 --chunks 20 -t 2 -b 128 > " + dir.file("out.txt").string() + " 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0);
    std::smatch m;
    const std::string log = test::read_file(dir.file("out.txt"));
    ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(Final estimate: PPL = ([0-9.]+))"))) << log;
    const double theirs = std::stod(m[1]);

    engine::LlamaEngine e(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 128});
    const auto chunks = eval::tokenize_chunks(e, {.files = {text}, .context = 128, .max_chunks = 20});
    const auto ours = eval::measure_perplexity(e, chunks);
    EXPECT_NEAR(ours.perplexity, theirs, 1e-3 * theirs) << "llama-perplexity says " << theirs;
    EXPECT_EQ(ours.tokens, 20u * 63);
    EXPECT_GT(ours.bits_per_byte, 0.5);
    EXPECT_LT(ours.bits_per_byte, 3.0);
}

TEST(Speed, MeasuresThroughputLatencyMemoryAndLabelsEnergy) {
    const auto r =
        eval::measure_speed({.model_path = test::model_path("babyllama-0.9M-f32.gguf"), .threads = 2},
                            {.prompt_tokens = 32, .generate_tokens = 16, .repeats = 6, .price_per_hour = 1.0});
    EXPECT_GT(r.prefill_tokens_per_s, 0);
    EXPECT_GT(r.decode_tokens_per_s, 0);
    EXPECT_GT(r.ttft_p50_ms, 0);
    EXPECT_GE(r.ttft_p95_ms, r.ttft_p50_ms);
    EXPECT_GT(r.peak_rss_bytes, r.file_bytes);  // the weights are resident, plus the runtime
    EXPECT_TRUE(r.energy_source.rfind("measured", 0) == 0 || r.energy_source.rfind("modelled", 0) == 0)
        << r.energy_source;
    EXPECT_GT(r.joules_per_token, 0);
    EXPECT_EQ(r.rounds, 6);
    EXPECT_LE(r.query_ms_lo, r.query_ms);
    EXPECT_GE(r.query_ms_hi, r.query_ms);
    // babyllama spells text a character at a time: its prompt of 32 tokens is about 32 characters.
    EXPECT_NEAR(r.chars_per_token, 1.0, 0.2);
    EXPECT_NEAR(r.prompt_tokens, 32, 4);
    EXPECT_NEAR(r.cost_per_query, 1.0 / 3600 * r.query_ms / 1000, 1e-12);
    EXPECT_NEAR(r.cost_per_1k_tokens, r.cost_per_query * 1000 / (r.prompt_tokens + r.generate_tokens), 1e-12);
}

// A generate request with ignore_eos runs to max_tokens whatever the model samples: the speed
// pass's fixed amount of work. (The shared tiny models separate stories with BOS and seldom sample
// an end-of-generation token, so the stop itself is not forced here; the count is what matters.)
TEST(Speed, IgnoreEosGeneratesTheFixedTokenCount) {
    engine::LlamaEngine e(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 512, .parallel = 1});
    for (const char * prompt : {"The end.", "One day, Lily went to the park."}) {
        engine::GenerateRequest request{.prompt = prompt, .max_tokens = 200};
        request.sampling.temperature = 0;
        request.ignore_eos = true;
        const auto fixed = e.generate(std::span(&request, 1));
        EXPECT_EQ(fixed[0].completion_tokens, 200) << prompt;
        EXPECT_EQ(fixed[0].finish, engine::FinishReason::length) << prompt;
    }
}

// The speed pass on the shared models: each query generates exactly its fixed count (end of text
// ignored), and a candidate timed against a reference gets the same text in its own tokens:
// stories260K spends fewer tokens than character-level babyllama on the same characters.
TEST(Speed, AgainstAReferenceTheSameTextInEachOnesTokens) {
    const auto baby = test::model_path("babyllama-0.9M-f32.gguf");
    const auto stories = test::model_path("stories260K-f32.gguf");
    const eval::SpeedOptions o{.prompt_tokens = 48, .generate_tokens = 24, .repeats = 8, .price_per_hour = 1.0};
    const auto alone = eval::measure_speed({.model_path = stories, .threads = 2}, o);
    EXPECT_EQ(alone.generate_tokens, 24);
    EXPECT_GE(alone.rounds, 6);
    EXPECT_LE(alone.rounds, 8);
    const auto p =
        eval::measure_speed_against({.model_path = stories, .threads = 2}, {.model_path = baby, .threads = 2}, o);
    EXPECT_EQ(p.reference.generate_tokens, 24);
    EXPECT_GT(p.candidate.chars_per_token, 1.5 * p.reference.chars_per_token);
    EXPECT_EQ(p.candidate.generate_tokens,
              static_cast<int>(std::lround(24 * p.reference.chars_per_token / p.candidate.chars_per_token)));
    EXPECT_LT(p.candidate.prompt_tokens, p.reference.prompt_tokens);
    EXPECT_GE(p.rounds, 6);
    EXPECT_LE(p.rounds, 8);
    EXPECT_LE(p.ratio_lo, p.ratio);
    EXPECT_GE(p.ratio_hi, p.ratio);
    EXPECT_GT(p.candidate.peak_rss_bytes, 0u);
    // Its JSON form round-trips (the results store keeps it).
    const auto back = nlohmann::json(p).get<eval::PairedSpeed>();
    EXPECT_DOUBLE_EQ(back.ratio, p.ratio);
    EXPECT_EQ(back.candidate.generate_tokens, p.candidate.generate_tokens);
}

// The rounds' median and its order-statistic interval: 12 rounds give [x_(3), x_(10)] (96.1%),
// and two stalled rounds (a busy machine, 9x and 0.2x) barely move them; 5 rounds give no 95% interval.
TEST(Speed, MedianIntervalIgnoresStalledRounds) {
    std::vector<double> rounds = {1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.03, 0.97, 1.01, 0.99, 1.00, 1.02};
    const auto quiet = eval::median_interval(rounds);
    EXPECT_NEAR(std::exp(quiet.center), 1.0, 1e-12);
    EXPECT_NEAR(std::exp(quiet.lo), 0.99, 1e-12);
    EXPECT_NEAR(std::exp(quiet.hi), 1.02, 1e-12);
    rounds[0] = 9.0;
    rounds[1] = 0.2;
    const auto stalled = eval::median_interval(rounds);  // the order statistics shift by one at most
    EXPECT_NEAR(std::exp(stalled.center), 1.0, 1e-12);
    EXPECT_NEAR(std::exp(stalled.lo), 0.98, 1e-12);
    EXPECT_NEAR(std::exp(stalled.hi), 1.02, 1e-12);
    EXPECT_TRUE(std::isinf(eval::median_interval(std::vector<double>{1, 1, 1, 1, 1}).hi));
    EXPECT_FALSE(std::isinf(eval::median_interval(std::vector<double>{1, 1, 1, 1, 1, 1}).hi));
}

// An interrupted run resumes where it stopped; a finished one is reused, not recomputed.
TEST(ResultsStore, ResumesInterruptedRunsAndReusesFinishedOnes) {
    test::ScratchDir dir;
    auto suite = eval::load_suite(blimp("irregular_past_participle_verbs"));
    suite.items.resize(100);
    const auto model = test::model_path("stories260K-f32.gguf");
    const auto fresh = eval::run_suite(stories(), suite, quiet());

    eval::ResultsStore store(dir.file("results.sqlite"));
    auto interrupted = quiet();
    interrupted.on_batch = [](const std::vector<std::size_t> &, const eval::SuiteResult &) {
        throw std::runtime_error("killed");
    };
    EXPECT_THROW(eval::run_suite_recorded(store, stories(), model, suite, interrupted), std::runtime_error);
    auto runs = store.list_runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].status, "running");
    EXPECT_EQ(runs[0].items_done, 32u);  // the first batch was recorded before the "kill"

    const auto before = stories().tokens_decoded();
    bool reused = true;
    const auto resumed = eval::run_suite_recorded(store, stories(), model, suite, quiet(), &reused);
    const auto resumed_cost = stories().tokens_decoded() - before;
    EXPECT_FALSE(reused);
    EXPECT_EQ(resumed.correct, fresh.correct);
    EXPECT_EQ(resumed.scored, fresh.scored);
    EXPECT_LT(resumed_cost, fresh.tokens_evaluated);  // the recorded items were not run again
    runs = store.list_runs();
    EXPECT_EQ(runs[0].status, "finished");
    EXPECT_EQ(runs[0].items_done, 100u);
    EXPECT_DOUBLE_EQ(runs[0].metrics.at("accuracy"), fresh.accuracy());

    const auto again_before = stories().tokens_decoded();
    const auto again = eval::run_suite_recorded(store, stories(), model, suite, quiet(), &reused);
    EXPECT_TRUE(reused);
    EXPECT_EQ(stories().tokens_decoded(), again_before);
    EXPECT_EQ(again.correct, fresh.correct);
    ASSERT_EQ(store.outcomes(runs[0].id).size(), 100u);
    EXPECT_EQ(store.outcomes(runs[0].id)[5].correct, fresh.outcomes[5].correct);
}

// A sequential plan reads a suite in a fixed shuffled order, a prefix at a time: each prefix is
// scored once (the items before are read back), and the run stays partial until every item is in.
TEST(ResultsStore, ScoresPrefixesOfAFixedOrderOnceAndKeepsPartialRuns) {
    test::ScratchDir dir;
    auto suite = eval::load_suite(blimp("irregular_past_participle_verbs"));
    suite.items.resize(60);
    const auto order = eval::item_order(suite);
    EXPECT_EQ(order, eval::item_order(suite)) << "the same suite gets the same order";
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i) ASSERT_EQ(sorted[i], i) << "a permutation of the items";
    EXPECT_NE(order, sorted) << "shuffled, so any prefix is a fair sample";

    const auto model = test::model_path("stories260K-f32.gguf");
    const auto whole = eval::run_suite(stories(), suite, quiet());
    eval::ResultsStore store(dir.file("results.sqlite"));
    const auto recorded = store.file_model(model);
    int loads = 0;
    const auto engine = [&]() -> engine::Engine & {
        ++loads;
        return stories();
    };
    const std::vector<std::size_t> first20(order.begin(), order.begin() + 20),
        first40(order.begin(), order.begin() + 40);
    std::size_t scored_now = 0;
    const auto r20 = eval::run_items_recorded(store, engine, recorded, suite, first20, quiet(), &scored_now);
    EXPECT_EQ(scored_now, 20u);
    ASSERT_EQ(r20.outcomes.size(), 20u);
    for (std::size_t k = 0; k < 20; ++k)
        EXPECT_EQ(r20.outcomes[k].correct, whole.outcomes[order[k]].correct) << "item " << order[k];
    EXPECT_EQ(store.list_runs().at(0).status, "running");

    const auto r40 = eval::run_items_recorded(store, engine, recorded, suite, first40, quiet(), &scored_now);
    EXPECT_EQ(scored_now, 20u) << "the first 20 are read back";
    EXPECT_EQ(eval::first_items(r40, 20).correct, r20.correct);
    const int loads_before = loads;
    eval::run_items_recorded(store, engine, recorded, suite, first40, quiet(), &scored_now);
    EXPECT_EQ(scored_now, 0u);
    EXPECT_EQ(loads, loads_before) << "nothing new: no model asked for";

    const auto all = eval::run_items_recorded(store, engine, recorded, suite, order, quiet(), &scored_now);
    EXPECT_EQ(scored_now, 20u);
    EXPECT_EQ(all.correct, whole.correct);
    EXPECT_EQ(store.list_runs().at(0).status, "finished");
    EXPECT_TRUE(eval::finished_result(store, recorded, suite, quiet()).has_value());
}

TEST(Perplexity, SlidingWindowsScoreEveryTokenOnceWithMoreContext) {
    test::ScratchDir dir;
    const std::string text = test::read_file(test::data_dir() / "data" / "tinystories-valid-head.txt").substr(0, 6000);
    test::write_file(dir.file("t.txt"), text);
    engine::LlamaEngine e(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 128});
    const auto chunks = eval::tokenize_chunks(e, {.files = {dir.file("t.txt")}, .context = 128});
    const auto disjoint = eval::measure_perplexity_sliding(e, chunks, 128, 128, 0);
    const auto sliding = eval::measure_perplexity_sliding(e, chunks, 128, 32, 0);
    EXPECT_EQ(disjoint.tokens, chunks.stream.size() - 1);
    EXPECT_EQ(sliding.tokens, chunks.stream.size() - 1);
    EXPECT_LT(sliding.perplexity, disjoint.perplexity);  // the same tokens, predicted from longer contexts
    EXPECT_THROW(eval::measure_perplexity_sliding(e, chunks, 128, 0, 0), Error);
}
