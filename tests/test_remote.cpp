// Remote models: RemoteEngine and `eval --endpoint` against a real llama-server, built from the
// engine's own llama.cpp source and started here on loopback.
#include "engine/llama_engine.h"
#include "engine/remote_engine.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <optional>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace switchyard;

namespace {

class Remote : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(test::llama_server_binary()))
            GTEST_SKIP() << "llama-server was not built (see SWITCHYARD_REFERENCE_TOOLS)";
        server_.emplace(model_, "stories260K", dir_.file("llama-server.log"));
    }

    test::ScratchDir dir_;
    const std::filesystem::path model_ = test::model_path("stories260K-f32.gguf");
    std::optional<test::LlamaServer> server_;
};

// Per-item outputs of every recorded run of the store, by the model label the store shows.
std::map<std::string, std::vector<std::string>> outputs_by_model(const std::string & store) {
    const auto exported = test::run_switchyard({"results", "--results", store, "export", "--json"});
    EXPECT_EQ(exported.exit_code, 0) << exported.err;
    std::map<std::string, std::vector<std::string>> outputs;
    for (const auto & run : nlohmann::json::parse(exported.out)) {
        auto & list = outputs[run["model_path"].get<std::string>()];
        for (const auto & o : run["outcomes"]) list.push_back(o["output"].get<std::string>());
    }
    return outputs;
}

}  // namespace

TEST_F(Remote, GenerationSuiteAgreesWithTheInProcessModel) {
    // Greedy continuations: the server and the in-process engine run the same weights and the
    // same llama.cpp, so they should write the same text (and two of these are right).
    test::write_file(
        dir_.file("gen.jsonl"),
        "{\"suite\": {\"name\": \"greedy\"}}\n"
        "{\"prompt\": \"Once upon a time\", \"answer\": \"Lily\", \"match\": \"contains\", \"max_tokens\": 16}\n"
        "{\"prompt\": \"Once upon a time, there was a little girl named\", \"answer\": \"Lily\", \"match\": \"contains\", \"max_tokens\": 4}\n"
        "{\"prompt\": \"The cat\", \"answer\": \"dog\", \"match\": \"contains\", \"max_tokens\": 12, \"stop\": [\".\"]}\n"
        "{\"prompt\": \"One day, Tom went to the\", \"answer\": \"zebra\", \"match\": \"contains\", \"max_tokens\": 20}\n"
        "{\"prompt\": \"She was very\", \"answer\": \"happy\", \"match\": \"contains\", \"max_tokens\": 8}\n");
    const auto suite = dir_.file("gen.jsonl").string();
    const auto store = dir_.file("results.sqlite").string();
    const auto local = test::run_switchyard(
        {"eval", "-m", model_.string(), "--tasks", suite, "--results", store, "--json", "-t", "2"});
    ASSERT_EQ(local.exit_code, 0) << local.err;
    const auto remote =
        test::run_switchyard({"eval", "--endpoint", server_->url(), "--tasks", suite, "--results", store, "--json"});
    ASSERT_EQ(remote.exit_code, 0) << remote.err;

    const auto l = nlohmann::json::parse(local.out)["suites"][0];
    const auto j = nlohmann::json::parse(remote.out);
    EXPECT_EQ(j["model"], "stories260K@" + server_->url());
    EXPECT_EQ(j["endpoint"], server_->url());
    EXPECT_EQ(j["context"], 512);  // llama-server's per-slot context: -c 2048 over 4 slots
    const auto r = j["suites"][0];
    EXPECT_EQ(r["n"], 5);
    EXPECT_EQ(r["correct"], l["correct"]);
    EXPECT_GE(r["correct"].get<int>(), 2);

    const auto outputs = outputs_by_model(store);
    ASSERT_EQ(outputs.size(), 2u);
    const auto & served = outputs.at("stories260K@" + server_->url());
    const auto & in_process = outputs.at(std::filesystem::weakly_canonical(model_).string());
    EXPECT_EQ(served, in_process);
    EXPECT_EQ(served[0].rfind(", there was a little girl named Lily.", 0), 0u) << served[0];

    // The remote run is recorded under the endpoint and reused as such.
    const auto again =
        test::run_switchyard({"eval", "--endpoint", server_->url(), "--tasks", suite, "--results", store});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.err.find("reused the recorded results for stories260K@" + server_->url()), std::string::npos)
        << again.err;
    const auto listed = test::run_switchyard({"results", "--results", store, "list"});
    EXPECT_NE(listed.out.find("stories260K@" + server_->url()), std::string::npos) << listed.out;
}

