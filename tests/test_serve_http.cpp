// `switchyard serve` over HTTP on the real models: OpenAI shapes, answers equal to the engine's,
// errors, fallback, cascade, shadow, hot swap under load, client disconnects.
#include "engine/llama_engine.h"
#include "serve/capture.h"
#include "serve/remote_backend.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace switchyard;
using nlohmann::json;

namespace {

std::string portfolio_yaml(const std::string & main_model, const std::string & extra_models = "",
                           const std::string & extra_routes = "") {
    // One dead endpoint for the whole run: a pushed portfolio may only call origins serve started with.
    static const int dead_port = test::free_port();
    return "version: 1\nmodels:\n"
           "  - {name: stories, path: " +
        test::model_path("stories260K-f32.gguf").string() +
        ", context: 256, parallel: 2, threads: 1, cost_per_1k_tokens: 0.5}\n"
        "  - {name: baby, path: " +
        test::model_path("babyllama-0.9M-f32.gguf").string() +
        ", context: 256, parallel: 2, threads: 1}\n"
        "  - {name: dead, endpoint: http://127.0.0.1:" +
        std::to_string(dead_port) + "/v1}\n" + extra_models +
        "routes:\n"
        "  - {name: main, model: " +
        main_model +
        ", fallback: [baby]}\n"
        "  - {name: flaky, model: dead, fallback: [stories]}\n"
        "  - {name: unsure, cascade: {models: [baby, stories], min_mean_logprob: -0.0001}}\n"
        "  - {name: sure, cascade: {models: [baby, stories], min_mean_logprob: -1000}}\n" +
        extra_routes +
        "rules:\n  - {route: flaky, regex: \"^FLAKY\"}\n"
        "default_route: main\n"
        "server: {max_body_bytes: 65536, cooldown_s: 1}\n";
}

struct Served {
    test::ScratchDir dir;
    std::unique_ptr<test::ServerProcess> process;
    std::unique_ptr<httplib::Client> client;

    explicit Served(const std::string & yaml, std::vector<std::string> env = {}) {
        test::write_file(dir.file("portfolio.yaml"), yaml);
        env.push_back("SWITCHYARD_ADMIN_TOKEN=sekrit");
        process = std::make_unique<test::ServerProcess>(
            SWITCHYARD_BINARY,
            std::vector<std::string>{"serve", "--portfolio", dir.file("portfolio.yaml").string(), "--port", "0"}, env);
        client = std::make_unique<httplib::Client>("127.0.0.1", process->port());
        client->set_read_timeout(std::chrono::seconds(120));
    }
    httplib::Result post(const std::string & path, const json & body, const httplib::Headers & headers = {}) {
        return client->Post(path.c_str(), headers, body.dump(), "application/json");
    }
};

Served & served() {
    static Served s(portfolio_yaml("stories"));
    return s;
}

engine::LlamaEngine & stories_engine() {
    static engine::LlamaEngine e(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 1, .context_length = 256, .parallel = 1});
    return e;
}

std::string greedy(const std::string & prompt, int n) {
    engine::GenerateRequest req;
    req.prompt = prompt;
    req.max_tokens = n;
    req.sampling.temperature = 0;
    return stories_engine().generate(std::span(&req, 1))[0].text;
}

// The data lines of an SSE body, as JSON, until [DONE] (which must be the last).
std::vector<json> sse_events(const std::string & body, bool * saw_done) {
    std::vector<json> events;
    *saw_done = false;
    std::size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
        const std::size_t end = body.find("\n\n", pos);
        const std::string data = body.substr(pos + 6, end - pos - 6);
        pos = end;
        if (data == "[DONE]") {
            *saw_done = true;
            continue;
        }
        EXPECT_FALSE(*saw_done) << "data after [DONE]";
        events.push_back(json::parse(data));
    }
    return events;
}

double metric(const std::string & text, const std::string & series) {
    const auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

// Sends a POST on a raw socket and closes it without reading the answer, as a client that gives up.
void send_and_hang_up(int port, const std::string & path, const json & body) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
    const std::string text = body.dump();
    const std::string request = "POST " + path +
        " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(text.size()) +
        "\r\n\r\n" + text;
    ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::close(fd);
}

// switchyard_client_disconnects_total once it is above 0, or after `limit`.
double disconnects_within(Served & s, std::chrono::milliseconds limit) {
    double n = 0;
    for (const auto until = std::chrono::steady_clock::now() + limit;
         n <= 0 && std::chrono::steady_clock::now() < until;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        n = metric(s.client->Get("/metrics")->body, "switchyard_client_disconnects_total");
    }
    return n;
}

}  // namespace

TEST(ServeHttp, ChatMatchesTheEngine) {
    auto res = served().post("/v1/chat/completions",
                             {{"model", "stories"},
                              {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}},
                              {"max_tokens", 12},
                              {"temperature", 0}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");
    const json j = json::parse(res->body);
    EXPECT_EQ(j["object"], "chat.completion");
    EXPECT_EQ(j["model"], "stories");
    EXPECT_TRUE(j["id"].get<std::string>().starts_with("chatcmpl-"));
    EXPECT_TRUE(j["created"].is_number_integer());
    EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["completion_tokens"], 12);
    // No chat template: the plain transcript documented in docs/serve.md.
    EXPECT_EQ(j["choices"][0]["message"]["content"], greedy("User: Once upon a time\nAssistant:", 12));
}

TEST(ServeHttp, StreamingChatGivesTheSameText) {
    const json body = {
        {"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}, {"max_tokens", 12}, {"temperature", 0}};
    auto whole = served().post("/v1/chat/completions", body);
    json streamed = body;
    streamed["stream"] = true;
    streamed["stream_options"] = {{"include_usage", true}};
    auto res = served().post("/v1/chat/completions", streamed);
    ASSERT_TRUE(res && whole);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");
    bool done = false;
    const auto events = sse_events(res->body, &done);
    EXPECT_TRUE(done);
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events.front()["choices"][0]["delta"]["role"], "assistant");
    std::string text;
    for (const auto & e : events) {
        EXPECT_EQ(e["object"], "chat.completion.chunk");
        if (!e["choices"].empty() && e["choices"][0]["delta"].contains("content"))
            text += e["choices"][0]["delta"]["content"].get<std::string>();
    }
    EXPECT_EQ(text, json::parse(whole->body)["choices"][0]["message"]["content"]);
    EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(events.back()["usage"]["completion_tokens"], 12);
}

TEST(ServeHttp, CompletionsMatchTheEngine) {
    auto res =
        served().post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["model"], "stories");  // the default route's model
    EXPECT_EQ(j["choices"][0]["text"], greedy("Once upon a time", 20));
}

