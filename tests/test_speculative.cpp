// Speculative decoding: a draft model's proposals, verified by the target, leave the target's
// output as it was (the self-draft of babyllama by its own Q8_0 and Q4_0), a draft of another
// vocabulary is refused with its reason, and `eval --speed --draft` times drafted decoding.
#include "compress/quantize.h"
#include "engine/llama_engine.h"
#include "model/portfolio.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <thread>

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

namespace {

// Greedy completions of `prompts` from a server, in order, several in flight at once (the slots
// verify their drafts side by side).
std::vector<std::string> served_completions(int port, const std::vector<std::string> & prompts) {
    std::vector<std::string> texts(prompts.size());
    std::vector<std::thread> clients;
    constexpr std::size_t kClients = 4;
    for (std::size_t c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            httplib::Client client("127.0.0.1", port);
            client.set_read_timeout(60);
            for (std::size_t i = c; i < prompts.size(); i += kClients) {
                const nlohmann::json body = {{"prompt", prompts[i]}, {"max_tokens", 48}, {"temperature", 0}};
                const auto res = client.Post("/v1/completions", body.dump(), "application/json");
                texts[i] = res && res->status == 200 ? nlohmann::json::parse(res->body)["choices"][0]["text"].get<std::string>()
                                                     : "HTTP failure";
            }
        });
    }
    for (auto & t : clients) t.join();
    return texts;
}

std::string get_text(int port, const std::string & path) {
    httplib::Client client("127.0.0.1", port);
    const auto res = client.Get(path);
    return res && res->status == 200 ? res->body : "";
}

double metric_value(const std::string & metrics, const std::string & series) {
    const auto at = metrics.find(series + " ");
    return at == std::string::npos ? -1 : std::stod(metrics.substr(at + series.size() + 1));
}

}  // namespace

TEST(SpeculativeServe, ADraftedModelAnswersFiftyPromptsAsWithoutAndCountsItsTokens) {
    const auto prompts = story_starts(50);
    const std::vector<std::string> common = {"serve", "-m", babyllama().string(), "-c", "256", "--parallel", "4",
                                             "-t", "2", "--port", "0"};
    std::vector<std::string> expected;
    {
        test::ServerProcess plain(SWITCHYARD_BINARY, common);
        expected = served_completions(plain.port(), prompts);
    }
    auto with_draft = common;
    with_draft.insert(with_draft.end(), {"--draft", babyllama_as("Q4_0").string()});
    test::ServerProcess drafted(SWITCHYARD_BINARY, with_draft);
    const auto texts = served_completions(drafted.port(), prompts);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_NE(expected[i], "HTTP failure") << prompts[i];
        EXPECT_EQ(expected[i], texts[i]) << prompts[i];
    }

    const std::string metrics = get_text(drafted.port(), "/metrics");
    const std::string model = "model=\"babyllama-0.9M-f32\"";
    const double proposed = metric_value(metrics, "switchyard_draft_tokens_total{" + model + "}");
    const double taken = metric_value(metrics, "switchyard_draft_accepted_tokens_total{" + model + "}");
    EXPECT_GT(proposed, 0) << metrics;
    EXPECT_GT(taken, 0) << metrics;
    EXPECT_LT(taken, proposed) << metrics;  // Q4_0 disagrees now and then
    EXPECT_NEAR(metric_value(metrics, "switchyard_draft_acceptance_ratio{" + model + "}"), taken / proposed, 1e-6);
    // The batcher publishes its counters after the step that answered the last request, so a read
    // right after the answers may trail them by that step: /stats, read later, holds at least as many.
    const auto stats = nlohmann::json::parse(get_text(drafted.port(), "/stats"));
    EXPECT_EQ(stats["portfolio"]["models"][0]["draft"]["model"], "babyllama-Q4_0");
    EXPECT_GE(stats["portfolio"]["models"][0]["draft"]["drafted_tokens"].get<double>(), proposed);
}

TEST(SpeculativePortfolio, ADraftNamesAnInProcessModelOfThePortfolio) {
    const auto parse = [](const std::string & models) {
        return model::parse_portfolio("models:\n" + models, "p.yaml", "/tmp");
    };
    const auto p = parse("  - {name: big, path: big.gguf, draft: small, draft_max: 4}\n"
                         "  - {name: small, path: small.gguf, load: on_demand}\n");
    EXPECT_EQ(p.models[0].draft, "small");
    EXPECT_EQ(p.models[0].draft_path, std::filesystem::path("/tmp/small.gguf"));
    EXPECT_EQ(p.models[0].draft_max, 4);
    const auto again = model::parse_portfolio(model::portfolio_to_yaml(p, "/tmp"), "again.yaml", "/tmp");
    EXPECT_EQ(again.models, p.models);

    const auto error = [&](const std::string & models) {
        try {
            parse(models);
        } catch (const Error & e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(error("  - {name: big, path: big.gguf, draft: tiny}\n").find("names the draft 'tiny', which 'models' does not define"),
              std::string::npos);
    EXPECT_NE(error("  - {name: big, path: big.gguf, draft: big}\n").find("cannot draft for itself"), std::string::npos);
    EXPECT_NE(error("  - {name: big, path: big.gguf, draft: far}\n  - {name: far, endpoint: 'http://h:1/v1'}\n")
                  .find("must be an in-process model"),
              std::string::npos);
    EXPECT_NE(error("  - {name: far, endpoint: 'http://h:1/v1', draft: big}\n  - {name: big, path: big.gguf}\n")
                  .find("models[0].draft"),
              std::string::npos);
    EXPECT_NE(error("  - {name: big, path: big.gguf, draft: small, draft_max: 0}\n  - {name: small, path: s.gguf}\n")
                  .find("between 1 and 64"),
              std::string::npos);
}