TEST_F(Remote, MultipleChoiceNeedsPromptLogprobs) {
    // llama-server v0.5.0 ignores `echo` and gives log-probabilities of generated tokens only.
    test::write_file(
        dir_.file("mc.jsonl"),
        "{\"context\": \"Once upon a time, there was a little\", \"choices\": [\" girl\", \" table\"], \"answer\": 0}\n");
    test::expect_clean_failure(
        test::run_switchyard(
            {"eval", "--endpoint", server_->url() + "/v1", "--tasks", dir_.file("mc.jsonl").string(), "--no-results"}),
        "this backend (" + server_->url() +
            ") cannot score multiple-choice items: it does not return the prompt's log-probabilities");
}

TEST_F(Remote, TokensAndModelMatchTheInProcessEngine) {
    const engine::RemoteEngine remote({.endpoint = server_->url(), .model = "stories260K"});
    const engine::LlamaEngine local({.model_path = model_, .threads = 2});
    EXPECT_EQ(remote.model().name, "stories260K");
    EXPECT_EQ(remote.model().context_length, 512);
    EXPECT_EQ(remote.model().vocab_size, local.model().vocab_size);
    EXPECT_EQ(remote.model().adds_bos, local.model().adds_bos);
    for (const std::string text :
         {"Once upon a time, there was a little girl named Lily.", "", " two  spaces\nand a line", "é ü 🙂"}) {
        for (const bool special : {true, false}) {
            const auto tokens = remote.tokenize(text, special);
            EXPECT_EQ(tokens, local.tokenize(text, special)) << "'" << text << "' add_special=" << special;
        }
    }
    // The BOS is dropped as LlamaEngine drops it; llama-server keeps SentencePiece's leading space.
    const std::string text = "Once upon a time";
    EXPECT_EQ(remote.detokenize(remote.tokenize(text, true)), " " + text);
    EXPECT_EQ(local.detokenize(local.tokenize(text, true)), text);
}