// Ids are echoed as sent (the first has no log-probability); text is echoed without the BOS the
// model puts in front of it, so its first token is scored after BOS: the client's own token
// count indexes the answer either way.
TEST(ServeHttp, EchoLogprobsMatchScore) {
    auto & engine = stories_engine();
    const auto tokens = engine.tokenize("Once upon a time there was", true);
    const engine::ScoreRequest request{{tokens.front()}, {tokens.begin() + 1, tokens.end()}};
    const auto expected = engine.score(std::span(&request, 1), 3)[0];
    for (const bool as_text : {false, true}) {
        const json prompt = as_text ? json("Once upon a time there was") : json(tokens);
        auto res = served().post(
            "/v1/completions",
            {{"model", "stories"}, {"prompt", prompt}, {"echo", true}, {"logprobs", 3}, {"max_tokens", 0}});
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        const json lp = json::parse(res->body)["choices"][0]["logprobs"];
        const std::size_t skipped = as_text ? 1 : 0;  // the BOS
        ASSERT_EQ(lp["tokens"].size(), tokens.size() - skipped);
        EXPECT_EQ(lp["token_logprobs"][0].is_null(), !as_text);
        EXPECT_EQ(lp["text_offset"][0], 0);
        for (std::size_t i = 1; i < tokens.size(); ++i) {
            if (i < skipped) continue;
            const std::size_t at = i - skipped;
            EXPECT_EQ(lp["tokens"][at], engine.token_text(tokens[i]));
            EXPECT_NEAR(lp["token_logprobs"][at].get<double>(), expected.tokens[i - 1].logprob, 1e-4) << i;
            const json & top = lp["top_logprobs"][at];
            EXPECT_LE(top.size(), 3u);
            const auto & best = expected.tokens[i - 1].top.front();
            ASSERT_TRUE(top.contains(engine.token_text(best.token))) << top;
            EXPECT_NEAR(top[engine.token_text(best.token)].get<double>(), best.logprob, 1e-4);
        }
    }
}

