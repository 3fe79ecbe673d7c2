// lm-eval's `local-completions` client (tests/lm-eval-client: its logic reproduced from lm-eval's
// source) against `switchyard serve` on the shared models: loglikelihood at batch sizes 1 and 4,
// with token ids and with text; loglikelihood_rolling; generate_until with stop sequences; and the
// same items scored by `switchyard eval` on the suites `switchyard tasks lm-eval` writes.
#include "engine/llama_engine.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

using namespace switchyard;
using nlohmann::json;

namespace {

std::string fixture(const std::string & name) {
    return std::string(SWITCHYARD_SOURCE_DIR) + "/examples/lm-eval/" + name;
}
std::string data_folder() { return (test::data_dir() / "data").string(); }

// The context `switchyard eval` scores in by default: min(512, the model's declared context).
int eval_window(const std::string & model) { return model.starts_with("babyllama") ? 128 : 512; }

// A model served with one token more than eval's window, and the client's max_length to match:
// lm-eval keeps max_length - 1 tokens of a request (one is for the generated token), the end of a
// longer one, as eval keeps the end of an item longer than its window.
struct Served {
    std::string max_length;
    test::ServerProcess process;
    explicit Served(const std::string & model)
        : max_length(std::to_string(eval_window(model) + 1)),
          process(SWITCHYARD_BINARY,
                  {"serve", "-m", test::model_path(model).string(), "--port", "0", "-t", "1", "-c", max_length}) {}
};

// The client's JSON answer: metrics, each item's outcome, and how many requests it sent.
json run_client(const Served & server, const std::vector<std::string> & args) {
    std::vector<std::string> command = {
        SWITCHYARD_PYTHON, LM_EVAL_CLIENT,
        "--base-url",      "http://127.0.0.1:" + std::to_string(server.process.port()) + "/v1/completions",
        "--data",          data_folder(),
        "--max-length",    server.max_length};
    command.insert(command.end(), args.begin(), args.end());
    const auto r = test::run_program(command);
    EXPECT_EQ(r.exit_code, 0) << r.err << "\nserver:\n" << server.process.log();
    return r.exit_code == 0 ? json::parse(r.out) : json::object();
}

// `switchyard eval` on the suite `switchyard tasks lm-eval` writes from the same YAML and items.
json eval_suite(const std::string & task, const std::string & model, int limit) {
    test::ScratchDir dir;
    const auto suite = dir.file("suite.jsonl").string();
    const auto made = test::run_switchyard(
        {"tasks", "lm-eval", fixture(task), "--data", data_folder(), "--limit", std::to_string(limit), "-o", suite});
    EXPECT_EQ(made.exit_code, 0) << made.err;
    const auto r = test::run_switchyard(
        {"eval", "-m", test::model_path(model).string(), "--tasks", suite, "--json", "--no-results", "-t", "1"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out)["suites"][0] : json::object();
}

double sum_of(const json & items, const char * key) {
    double total = 0;
    for (const auto & item : items) total += item[key].get<double>();
    return total;
}

}  // namespace

// BLiMP as lm-eval runs it (its own template: an empty context, so BOS then " " + sentence): the
// same log-likelihoods one prompt per request, four per request, as ids and as text; and the same
// accuracy as switchyard's own evaluator on the suite written from that YAML.
TEST(LmEvalClient, MultipleChoiceAtEveryBatchSizeWithIdsAndTextEqualsEval) {
    Served server("babyllama-0.9M-f32.gguf");
    const std::string task = fixture("blimp_anaphor_gender_agreement.yaml");
    const json one = run_client(server, {"--task", task, "--limit", "200", "--batch-size", "1"});
    const json four = run_client(server, {"--task", task, "--limit", "200", "--batch-size", "4"});
    const json text = run_client(server, {"--task", task, "--limit", "200", "--batch-size", "4", "--text"});
    ASSERT_EQ(one["n"], 200);
    EXPECT_EQ(one["requests"], 400);  // one per choice
    EXPECT_EQ(four["requests"], 100);  // four choices a request
    for (const json * other : {&four, &text}) {
        ASSERT_EQ((*other)["items"].size(), 200u);
        for (std::size_t i = 0; i < 200; ++i) {
            for (std::size_t k = 0; k < 2; ++k) {
                EXPECT_NEAR((*other)["items"][i]["lls"][k].get<double>(), one["items"][i]["lls"][k].get<double>(), 1e-3)
                    << i;
            }
        }
        EXPECT_EQ((*other)["metrics"], one["metrics"]);
    }
    const json ours = eval_suite("blimp_anaphor_gender_agreement.yaml", "babyllama-0.9M-f32.gguf", 200);
    EXPECT_EQ(ours["n"], 200);
    EXPECT_EQ(ours["correct"].get<double>(), sum_of(one["items"], "acc")) << ours.dump();
    EXPECT_NEAR(ours["accuracy_norm"].get<double>(), one["metrics"]["acc_norm"].get<double>(), 1e-9) << ours.dump();
    EXPECT_GT(one["metrics"]["acc"].get<double>(), 0.6);  // well above chance (0.5): a real measurement
}

// loglikelihood (lm-eval's lambada_openai templates: the last word as the continuation, acc when it
// is the greedy choice at every token): on babyllama over TinyStories paragraphs, and LAMBADA
// itself on stories260K (babyllama's vocabulary has no newline, which LAMBADA's passages hold).
TEST(LmEvalClient, LoglikelihoodGreedyEqualsEval) {
    for (const auto & [task, model] : {std::pair{"tinystories_last_word.yaml", "babyllama-0.9M-f32.gguf"},
                                       std::pair{"lambada_openai.yaml", "stories260K-f32.gguf"}}) {
        Served server(model);
        const json client = run_client(server, {"--task", fixture(task), "--limit", "150", "--batch-size", "4"});
        ASSERT_EQ(client["n"], 150) << task;
        const json ours = eval_suite(task, model, 150);
        EXPECT_EQ(ours["correct"].get<double>(), sum_of(client["items"], "acc")) << task << ": " << ours.dump();
        EXPECT_GT(ours["correct"].get<double>(), 0) << task;
        for (const auto & item : client["items"]) EXPECT_LT(item["ll"].get<double>(), 0);
    }
}

// generate_until with stop sequences and lm-eval's regex filter: the token-id prompts (no BOS,
// as lm-eval sends them) generate what switchyard's suite generates, item for item.
TEST(LmEvalClient, GenerateUntilEqualsEval) {
    Served server("babyllama-0.9M-f32.gguf");
    const json client =
        run_client(server, {"--task", fixture("tinystories_next_word.yaml"), "--limit", "200", "--batch-size", "4"});
    ASSERT_EQ(client["n"], 200);
    for (const auto & item : client["items"])
        EXPECT_EQ(item["output"].get<std::string>().find_first_of("\n."), std::string::npos) << item;
    const json ours = eval_suite("tinystories_next_word.yaml", "babyllama-0.9M-f32.gguf", 200);
    EXPECT_EQ(ours["correct"].get<double>(), sum_of(client["items"], "exact_match")) << ours.dump();
}

// loglikelihood_rolling: each paragraph's log-likelihood, prefixed by BOS as lm-eval's
// rolling windows are, equals the engine's own scoring of the same tokens.
TEST(LmEvalClient, LoglikelihoodRollingEqualsTheEngine) {
    Served server("stories260K-f32.gguf");
    test::ScratchDir dir;
    const std::vector<std::string> paragraphs = {
        "Once upon a time, there was a little girl named Lily. She loved to play outside.",
        "The dog ran to the park. He saw a big red ball and he was very happy."};
    test::write_file(dir.file("text.txt"), paragraphs[0] + "\n\n" + paragraphs[1]);
    const json client = run_client(server, {"--rolling", dir.file("text.txt").string(), "--batch-size", "4"});
    ASSERT_EQ(client["items"].size(), 2u);
    engine::LlamaEngine engine(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 1, .context_length = 2048, .parallel = 1});
    for (std::size_t i = 0; i < paragraphs.size(); ++i) {
        const engine::ScoreRequest request{{1}, engine.tokenize(paragraphs[i], false)};
        const double expected = engine.score(std::span(&request, 1))[0].total_logprob();
        EXPECT_NEAR(client["items"][i]["ll"].get<double>(), expected, 1e-3 * std::abs(expected)) << paragraphs[i];
    }
}
