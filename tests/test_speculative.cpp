// Speculative decoding: a draft model's proposals, verified by the target, leave the target's
// output as it was (the self-draft of babyllama by its own Q8_0 and Q4_0), a draft of another
// vocabulary is refused with its reason, and `eval --speed --draft` times drafted decoding.
#include "compress/quantize.h"
#include "engine/llama_engine.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace switchyard;
namespace test = switchyard::test;

namespace {

const std::filesystem::path & babyllama() {
    static const auto path = test::model_path("babyllama-0.9M-f32.gguf");
    return path;
}

// babyllama quantized to `type` once per test run, in a folder that outlives the tests.
std::filesystem::path babyllama_as(const std::string & type) {
    static test::ScratchDir dir;
    const auto path = dir.file("babyllama-" + type + ".gguf");
    if (!std::filesystem::exists(path))
        compress::quantize({.input = babyllama(), .output = path, .type = type, .threads = 2});
    return path;
}

// The first words of `count` stories, made encodable by babyllama (its vocabulary has no newline).
std::vector<std::string> story_starts(std::size_t count) {
    std::ifstream in(test::data_dir() / "data" / "tinystories-valid-head.txt");
    std::vector<std::string> prompts;
    std::string line;
    while (prompts.size() < count && std::getline(in, line)) {
        std::string kept;
        for (const char c : line) {
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ' ' || c == ',' || c == '.') kept += c;
        }
        // Four words: a start the model continues in its own way.
        std::size_t end = 0;
        for (int words = 0; words < 4 && end != std::string::npos; ++words) end = kept.find(' ', end + 1);
        kept = kept.substr(0, end);
        if (kept.size() >= 8) prompts.push_back(kept);
    }
    return prompts;
}

std::vector<engine::GenerateRequest> greedy_requests(const std::vector<std::string> & prompts, int max_tokens) {
    std::vector<engine::GenerateRequest> requests;
    for (const auto & p : prompts) {
        engine::GenerateRequest r;
        r.prompt = p;
        r.max_tokens = max_tokens;
        r.sampling.temperature = 0;
        r.logprobs = 0;
        requests.push_back(r);
    }
    return requests;
}

engine::LlamaEngineOptions babyllama_options(const std::filesystem::path & draft = {}) {
    return {.model_path = babyllama(), .threads = 2, .context_length = 256, .parallel = 4,
            .draft = {.model_path = draft}};
}

void expect_same_outputs(const std::vector<engine::GenerateResult> & plain,
                         const std::vector<engine::GenerateResult> & drafted) {
    ASSERT_EQ(plain.size(), drafted.size());
    for (std::size_t i = 0; i < plain.size(); ++i) {
        EXPECT_EQ(plain[i].text, drafted[i].text) << "prompt " << i;
        EXPECT_EQ(plain[i].finish, drafted[i].finish) << "prompt " << i;
        EXPECT_EQ(plain[i].completion_tokens, drafted[i].completion_tokens) << "prompt " << i;
        ASSERT_EQ(plain[i].token_logprobs.size(), drafted[i].token_logprobs.size()) << "prompt " << i;
        for (std::size_t t = 0; t < plain[i].token_logprobs.size(); ++t)
            EXPECT_EQ(plain[i].token_logprobs[t].token, drafted[i].token_logprobs[t].token) << "prompt " << i;
    }
}

}  // namespace

TEST(Speculative, SelfDraftLeavesFiftyGreedyOutputsAsTheyWere) {
    const auto prompts = story_starts(50);
    ASSERT_EQ(prompts.size(), 50u);
    const auto requests = greedy_requests(prompts, 64);
    engine::LlamaEngine plain(babyllama_options());
    const auto expected = plain.generate(requests);
    EXPECT_EQ(plain.draft_stats().drafted, 0u);

    engine::LlamaEngine drafted(babyllama_options(babyllama_as("Q8_0")));
    expect_same_outputs(expected, drafted.generate(requests));
    const auto & stats = drafted.draft_stats();
    EXPECT_GT(stats.steps, 0u);
    EXPECT_GT(stats.drafted, 0u);
    // Q8_0 of the same weights agrees with them almost everywhere.
    EXPECT_GT(stats.acceptance(), 0.8) << stats.accepted << " of " << stats.drafted;
}