// What lm-eval's local-completions sends at batch size 4: token-id lists without BOS, echo,
// max_tokens 1, logprobs 1; each choice at its index, with one log-probability per prompt token
// plus the generated one, equal to the engine's scoring of the same ids.
TEST(ServeHttp, BatchedIdPromptsAsLmEvalSendsThem) {
    auto & engine = stories_engine();
    const std::vector<std::string> texts = {"Once upon a time", "The cat sat on the", "Lily was happy", "He ran"};
    json prompts = json::array();
    for (const auto & t : texts) prompts.push_back(engine.tokenize(t, false));
    auto res = served().post("/v1/completions",
                             {{"model", "stories"},
                              {"prompt", prompts},
                              {"echo", true},
                              {"logprobs", 1},
                              {"max_tokens", 1},
                              {"temperature", 0}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    ASSERT_EQ(j["choices"].size(), texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const json & c = j["choices"][i];
        EXPECT_EQ(c["index"], i);
        const auto ids = prompts[i].get<std::vector<engine::Token>>();
        const engine::ScoreRequest request{{ids.front()}, {ids.begin() + 1, ids.end()}};
        const auto expected = engine.score(std::span(&request, 1), 1)[0];
        const json & lp = c["logprobs"];
        ASSERT_EQ(lp["token_logprobs"].size(), ids.size() + 1) << c;
        EXPECT_TRUE(lp["token_logprobs"][0].is_null());
        for (std::size_t k = 1; k < ids.size(); ++k)
            EXPECT_NEAR(lp["token_logprobs"][k].get<double>(), expected.tokens[k - 1].logprob, 1e-4);
        // The generated token comes from the ids themselves (no BOS added, nothing re-tokenized).
        engine::GenerateRequest g;
        g.prompt_tokens = ids;
        g.max_tokens = 1;
        g.sampling.temperature = 0;
        EXPECT_EQ(c["text"], engine.detokenize(ids) + engine.generate(std::span(&g, 1))[0].text);
    }
    // logprobs 0: each position still names its own token (lm-eval's is_greedy takes max() over it).
    res =
        served().post("/v1/completions", {{"prompt", prompts[0]}, {"echo", true}, {"logprobs", 0}, {"max_tokens", 0}});
    ASSERT_EQ(res->status, 200) << res->body;
    const json lp0 = json::parse(res->body)["choices"][0]["logprobs"];
    EXPECT_EQ(lp0["top_logprobs"][1].size(), 1u);
    EXPECT_EQ(lp0["top_logprobs"][1].begin().value(), lp0["token_logprobs"][1]);
}

// A batch of text prompts and n > 1: one choice each, in order, equal to asking one at a time.
TEST(ServeHttp, BatchAndNChoices) {
    auto res = served().post("/v1/completions",
                             {{"model", "stories"},
                              {"prompt", json::array({"Once upon a time", "The dog"})},
                              {"max_tokens", 8},
                              {"temperature", 0},
                              {"n", 2}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    ASSERT_EQ(j["choices"].size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(j["choices"][i]["index"], i);
        EXPECT_EQ(j["choices"][i]["text"], greedy(i < 2 ? "Once upon a time" : "The dog", 8)) << i;
    }
    EXPECT_EQ(j["usage"]["completion_tokens"], 32);
    res = served().post("/v1/chat/completions",
                        {{"model", "stories"},
                         {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                         {"max_tokens", 4},
                         {"n", 2},
                         {"seed", 3}});
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["choices"].size(), 2u);
    // stories generates 2 sequences at once (parallel: 2): n beyond that is the client's error, naming it.
    res = served().post("/v1/completions", {{"model", "stories"}, {"prompt", "Once"}, {"n", 3}});
    ASSERT_EQ(res->status, 400) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["message"],
              "'n' is 3; 'stories' generates at most 2 sequences at once (its `parallel`)");
    EXPECT_EQ(json::parse(res->body)["error"]["param"], "n");
}

// lm-eval's remote tokenizer: /tokenizer_info, special-token text read as the token, /detokenize's
// `prompt`, and ids outside the vocabulary named in a 400 wherever they come in.
TEST(ServeHttp, RemoteTokenizerEndpoints) {
    auto & engine = stories_engine();
    auto info = served().client->Get("/tokenizer_info");
    ASSERT_TRUE(info);
    ASSERT_EQ(info->status, 200) << info->body;
    const json i = json::parse(info->body);
    EXPECT_EQ(i["bos_token"], "<s>");
    EXPECT_EQ(i["eos_token"], "</s>");
    EXPECT_EQ(i["bos_token_id"], 1);
    EXPECT_EQ(i["eos_token_id"], 2);
    EXPECT_EQ(i["model_max_length"], 256);
    EXPECT_EQ(i["add_bos_token"], true);
    EXPECT_EQ(json::parse(served().client->Get("/tokenizer_info?model=baby")->body)["model_max_length"], 256);
    EXPECT_EQ(served().client->Get("/tokenizer_info?model=nope")->status, 404);

    auto res = served().post("/tokenize", {{"prompt", "<s>Once upon"}, {"add_special_tokens", false}});
    ASSERT_EQ(res->status, 200) << res->body;
    std::vector<engine::Token> expected = {1};
    const auto rest = engine.tokenize("Once upon", false);
    expected.insert(expected.end(), rest.begin(), rest.end());
    EXPECT_EQ(json::parse(res->body)["tokens"].get<std::vector<engine::Token>>(), expected);
    EXPECT_EQ(
        json::parse(served().post("/tokenize", {{"prompt", "</s>"}, {"add_special_tokens", false}})->body)["tokens"],
        json({2}));
    res = served().post("/detokenize", {{"tokens", expected}});
    ASSERT_EQ(res->status, 200) << res->body;
    const std::string text = json::parse(res->body)["prompt"];
    EXPECT_EQ(text, json::parse(res->body)["content"]);
    EXPECT_TRUE(text.starts_with("<s>")) << text;
    // Back to the same ids: what lm-eval's text mode depends on.
    EXPECT_EQ(json::parse(served().post("/tokenize", {{"prompt", text}, {"add_special_tokens", false}})->body)["tokens"]
                  .get<std::vector<engine::Token>>(),
              expected);

    for (const json & body : {json{{"prompt", json::array({1, 999999})}, {"max_tokens", 2}},
                              json{{"prompt", json::array({json::array({1, 5}), json::array({999999})})},
                                   {"echo", true},
                                   {"logprobs", 1},
                                   {"max_tokens", 0}}}) {
        res = served().post("/v1/completions", body);
        ASSERT_EQ(res->status, 400) << res->body;
        EXPECT_EQ(json::parse(res->body)["error"]["message"], "token id 999999 is outside the vocabulary (512 tokens)")
            << body;
    }
}

TEST(ServeHttp, TokenizeAndDetokenize) {
    const auto expected = stories_engine().tokenize("Once upon a time", true);
    auto res = served().post("/tokenize", {{"content", "Once upon a time"}, {"add_special", true}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["tokens"].get<std::vector<engine::Token>>(), expected);
    res = served().post("/tokenize", {{"prompt", "Once upon a time"}, {"add_special_tokens", false}});
    EXPECT_EQ(json::parse(res->body)["tokens"].get<std::vector<engine::Token>>(),
              stories_engine().tokenize("Once upon a time", false));
    res = served().post("/detokenize", {{"tokens", std::vector<engine::Token>(expected.begin() + 1, expected.end())}});
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["content"],
              stories_engine().detokenize(std::vector<engine::Token>(expected.begin() + 1, expected.end())));
}

TEST(ServeHttp, ModelsAndHealth) {
    auto res = served().client->Get("/v1/models");
    ASSERT_TRUE(res);
    const json j = json::parse(res->body);
    EXPECT_EQ(j["object"], "list");
    std::vector<std::string> ids;
    for (const auto & m : j["data"]) ids.push_back(m["id"]);
    for (const char * id : {"stories", "baby", "dead", "main", "flaky", "unsure", "sure"})
        EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
    EXPECT_EQ(j["data"][0]["meta"]["n_ctx"], 256);
    res = served().client->Get("/health");
    ASSERT_TRUE(res);
    EXPECT_EQ(json::parse(res->body)["status"], "ok");
}

TEST(ServeHttp, ErrorsUseOpenAIShapes) {
    struct Case {
        std::string path;
        std::string body;
        int status;
        const char * code;
    };
    for (const Case & c :
         {Case{"/v1/chat/completions", R"({"model":"gpt-4","messages":[{"role":"user","content":"x"}]})", 404,
               "model_not_found"},
          Case{"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"})", 400, ""},
          Case{"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":"many"})", 400, ""},
          Case{"/v1/completions", "{\"prompt\":\"\xc3\x28\"}", 400, ""},
          Case{"/v1/completions", R"({"prompt":"x","metadata":{"task":"nope"}})", 404, "route_not_found"},
          Case{"/v1/completions", R"({"prompt":[1,2,99999],"echo":true,"logprobs":1,"max_tokens":0})", 400, ""},
          Case{"/v1/completions", "{\"prompt\":\"" + std::string(70000, 'a') + "\"}", 413, "body_too_large"},
          Case{"/v1/nothing", "{}", 404, "unknown_url"}}) {
        auto res = served().client->Post(c.path.c_str(), c.body, "application/json");
        ASSERT_TRUE(res) << c.body.substr(0, 80);
        EXPECT_EQ(res->status, c.status) << c.body.substr(0, 80) << " -> " << res->body;
        const json j = json::parse(res->body);
        EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
        EXPECT_TRUE(j["error"].contains("type") && j["error"].contains("param") && j["error"].contains("code"));
        if (*c.code) {
            EXPECT_EQ(j["error"]["code"], c.code);
        }
    }
    // The server is still fine afterwards.
    auto ok = served().post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 2}});
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200);
}