TEST_F(Remote, TextTheServerCannotTokenizeIsCountedApart) {
    // babyllama has no '#' and no byte fallback: in process and served, the item is unencodable.
    const test::LlamaServer baby(test::model_path("babyllama-0.9M-f32.gguf"), "baby", dir_.file("baby.log"));
    test::write_file(
        dir_.file("gen.jsonl"),
        "{\"prompt\": \"Tom said #1\", \"answer\": \"x\"}\n{\"prompt\": \"Tom said\", \"answer\": \"x\"}\n");
    const auto r = test::run_switchyard(
        {"eval", "--endpoint", baby.url(), "--tasks", dir_.file("gen.jsonl").string(), "--no-results", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto suite = nlohmann::json::parse(r.out)["suites"][0];
    EXPECT_EQ(suite["unencodable"], 1);
    EXPECT_EQ(suite["n"], 1);
}

TEST_F(Remote, ScoringThroughTheEngineSaysWhy) {
    engine::RemoteEngine remote({.endpoint = server_->url()});
    const std::vector<engine::ScoreRequest> requests = {
        {remote.tokenize("Once upon a", true), remote.tokenize(" time", false)}};
    try {
        remote.score(requests);
        FAIL() << "llama-server v0.5.0 cannot echo prompt log-probabilities";
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("cannot score multiple-choice items"), std::string::npos) << e.what();
    }
}

// Bad endpoints, without a server: one clear line each.
TEST(RemoteErrors, BadEndpointsAreClear) {
    test::ScratchDir dir;
    test::write_file(dir.file("gen.jsonl"), "{\"prompt\": \"Once\", \"answer\": \"x\"}\n");
    const auto suite = dir.file("gen.jsonl").string();
    const std::string closed = "http://127.0.0.1:" + std::to_string(test::free_port());
    test::expect_clean_failure(test::run_switchyard({"eval", "--endpoint", closed, "--tasks", suite, "--no-results"}),
                               closed + "/v1/models: cannot connect");
    test::expect_clean_failure(test::run_switchyard({"eval", "--endpoint", "ftp://example.org", "--tasks", suite}),
                               "is not an http:// or https:// URL");
    test::expect_clean_failure(test::run_switchyard({"eval", "--endpoint", closed, "--tasks", suite, "--text", suite}),
                               "--text needs a local model (-m FILE.gguf)");
    test::expect_clean_failure(test::run_switchyard({"eval", "--endpoint", closed, "--tasks", suite, "--api-key-env",
                                                     "SWITCHYARD_TEST_NO_SUCH_VARIABLE"}),
                               "SWITCHYARD_TEST_NO_SUCH_VARIABLE: that environment variable is not set");
    test::expect_clean_failure(test::run_switchyard({"eval", "--tasks", suite}), "give the model to measure");
}

// Through switchyard's own server, which returns the prompt's log-probabilities (echo), pairs and
// multiple-choice items score as they do in process: the same outcome for every item.
TEST(RemoteScoring, ThroughSwitchyardServeMatchesInProcess) {
    test::ScratchDir dir;
    std::string pairs;
    std::istringstream blimp(
        test::read_file(test::data_dir() / "data" / "blimp" / "determiner_noun_agreement_1.jsonl"));
    std::string line;
    for (int i = 0; i < 40 && std::getline(blimp, line); ++i) pairs += line + "\n";
    test::write_file(dir.file("pairs.jsonl"), pairs);
    test::write_file(
        dir.file("choices.jsonl"),
        "{\"context\": \"Once upon a time, there was a little\", \"choices\": [\" girl\", \" table\", \" sky\"], \"answer\": 0}\n"
        "{\"context\": \"The cat sat on the\", \"choices\": [\" mat\", \" ran\"], \"answer\": 0}\n"
        "{\"context\": \"Lily liked to play with her\", \"choices\": [\" toys\", \" the\", \" because\"], \"answer\": 0}\n");
    const auto model = test::model_path("stories260K-f32.gguf");
    test::ServerProcess server(SWITCHYARD_BINARY, {"serve", "-m", model.string(), "--port", "0"});
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1";
    for (const auto & spec : {"blimp:" + dir.file("pairs.jsonl").string(), dir.file("choices.jsonl").string()}) {
        const auto local =
            test::run_switchyard({"eval", "-m", model.string(), "--tasks", spec, "--json", "--no-results", "-t", "1"});
        const auto remote =
            test::run_switchyard({"eval", "--endpoint", url, "--tasks", spec, "--json", "--no-results"});
        ASSERT_EQ(local.exit_code, 0) << local.err;
        ASSERT_EQ(remote.exit_code, 0) << remote.err << server.log();
        const auto l = nlohmann::json::parse(local.out)["suites"][0];
        const auto r = nlohmann::json::parse(remote.out)["suites"][0];
        EXPECT_GT(l["n"].get<int>(), 0);
        EXPECT_EQ(r["n"], l["n"]) << spec;
        EXPECT_EQ(r["correct"], l["correct"]) << spec;
        EXPECT_EQ(r["unencodable"], l["unencodable"]) << spec;
    }
}