TEST(Speculative, ARejectedProposalLeavesTheOutputAsItWas) {
    // Q4_0 disagrees more often: proposals are cut short and their cells dropped.
    const auto requests = greedy_requests(story_starts(20), 64);
    const auto expected = engine::LlamaEngine(babyllama_options()).generate(requests);
    engine::LlamaEngine drafted(babyllama_options(babyllama_as("Q4_0")));
    expect_same_outputs(expected, drafted.generate(requests));
    const auto & stats = drafted.draft_stats();
    EXPECT_GT(stats.accepted, 0u);
    EXPECT_LT(stats.accepted, stats.drafted);
}

TEST(Speculative, ADraftOfAnotherVocabularyIsRefusedWithItsReason) {
    const auto stories = test::model_path("stories260K-f32.gguf");
    EXPECT_EQ(engine::draft_incompatibility(babyllama(), babyllama_as("Q8_0")), "");
    const std::string reason = engine::draft_incompatibility(babyllama(), stories);
    EXPECT_NE(reason.find("105 tokens against 512"), std::string::npos) << reason;
    try {
        engine::LlamaEngine drafted(babyllama_options(stories));
        FAIL() << "a draft of another vocabulary was accepted";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("cannot draft for this model: the vocabularies differ"), std::string::npos)
            << e.what();
    }
    const auto r = test::run_switchyard(
        {"generate", "-m", babyllama().string(), "-p", "Once upon a time", "--draft", stories.string()});
    test::expect_clean_failure(r, "105 tokens against 512");
}

TEST(Speculative, GenerateWithADraftPrintsTheSameTextAndWhatTheDraftDid) {
    const std::vector<std::string> common = {"generate", "-m", babyllama().string(), "-p", "Once upon a time",
                                             "-n", "80", "--temp", "0"};
    const auto plain = test::run_switchyard(common);
    auto with_draft = common;
    with_draft.insert(with_draft.end(), {"--draft", babyllama_as("Q8_0").string(), "--draft-max", "4"});
    const auto drafted = test::run_switchyard(with_draft);
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    ASSERT_EQ(drafted.exit_code, 0) << drafted.err;
    EXPECT_EQ(plain.out, drafted.out);
    EXPECT_NE(drafted.err.find("draft: "), std::string::npos) << drafted.err;
    EXPECT_NE(drafted.err.find("tokens proposed"), std::string::npos) << drafted.err;
}

TEST(Speculative, EvalSpeedWithADraftReportsWhatTheDraftDidInItsRounds) {
    const auto draft = babyllama_as("Q8_0");
    const std::vector<std::string> common = {"eval", "-m", babyllama().string(), "--speed", "--speed-prompt", "16",
                                             "--speed-generate", "32", "--speed-repeats", "6", "--no-results"};
    auto json_args = common;
    json_args.insert(json_args.end(), {"--draft", draft.string(), "--draft-max", "4", "--json"});
    const auto r = test::run_switchyard(json_args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto & d = j.at("speed").at("draft");
    EXPECT_EQ(d.at("model"), draft.string());
    EXPECT_EQ(d.at("max_tokens"), 4);
    // At least 6 rounds of two queries, 31 tokens each after the first: proposals in every one.
    EXPECT_GE(d.at("steps").get<int>(), 12);
    EXPECT_LE(d.at("drafted").get<int>(), 4 * d.at("steps").get<int>());
    EXPECT_GT(d.at("acceptance").get<double>(), 0.5) << d.dump();
    EXPECT_GT(j.at("speed").at("decode_tokens_per_s").get<double>(), 0);

    auto text_args = common;
    text_args.insert(text_args.end(), {"--draft", draft.string()});
    const auto text = test::run_switchyard(text_args);
    ASSERT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("  draft: "), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("taken ("), std::string::npos) << text.out;

    const auto no_speed =
        test::run_switchyard({"eval", "-m", babyllama().string(), "--draft", draft.string(), "--no-results"});
    test::expect_clean_failure(no_speed,
                               "--draft speeds up generation, which only the speed pass times: give --speed too");
}