TEST(ServeHttp, FallbackWhenARemoteIsDown) {
    for (const auto & how : {json{{"model", "flaky"}}, json{{"metadata", {{"task", "flaky"}}}}, json::object()}) {
        json body = {{"prompt", "FLAKY Once upon a time"}, {"max_tokens", 4}, {"temperature", 0}};
        body.update(how);
        auto res = served().post("/v1/completions", body);
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");
        EXPECT_EQ(res->get_header_value("X-Switchyard-Route"), "flaky");
    }
    // The header names the route too.
    auto res =
        served().post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 2}}, {{"X-Switchyard-Task", "flaky"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");
    // Streams fall back before the first byte as well.
    res =
        served().post("/v1/completions", {{"model", "flaky"}, {"prompt", "Once"}, {"max_tokens", 3}, {"stream", true}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");
    const std::string metrics = served().client->Get("/metrics")->body;
    EXPECT_GE(metric(metrics, "switchyard_model_errors_total{model=\"dead\"}"), 1) << metrics;
    EXPECT_GE(metric(metrics, "switchyard_route_requests_total{route=\"flaky\"}"), 5) << metrics;
    // Naming the dead model directly has no fallback: a 502 in OpenAI's shape.
    res = served().post("/v1/completions", {{"model", "dead"}, {"prompt", "Once"}, {"max_tokens", 2}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 502) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["type"], "backend_error");
}

TEST(ServeHttp, CascadeEscalatesWhenUnsure) {
    auto res =
        served().post("/v1/completions",
                      {{"model", "unsure"}, {"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");
    EXPECT_EQ(json::parse(res->body)["model"], "stories");
    res = served().post("/v1/completions",
                        {{"model", "sure"}, {"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "baby");
    EXPECT_FALSE(res->get_header_value("X-Switchyard-Mean-Logprob").empty());
    const std::string metrics = served().client->Get("/metrics")->body;
    EXPECT_GE(metric(metrics, "switchyard_escalations_total{route=\"unsure\"}"), 1) << metrics;
}

TEST(ServeHttp, MetricsCountTokensAndCost) {
    auto res = served().post("/v1/completions",
                             {{"model", "stories"}, {"prompt", "Once"}, {"max_tokens", 3}, {"temperature", 0}});
    ASSERT_TRUE(res);
    const std::string metrics = served().client->Get("/metrics")->body;
    EXPECT_GT(metric(metrics, "switchyard_tokens_out_total{model=\"stories\"}"), 0);
    EXPECT_GT(metric(metrics, "switchyard_cost_estimate_total{model=\"stories\"}"), 0);
    EXPECT_GT(metric(metrics, "switchyard_request_seconds_count{model=\"stories\"}"), 0);
}

TEST(ServeHttp, DisconnectFreesTheSlot) {
    // Read the first chunk of a long stream, hang up, and the model's load goes back to zero.
    httplib::Client c("127.0.0.1", served().process->port());
    std::atomic<int> chunks{0};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"model", "stories"}, {"prompt", "Once upon a time"}, {"max_tokens", 200}, {"stream", true}}.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char *, std::size_t, std::uint64_t, std::uint64_t) { return ++chunks < 2; };
    httplib::Response res;
    httplib::Error err;
    c.send(req, res, err);
    EXPECT_GE(chunks.load(), 1);
    int load = -1;
    for (int i = 0; i < 200 && load != 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        load = json::parse(served().client->Get("/health")->body)["load"]["stories"].get<int>();
    }
    EXPECT_EQ(load, 0);
}

TEST(ServeHttp, HangingUpOnANonStreamedRequestCancelsIt) {
    // Send a long non-streamed request on a raw socket and close it at once: the gateway notices,
    // counts the disconnect and frees the slot long before 1500 tokens would be generated.
    Served s("version: 1\nmodels:\n  - {name: long, path: " + test::model_path("stories260K-f32.gguf").string() +
             ", context: 2048, parallel: 1, threads: 1}\n");
    EXPECT_EQ(metric(s.client->Get("/metrics")->body, "switchyard_client_disconnects_total"), 0);
    send_and_hang_up(s.process->port(), "/v1/completions",
                     {{"prompt", "Once upon a time"}, {"max_tokens", 1500}, {"temperature", 0}});
    EXPECT_EQ(disconnects_within(s, std::chrono::seconds(10)), 1);
    EXPECT_EQ(metric(s.client->Get("/metrics")->body, "switchyard_in_flight"), 0);
    // The freed slot serves the next request in full.
    const auto next =
        s.post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200) << next->body;
}

TEST(ServeHttp, HangingUpOnANonStreamedRemoteRequestAbandonsIt) {
    // The remote model takes 30 s to answer and the client hangs up at once: the gateway notices
    // while it waits (not when the answer comes), counts the disconnect, drops the upstream
    // exchange, and the remote model still serves the next request.
    test::ServerProcess stub(STUB_OPENAI_BINARY, {"--port", "0", "--name", "up"});
    Served s("version: 1\nmodels:\n  - {name: remote, endpoint: 'http://127.0.0.1:" + std::to_string(stub.port()) +
             "/v1'}\n");
    const json messages = {{{"role", "user"}, {"content", "Once upon a time"}}};
    send_and_hang_up(s.process->port(), "/v1/chat/completions",
                     {{"model", "remote"}, {"messages", messages}, {"stub_delay_ms", 30000}});
    EXPECT_EQ(disconnects_within(s, std::chrono::seconds(5)), 1);
    const auto metrics = s.client->Get("/metrics")->body;
    EXPECT_EQ(metric(metrics, "switchyard_in_flight"), 0) << metrics;
    const auto next = s.post("/v1/chat/completions", {{"model", "remote"}, {"messages", messages}});
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200) << next->body;
    EXPECT_EQ(json::parse(next->body)["choices"][0]["message"]["content"], "Hello from up to remote");
}

TEST(ServeHttp, AdminNeedsTheToken) {
    auto res = served().client->Put("/admin/portfolio", portfolio_yaml("stories"), "application/yaml");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401);
    res = served().client->Put("/admin/portfolio", {{"Authorization", "Bearer wrong"}}, portfolio_yaml("stories"),
                               "application/yaml");
    EXPECT_EQ(res->status, 401);
    res = served().client->Put("/admin/portfolio", {{"Authorization", "Bearer sekrit"}}, "version: 1\nmodels: []\n",
                               "application/yaml");
    EXPECT_EQ(res->status, 400) << res->body;
    EXPECT_NE(json::parse(res->body)["error"]["message"].get<std::string>().find("models"), std::string::npos);
}

TEST(ServeHttp, HotSwapUnderLoadLosesNothing) {
    Served s(portfolio_yaml("stories"));
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&, t] {
            httplib::Client c("127.0.0.1", s.process->port());
            c.set_read_timeout(std::chrono::seconds(120));
            while (!stop) {
                json body = {{"prompt", "Once upon a time"}, {"max_tokens", 6}, {"stream", t % 2 == 1}};
                auto res = c.Post("/v1/completions", body.dump(), "application/json");
                (res && res->status == 200 && (t % 2 == 0 || res->body.find("[DONE]") != std::string::npos) ? ok
                                                                                                            : failed)++;
            }
        });
    }
    std::set<std::string> answered_by;
    for (int swap = 0; swap < 6; ++swap) {
        const std::string main_model = swap % 2 == 0 ? "baby" : "stories";
        auto res = s.client->Put("/admin/portfolio", {{"Authorization", "Bearer sekrit"}}, portfolio_yaml(main_model),
                                 "application/yaml");
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        auto probe = s.post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 2}});
        ASSERT_TRUE(probe);
        EXPECT_EQ(probe->get_header_value("X-Switchyard-Model"), main_model);
        answered_by.insert(probe->get_header_value("X-Switchyard-Model"));
    }
    stop = true;
    for (auto & t : clients) t.join();
    EXPECT_EQ(failed.load(), 0);
    EXPECT_GT(ok.load(), 0);
    EXPECT_EQ(answered_by.size(), 2u);
    EXPECT_EQ(metric(s.client->Get("/metrics")->body, "switchyard_portfolio_generation"), 7);
}

TEST(ServeHttp, SighupRereadsThePortfolio) {
    Served s(portfolio_yaml("stories"));
    test::write_file(s.dir.file("portfolio.yaml"), portfolio_yaml("baby"));
    ::kill(s.process->pid(), SIGHUP);
    std::string model;
    for (int i = 0; i < 100 && model != "baby"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        model =
            s.post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 1}})->get_header_value("X-Switchyard-Model");
    }
    EXPECT_EQ(model, "baby");
}

TEST(ServeHttp, ShadowComparesAndDecides) {
    // The same weights under two names agree on every token (KLD ~ 0): promoted. babyllama
    // answers differently: rolled back.
    Served s(portfolio_yaml(
        "stories",
        "  - {name: twin, path: " + test::model_path("stories260K-f32.gguf").string() +
            ", context: 256, parallel: 2, threads: 1}\n",
        "  - name: promote\n    model: stories\n    shadow: {model: twin, sample: 1.0, promote_at: 0.99, min_samples: 3}\n"
        "  - name: rollback\n    model: stories\n    shadow: {model: baby, sample: 1.0, rollback_below: 0.99, min_samples: 2}\n"));
    for (int i = 0; i < 3; ++i) {
        auto res =
            s.post("/v1/completions",
                   {{"model", "promote"}, {"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
        ASSERT_TRUE(res);
        EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");  // the shadow never answers the client
    }
    for (int i = 0; i < 2; ++i)
        s.post("/v1/completions",
               {{"model", "rollback"}, {"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}});
    json shadows;
    for (int i = 0; i < 600; ++i) {
        shadows = json::parse(s.client->Get("/admin/shadow", {{"Authorization", "Bearer sekrit"}})->body);
        if (shadows.value("promote", json::object()).value("state", "") == "promoted" &&
            shadows.value("rollback", json::object()).value("state", "") == "rolled back")
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(shadows["promote"]["state"], "promoted") << shadows;
    EXPECT_EQ(shadows["promote"]["candidate"], "twin");
    EXPECT_GE(shadows["promote"]["samples"], 3);
    EXPECT_DOUBLE_EQ(shadows["promote"]["exact_match"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(shadows["promote"]["token_agreement"].get<double>(), 1.0);
    EXPECT_NEAR(shadows["promote"]["kld_mean"].get<double>(), 0.0, 1e-3);
    ASSERT_EQ(shadows["rollback"]["state"], "rolled back") << shadows;
    EXPECT_LT(shadows["rollback"]["token_agreement"].get<double>(), 0.99);
    EXPECT_TRUE(shadows["rollback"]["kld_mean"].is_null());  // different vocabularies: no KLD
    // Promoted: the route now answers with the candidate.
    auto res = s.post("/v1/completions", {{"model", "promote"}, {"prompt", "Once"}, {"max_tokens", 2}});
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "twin");
    const std::string metrics = s.client->Get("/metrics")->body;
    EXPECT_EQ(metric(metrics, "switchyard_shadow_token_agreement_ratio{route=\"promote\",candidate=\"twin\"}"), 1)
        << metrics;
}

TEST(ServeHttp, RemoteBackendForwardsStreamsAndFallsBack) {
    auto stub = std::make_unique<test::ServerProcess>(
        STUB_OPENAI_BINARY, std::vector<std::string>{"--port", "0", "--name", "up", "--api-key", "k1"});
    Served s(
        "version: 1\nmodels:\n"
        "  - {name: remote, endpoint: 'http://127.0.0.1:" +
            std::to_string(stub->port()) +
            "/v1', remote_model: real-name, api_key_env: STUB_KEY}\n"
            "  - {name: stories, path: " +
            test::model_path("stories260K-f32.gguf").string() +
            ", context: 256, parallel: 2, threads: 1}\n"
            "routes:\n  - {name: r, model: remote, fallback: [stories]}\n",
        {"STUB_KEY=k1"});
    const json messages = {{{"role", "user"}, {"content", "Once upon a time"}}};
    auto res = s.post("/v1/chat/completions", {{"model", "r"}, {"messages", messages}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "remote");
    json j = json::parse(res->body);
    EXPECT_EQ(j["model"], "remote");
    EXPECT_EQ(j["choices"][0]["message"]["content"],
              "Hello from up to real-name");  // the model field rewritten, the key sent
    EXPECT_EQ(j["usage"]["total_tokens"], 6);
    res = s.post("/v1/chat/completions", {{"model", "r"}, {"messages", messages}, {"stream", true}});
    ASSERT_TRUE(res);
    bool done = false;
    std::string text;
    int pieces = 0;
    for (const auto & e : sse_events(res->body, &done)) {
        if (e["choices"][0]["delta"].contains("content") &&
            !e["choices"][0]["delta"]["content"].get<std::string>().empty()) {
            text += e["choices"][0]["delta"]["content"].get<std::string>();
            ++pieces;
        }
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(text, "Hello from up to real-name");
    EXPECT_EQ(pieces, 3);  // passed through chunk by chunk
    res = s.post("/v1/completions", {{"model", "remote"}, {"prompt", "Once"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(json::parse(res->body)["choices"][0]["text"], "Hello from up to real-name");
    // The remote server dies: the route's fallback answers, for whole and streamed answers.
    stub.reset();
    for (const bool stream : {false, true}) {
        res = s.post("/v1/chat/completions",
                     {{"model", "r"}, {"messages", messages}, {"max_tokens", 4}, {"stream", stream}});
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200) << res->body;
        EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories");
    }
}

TEST(ServeHttp, ARemoteBackendWaitsForItsStreamedExchangesWhenItGoes) {
    test::ServerProcess stub(STUB_OPENAI_BINARY, {"--port", "0", "--name", "up"});
    const auto parsed = serve::parse_request(
        serve::ApiRequest::Kind::chat,
        R"({"model": "remote", "stream": true, "messages": [{"role": "user", "content": "Once"}]})", serve::Limits{});
    const auto & request = std::get<serve::ApiRequest>(parsed);
    std::vector<std::shared_ptr<serve::Stream>> streams;
    {
        serve::RemoteBackend backend({.name = "remote",
                                      .endpoint = "http://127.0.0.1:" + std::to_string(stub.port()) + "/v1",
                                      .remote_model = "real-name"},
                                     10000);
        for (int i = 0; i < 8; ++i) streams.push_back(backend.start(request, request.input, {}));
    }  // nobody has read a byte yet: the backend's end waits for every exchange
    for (const auto & stream : streams) {
        // Complete already: no waiting left (a deadline in the past would turn a missing event into a timeout).
        const auto got = serve::collect(*stream, std::chrono::steady_clock::now(), nullptr);
        ASSERT_TRUE(std::holds_alternative<serve::Generation>(got)) << std::get<serve::Stream::Event>(got).message;
        EXPECT_EQ(std::get<serve::Generation>(got).text, "Hello from up to real-name");
    }
}

TEST(ServeHttp, RemoteAnswersPassThroughUnchanged) {
    test::ServerProcess stub(STUB_OPENAI_BINARY, {"--port", "0", "--name", "up"});
    Served s(
        "version: 1\nmodels:\n"
        "  - {name: remote, endpoint: 'http://127.0.0.1:" +
        std::to_string(stub.port()) +
        "/v1', remote_model: real-name}\n"
        "  - {name: stories, path: " +
        test::model_path("stories260K-f32.gguf").string() +
        ", context: 256, parallel: 2, threads: 1}\n"
        "routes:\n  - {name: r, model: remote, fallback: [stories]}\n"
        "server: {cooldown_s: 0}\n");  // every status below reaches the remote
    httplib::Client direct("127.0.0.1", stub.port());
    const json tools = json::parse(
        R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])");
    const json messages = {{{"role", "user"}, {"content", "Weather in Oslo?"}}};
    // Whole and streamed tool calls: what the client gets is what the server sent, the model renamed.
    for (const bool stream : {false, true}) {
        json body = {{"messages", messages}, {"tools", tools}, {"stream", stream}};
        body["model"] = "real-name";
        auto upstream = direct.Post("/v1/chat/completions", body.dump(), "application/json");
        body["model"] = "r";
        auto through = s.post("/v1/chat/completions", body);
        ASSERT_TRUE(upstream && through);
        ASSERT_EQ(through->status, 200) << through->body;
        if (!stream) {
            json want = json::parse(upstream->body);
            want["model"] = "remote";
            want["id"] = json::parse(through->body)["id"];  // this gateway's id, what feedback names
            EXPECT_TRUE(want["id"].get<std::string>().starts_with("chatcmpl-"));
            EXPECT_EQ(json::parse(through->body), want);
            EXPECT_EQ(want["choices"][0]["finish_reason"], "tool_calls");
            continue;
        }
        bool done_up = false, done_through = false;
        auto want = sse_events(upstream->body, &done_up);
        const auto got = sse_events(through->body, &done_through);
        ASSERT_FALSE(got.empty());
        for (auto & e : want) {
            e["model"] = "remote";
            e["id"] = got[0]["id"];
        }
        EXPECT_EQ(got, want);
        EXPECT_TRUE(done_through);
        EXPECT_EQ(want.back()["choices"][0]["finish_reason"], "tool_calls");
    }
    // No max_tokens is added where the client sent none; the client's goes as sent.
    auto res = s.post("/v1/chat/completions", {{"model", "r"}, {"messages", messages}});
    ASSERT_TRUE(res);
    EXPECT_TRUE(json::parse(res->body)["stub_max_tokens"].is_null()) << res->body;
    res = s.post("/v1/chat/completions", {{"model", "r"}, {"messages", messages}, {"max_tokens", 7}});
    EXPECT_EQ(json::parse(res->body)["stub_max_tokens"], 7);
    // The client's own error keeps its status; the gateway's configuration errors and the server's
    // failures fall back.
    res = s.post("/v1/chat/completions", {{"model", "r"}, {"messages", messages}, {"stub_status", 422}});
    EXPECT_EQ(res->status, 422) << res->body;
    for (const int status : {401, 404, 500, 503}) {
        res = s.post("/v1/chat/completions",
                     {{"model", "r"}, {"messages", messages}, {"max_tokens", 4}, {"stub_status", status}});
        EXPECT_EQ(res->status, 200) << status << ": " << res->body;
        EXPECT_EQ(res->get_header_value("X-Switchyard-Model"), "stories") << status;
    }
    // A stream that ends without [DONE] is a failure, said in the stream, not a success.
    res = s.post("/v1/chat/completions",
                 {{"model", "remote"}, {"messages", messages}, {"stream", true}, {"stub_truncate", true}});
    ASSERT_TRUE(res);
    EXPECT_NE(res->body.find("ended before [DONE]"), std::string::npos) << res->body;
}

TEST(ServeHttp, ReplicasShareTheLoadAndAKilledOneIsNeverFelt) {
    std::vector<std::unique_ptr<test::ServerProcess>> stubs;
    std::vector<std::string> endpoints;
    std::string replicas;
    for (int i = 0; i < 3; ++i) {
        stubs.push_back(std::make_unique<test::ServerProcess>(
            STUB_OPENAI_BINARY, std::vector<std::string>{"--port", "0", "--name", "r" + std::to_string(i)}));
        endpoints.push_back("http://127.0.0.1:" + std::to_string(stubs.back()->port()) + "/v1");
        replicas += (i ? ", " : "") + std::string("{endpoint: '") + endpoints.back() + "'}";
    }
    // A probe's timeout is generous: under ThreadSanitizer on a loaded machine a stub can take
    // more than 200 ms to answer /health, and a replica probed out would skew the even split.
    // A killed one is seen at once (its port refuses).
    Served s(
        "version: 1\nmodels:\n"
        "  - {name: pool, replicas: [" +
        replicas +
        "], health: {interval_ms: 200, timeout_ms: 2000}}\n"
        "routes:\n  - {name: main, model: pool}\n");
    // `n` requests from 8 clients at once; returns how many failed.
    auto run = [&](int n) {
        std::atomic<int> failed{0};
        std::vector<std::thread> clients;
        for (int c = 0; c < 8; ++c) {
            clients.emplace_back([&] {
                httplib::Client client("127.0.0.1", s.process->port());
                for (int k = 0; k < n / 8; ++k) {
                    const json body = {
                        {"model", "pool"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 4}};
                    auto res = client.Post("/v1/chat/completions", body.dump(), "application/json");
                    if (!res || res->status != 200) ++failed;
                }
            });
        }
        for (auto & t : clients) t.join();
        return failed.load();
    };
    auto replica_stats = [&] {
        std::map<std::string, json> out;
        const json stats = json::parse(s.client->Get("/stats")->body);
        for (const auto & r : stats["replicas"]) out[r["replica"].get<std::string>()] = r;
        return out;
    };
    // All healthy: the load splits evenly (least outstanding, ties in turn).
    EXPECT_EQ(run(960), 0);
    auto stats = replica_stats();
    ASSERT_EQ(stats.size(), 3u);
    for (const auto & e : endpoints) {
        const double share = stats[e]["requests"].get<double>() / 320.0;
        EXPECT_NEAR(share, 1.0, 0.2) << e << " answered " << stats[e]["requests"];
    }
    // One replica is killed while requests run: its requests are retried on the others.
    std::thread killer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        stubs[1].reset();
    });
    EXPECT_EQ(run(960), 0);
    killer.join();
    run(8);  // at least one attempt meets the dead replica, if the probe has not already
    EXPECT_FALSE(replica_stats()[endpoints[1]]["healthy"].get<bool>());
    // Restarted on its port, it is back in rotation at the next probe and gets requests again.
    const int port = std::stoi(endpoints[1].substr(endpoints[1].rfind(':') + 1));
    stubs[1] = std::make_unique<test::ServerProcess>(
        STUB_OPENAI_BINARY, std::vector<std::string>{"--port", std::to_string(port), "--name", "r1"});
    const auto restarted = std::chrono::steady_clock::now();
    while (!replica_stats()[endpoints[1]]["healthy"].get<bool>() &&
           std::chrono::steady_clock::now() - restarted < std::chrono::seconds(20)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::printf("[replicas] back in rotation %.0f ms after the restart (probe interval 200 ms)\n",
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - restarted).count());
    const auto before = replica_stats()[endpoints[1]]["requests"].get<int>();
    EXPECT_EQ(run(480), 0);
    EXPECT_GT(replica_stats()[endpoints[1]]["requests"].get<int>(), before + 80);
    const std::string metrics = s.client->Get("/metrics")->body;
    EXPECT_NE(metrics.find("switchyard_replica_healthy{model=\"pool\",replica=\"" + endpoints[1] + "\"} 1"),
              std::string::npos)
        << metrics;
}

namespace {

// Rows of a query on a capture store, each column as text ("" for NULL).
std::vector<std::vector<std::string>> query(const std::filesystem::path & db, const std::string & sql) {
    sqlite3 * h = nullptr;
    std::vector<std::vector<std::string>> rows;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        ADD_FAILURE() << "cannot open " << db;
        sqlite3_close(h);
        return rows;
    }
    sqlite3_stmt * s = nullptr;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            std::vector<std::string> row;
            for (int c = 0; c < sqlite3_column_count(s); ++c) {
                const auto * text = sqlite3_column_text(s, c);
                row.emplace_back(text ? reinterpret_cast<const char *>(text) : "");
            }
            rows.push_back(row);
        }
    } else {
        ADD_FAILURE() << sqlite3_errmsg(h);
    }
    sqlite3_finalize(s);
    sqlite3_close(h);
    return rows;
}

}  // namespace

TEST(ServeHttp, CaptureKeepsRedactedAnswersAndTheirFeedback) {
    const auto model = test::model_path("stories260K-f32.gguf").string();
    Served s(
        "version: 1\nmodels:\n  - {name: stories, path: " + model +
        ", context: 256, parallel: 2, threads: 1}\n"
        "routes:\n  - {name: main, model: stories, capture: {sample: 1, max_items: 3}}\n  - {name: quiet, model: stories}\n");
    const auto db = s.dir.file("captures.sqlite");
    auto chat = [&](const std::string & route, const std::string & text, bool stream) {
        return s.post("/v1/chat/completions",
                      {{"model", route},
                       {"messages", {{{"role", "user"}, {"content", text}}}},
                       {"max_tokens", 4},
                       {"temperature", 0},
                       {"stream", stream}});
    };
    auto res = chat("main", "Once upon a time ada@example.com wrote", false);
    ASSERT_EQ(res->status, 200) << res->body;
    const std::string id = json::parse(res->body)["id"];
    EXPECT_EQ(chat("quiet", "Once upon a time", false)->status, 200);
    // Feedback labels the captured answer; an unknown id is a 404.
    res = s.post("/v1/feedback", {{"id", id}, {"correct", false}, {"expected", "Lily"}});
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(s.post("/v1/feedback", {{"id", "chatcmpl-nope"}, {"correct", true}})->status, 404);
    EXPECT_EQ(s.post("/v1/feedback", {{"id", id}})->status, 400);  // 'correct' missing
    auto rows = query(db, "SELECT id, route, request, correct, expected, logprobs FROM captures");
    ASSERT_EQ(rows.size(), 1u);  // the quiet route has no capture
    EXPECT_EQ(rows[0][0], id);
    EXPECT_EQ(rows[0][1], "main");
    EXPECT_EQ(rows[0][2].find("ada@example.com"), std::string::npos) << rows[0][2];
    EXPECT_NE(rows[0][2].find("[redacted:email]"), std::string::npos) << rows[0][2];
    EXPECT_EQ(rows[0][3], "0");
    EXPECT_EQ(rows[0][4], "Lily");
    EXPECT_EQ(json::parse(rows[0][5]).size(), 4u);  // a log-probability per generated token, in process
    // Streams are captured too; beyond max_items the oldest go.
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(chat("main", "Once upon a time " + std::to_string(i), i % 2 == 1)->status, 200);
    s.post("/v1/feedback",
           {{"id", "chatcmpl-flush"}, {"correct", true}});  // answered after every earlier capture is written
    rows = query(db, "SELECT request FROM captures ORDER BY time, rowid");
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_NE(rows.back()[0].find("Once upon a time 3"), std::string::npos) << rows.back()[0];
    const std::string metrics = s.client->Get("/metrics")->body;
    EXPECT_NE(metrics.find("switchyard_capture_items_total{route=\"main\"} 5"), std::string::npos) << metrics;
}

TEST(ServeHttp, CaptureOffStoresNothing) {
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(served().post("/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 2}})->status, 200);
    EXPECT_FALSE(std::filesystem::exists(served().dir.file("captures.sqlite")));
    EXPECT_EQ(served().post("/v1/feedback", {{"id", "cmpl-x"}, {"correct", true}})->status, 404);
    EXPECT_EQ(served().client->Get("/metrics")->body.find("switchyard_capture_"), std::string::npos);
}

TEST(ServeCapture, AFullQueueDropsAndCountsInsteadOfWaiting) {
    test::ScratchDir dir;
    std::uint64_t dropped = 0;
    {
        serve::CaptureStore store(dir.file("c.sqlite"), 1);
        for (int i = 0; i < 2000; ++i)
            store.offer({.id = "id" + std::to_string(i), .route = "r", .answer = "x"},
                        model::Capture{.max_items = 100000});
        dropped = store.counts()["r"].dropped;
    }  // what was queued is written before the store closes
    EXPECT_GT(dropped, 0u);
    EXPECT_EQ(query(dir.file("c.sqlite"), "SELECT COUNT(*) FROM captures").at(0).at(0), std::to_string(2000 - dropped));
}

TEST(ServeCapture, RedactionPresetsAndPatterns) {
    const serve::Redactor r({"email", "phone", "card", "secret-[0-9]+"});
    EXPECT_EQ(r.apply("mail bob.smith+x@mail.example.org now"), "mail [redacted:email] now");
    EXPECT_EQ(r.apply("call +44 20 7946 0958 today"), "call [redacted:phone] today");
    EXPECT_EQ(r.apply("id secret-123 ok"), "id [redacted:secret-[0-9]+] ok");
    EXPECT_EQ(r.apply("card 4111 1111 1111 1111."), "card [redacted:phone].");  // caught by the first rule that matches
    EXPECT_EQ(r.apply("Once upon a time, 3 bears"), "Once upon a time, 3 bears");
}

TEST(ServeHttp, StartupErrorsAreOneLine) {
    test::ScratchDir dir;
    test::write_file(dir.file("bad.yaml"), "version: 1\nmodels:\n  - {name: a, path: a.gguf, contxt: 5}\n");
    for (const auto & [args, fragment] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"serve"}, "serve needs --portfolio FILE or -m MODEL"},
             {{"serve", "-m", "/nonexistent/model.gguf"}, "/nonexistent/model.gguf: no such file"},
             {{"serve", "--portfolio", dir.file("bad.yaml").string()}, "bad.yaml:3: models[0].contxt"}}) {
        const auto r = test::run_switchyard(args);
        EXPECT_EQ(r.exit_code, 1) << r.err;
        EXPECT_EQ(r.err.rfind("switchyard: error: ", 0), 0u) << r.err;
        EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    }
}

TEST(ServeHttp, OverloadIs429And503) {
    Served s("version: 1\nmodels:\n  - {name: one, path: " + test::model_path("stories260K-f32.gguf").string() +
             ", context: 512, parallel: 1, threads: 1}\nserver: {queue_length: 1, max_streams: 1}\n");
    // One slot and a queue of one: of eight simultaneous long requests some are refused, none lost.
    std::vector<int> statuses(8, 0);
    std::vector<std::string> bodies(8);
    std::vector<std::thread> clients;
    for (int i = 0; i < 8; ++i) {
        clients.emplace_back([&, i] {
            httplib::Client c("127.0.0.1", s.process->port());
            c.set_read_timeout(std::chrono::seconds(120));
            auto res = c.Post("/v1/completions",
                              json{{"prompt", "Once upon a time"}, {"max_tokens", 400}, {"temperature", 0}}.dump(),
                              "application/json");
            statuses[i] = res ? res->status : -1;
            bodies[i] = res ? res->body : "";
        });
    }
    for (auto & t : clients) t.join();
    const auto count = [&](int status) { return std::count(statuses.begin(), statuses.end(), status); };
    EXPECT_GE(count(429), 1);
    EXPECT_GE(count(200), 1);
    EXPECT_EQ(count(200) + count(429), 8);
    for (int i = 0; i < 8; ++i) {
        if (statuses[i] == 429) {
            EXPECT_EQ(json::parse(bodies[i])["error"]["type"], "overloaded_error");
        }
    }
    // max_streams 1: a second stream while the first is open is refused with 503.
    std::promise<void> second_done;
    std::thread first([&] {
        httplib::Client c("127.0.0.1", s.process->port());
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/completions";
        req.body = json{{"prompt", "Once upon a time"}, {"max_tokens", 400}, {"stream", true}}.dump();
        req.set_header("Content-Type", "application/json");
        bool waited = false;
        req.content_receiver = [&](const char *, std::size_t, std::uint64_t, std::uint64_t) {
            if (!waited) second_done.get_future().wait();
            waited = true;
            return true;
        };
        httplib::Response res;
        httplib::Error err;
        c.send(req, res, err);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int status = 0;
    for (int i = 0; i < 100 && status != 503; ++i) {
        auto res = s.post("/v1/completions", {{"prompt", "Once"}, {"max_tokens", 2}, {"stream", true}});
        status = res ? res->status : -1;
        if (status != 503) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    second_done.set_value();
    first.join();
    EXPECT_EQ(status, 503);
}

TEST(ServeHttp, ClientKeysWhenConfigured) {
    Served s("version: 1\nmodels:\n  - {name: stories, path: " + test::model_path("stories260K-f32.gguf").string() +
                 ", context: 256, threads: 1}\nserver: {api_keys_env: SY_KEYS}\n",
             {"SY_KEYS=alpha,beta"});
    const json body = {{"prompt", "Once"}, {"max_tokens", 2}};
    auto res = s.post("/v1/completions", body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401);
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "invalid_api_key");
    EXPECT_EQ(s.post("/v1/completions", body, {{"Authorization", "Bearer alph"}})->status, 401);
    EXPECT_EQ(s.post("/v1/completions", body, {{"Authorization", "Bearer beta"}})->status, 200);
    EXPECT_EQ(s.post("/tokenize", {{"content", "x"}})->status, 401);
    EXPECT_EQ(s.client->Get("/health")->status, 200);  // probes stay open
}
