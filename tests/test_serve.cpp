// serve's pure parts: request parsing and validation, routing, cascade decisions, cooldown,
// shadow agreement math, the metrics text, and the stream events an answer becomes.
#include "fake_backend.h"
#include "model/portfolio.h"
#include "serve/api.h"
#include "serve/metrics.h"
#include "serve/router.h"
#include "serve/shadow.h"
#include "serve/shadow_worker.h"
#include "serve/sse_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <future>

using namespace switchyard;
using namespace switchyard::serve;

namespace {

ApiRequest parse_ok(ApiRequest::Kind kind, const std::string & body) {
    auto r = parse_request(kind, body, Limits{});
    if (const auto * e = std::get_if<ApiError>(&r)) ADD_FAILURE() << body << ": " << e->message;
    return std::get<ApiRequest>(r);
}

ApiError parse_bad(ApiRequest::Kind kind, const std::string & body) {
    auto r = parse_request(kind, body, Limits{.max_tokens = 100});
    EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
    return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

constexpr auto chat = ApiRequest::Kind::chat;
constexpr auto completion = ApiRequest::Kind::completion;

}  // namespace

TEST(ServeApi, ChatRequest) {
    const auto r = parse_ok(chat, R"({"model":"m","messages":[{"role":"system","content":"Be brief."},
        {"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],
        "temperature":0,"max_tokens":7,"stop":"\n","stream":true,"stream_options":{"include_usage":true},"metadata":{"task":"simple"}})");
    EXPECT_EQ(r.model, "m");
    EXPECT_EQ(r.task, "simple");
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
    ASSERT_EQ(r.input.messages.size(), 2u);
    EXPECT_EQ(r.input.messages[1].content, "Hi there");
    EXPECT_EQ(r.input.max_tokens, 7);
    EXPECT_EQ(r.input.sampling.temperature, 0.0f);
    EXPECT_EQ(r.input.stop, std::vector<std::string>{"\n"});
    EXPECT_EQ(r.input.routing_text(), "Be brief.\nHi there");
    EXPECT_EQ(plain_transcript(r.input.messages), "System: Be brief.\nUser: Hi there\nAssistant:");
}

// tools, tool_choice and response_format reach the backend as the chat template takes them.
TEST(ServeApi, ChatToolsAndResponseFormat) {
    const auto r =
        parse_ok(chat, R"({"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":null,
        "tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}],
        "tools":[{"type":"function","function":{"name":"get_weather"}}],"tool_choice":"required",
        "response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}}})");
    const auto & c = r.input.chat_request;
    EXPECT_EQ(c.messages[1]["tool_calls"][0]["function"]["name"], "get_weather");  // as sent, for the template
    EXPECT_EQ(c.messages[2]["tool_call_id"], "c1");
    EXPECT_EQ(c.tools[0]["function"]["name"], "get_weather");
    EXPECT_EQ(c.tool_choice, "required");
    EXPECT_EQ(c.json_schema, nlohmann::json::parse(R"({"type":"object"})"));
    EXPECT_EQ(parse_ok(chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})")
                  .input.chat_request.json_schema,
              nlohmann::json::object());
    EXPECT_TRUE(parse_ok(chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})")
                    .input.chat_request.json_schema.is_null());
}

TEST(ServeApi, CompletionPromptForms) {
    const auto text = parse_ok(completion, R"({"prompt":"Once upon"})");
    EXPECT_EQ(text.input.prompt, "Once upon");
    EXPECT_EQ(text.input.max_tokens, 16);  // OpenAI's default for completions
    const auto ids = parse_ok(completion, R"({"prompt":[1,2,3],"echo":true,"logprobs":3,"max_tokens":0})");
    EXPECT_EQ(ids.input.prompt_tokens, (std::vector<engine::Token>{1, 2, 3}));
    EXPECT_TRUE(ids.echo);
    EXPECT_EQ(ids.input.logprobs, 3);
    EXPECT_EQ(ids.input.max_tokens, 0);
    EXPECT_EQ(parse_ok(completion, R"({"prompt":["one"]})").input.prompt, "one");
    // Batches: LangChain's list of strings, lm-eval's list of token-id lists (one-element ones too).
    const auto texts = parse_ok(completion, R"({"prompt":["one","two","three"],"n":2,"seed":7})");
    ASSERT_EQ(texts.prompts.size(), 3u);
    EXPECT_EQ(texts.choice_count(), 6u);
    EXPECT_EQ(texts.choice_input(3).prompt, "two");  // prompt by prompt, n choices each
    EXPECT_EQ(texts.choice_input(3).sampling.seed, 8u);  // the second choice of its prompt: not a copy of the first
    EXPECT_EQ(texts.choice_input(4).sampling.seed, 7u);
    const auto lists = parse_ok(completion, R"({"prompt":[[1,2],[3]],"echo":true,"max_tokens":1,"logprobs":0})");
    ASSERT_EQ(lists.prompts.size(), 2u);
    EXPECT_EQ(lists.prompts[1].tokens, (std::vector<engine::Token>{3}));
    EXPECT_EQ(lists.input.prompt_tokens, (std::vector<engine::Token>{1, 2}));
    EXPECT_EQ(lists.input.logprobs, 0);
    EXPECT_EQ(parse_ok(completion, R"({"prompt":[[5,6]]})").input.prompt_tokens, (std::vector<engine::Token>{5, 6}));
    // What one request can ask for, and what a stream can carry.
    EXPECT_EQ(parse_bad(completion, R"({"prompt":"x","n":65})").param, "n");
    EXPECT_NE(parse_bad(completion, R"({"prompt":["a","b"],"n":40})")
                  .message.find("2 prompts x n 40 asks for 80 choices; one request takes at most 64"),
              std::string::npos);
    EXPECT_EQ(parse_bad(completion, R"({"prompt":["a","b"],"stream":true})").param, "prompt");
    EXPECT_EQ(parse_bad(completion, R"({"prompt":"a","n":2,"echo":true})").param, "n");
    EXPECT_EQ(parse_bad(completion, R"({"prompt":[[1],"b",[]]})").param, "prompt[2]");
}

TEST(ServeApi, BadRequestsNameTheField) {
    struct Case {
        ApiRequest::Kind kind;
        const char * body;
        const char * param;
    };
    for (const Case & c :
         {Case{chat, R"({"messages":"hi"})", "messages"},
          Case{chat, R"({})", "messages"},
          Case{chat, R"({"messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
          Case{chat, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
               "messages[0].content[0].type"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"temperature":3})", "temperature"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"max_tokens":101})", "max_tokens"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", "max_tokens"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"max_tokens":18446744073709551615})", "max_tokens"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"n":0})", "n"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"n":2,"stream":true})", "n"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"model":5})", "model"},
          Case{completion, R"({"prompt":"x","max_tokens":0})", "max_tokens"},
          Case{completion, R"({"prompt":[1,-2]})", "prompt"},
          Case{completion, R"({"prompt":{}})", "prompt"},
          Case{completion, R"({"prompt":"x","echo":true,"stream":true})", "echo"},
          Case{completion, R"({"prompt":"x","stop":[1]})", "stop"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"tools":{}})", "tools"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"code"}]})", "tools[0].type"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{}}]})",
               "tools[0].function.name"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"always"})", "tool_choice"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"required"})", "tool_choice"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})",
               "response_format.type"},
          Case{chat, R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})",
               "response_format.json_schema"}}) {
        const ApiError e = parse_bad(c.kind, c.body);
        EXPECT_EQ(e.status, 400) << c.body;
        EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
        EXPECT_EQ(e.to_json()["error"]["type"], "invalid_request_error");
    }
}

TEST(ServeApi, MalformedBodies) {
    for (const std::string & body : {std::string("{"), std::string("[]"), std::string("null"), std::string(""),
                                     std::string("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"),
                                     std::string(100000, '['), std::string("{\"a\":\"\xf4\"}")}) {
        const ApiError e = parse_bad(chat, body);
        EXPECT_EQ(e.status, 400);
        EXPECT_FALSE(e.message.empty());
        EXPECT_TRUE(
            nlohmann::json::accept(e.body()));  // what goes on the wire is valid JSON even when the input was not UTF-8
    }
}

// Half a million levels fit in a 1 MiB body; they are refused before parsing, while brackets inside
// strings and 64 real levels are fine.
TEST(ServeApi, DeepNestingIsRefusedBeforeParsing) {
    const std::string deep = R"({"prompt":"a","x":)" + std::string(500000, '[') + std::string(500000, ']') + "}";
    const ApiError e = parse_bad(completion, deep);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.message, "the body nests arrays and objects deeper than 64 levels");
    parse_ok(completion, R"({"prompt":"[[[[{{{{ \" [[[[","x":)" + std::string(63, '[') + std::string(63, ']') + "}");
    EXPECT_EQ(parse_bad(completion, R"({"prompt":"a","x":)" + std::string(64, '[') + std::string(64, ']') + "}").status,
              400);
}

TEST(ServeApi, TokenizeBothDialects) {
    auto llama = std::get<TokenizeRequest>(parse_tokenize(R"({"content":"hi","add_special":false})"));
    EXPECT_EQ(llama.content, "hi");
    EXPECT_FALSE(llama.add_special);
    auto vllm = std::get<TokenizeRequest>(parse_tokenize(R"({"model":"m","prompt":"yo","add_special_tokens":true})"));
    EXPECT_EQ(vllm.content, "yo");
    EXPECT_EQ(vllm.model, "m");
    EXPECT_TRUE(vllm.add_special);
    EXPECT_TRUE(llama.parse_special);  // "<s>" is BOS, as vLLM and Hugging Face tokenizers read it
    EXPECT_FALSE(std::get<TokenizeRequest>(parse_tokenize(R"({"content":"<s>","parse_special":false})")).parse_special);
    EXPECT_TRUE(std::holds_alternative<ApiError>(parse_tokenize(R"({"add_special":true})")));
    EXPECT_EQ(std::get<DetokenizeRequest>(parse_detokenize(R"({"tokens":[5,6]})")).tokens,
              (std::vector<engine::Token>{5, 6}));
    EXPECT_TRUE(std::holds_alternative<ApiError>(parse_detokenize(R"({"tokens":["a"]})")));
}

namespace {

model::Portfolio routing_portfolio() {
    return model::parse_portfolio(R"(version: 1
models:
  - {name: base, path: base.gguf}
  - {name: small, path: small.gguf}
  - {name: canary-m, path: c.gguf}
  - {name: remote, endpoint: http://127.0.0.1:9/v1}
routes:
  - {name: critical, model: base, fallback: [remote, small]}
  - name: bulk
    model: small
    fallback: [base]
    canary: {model: canary-m, percent: 10}
    shadow: {model: base, sample: 0.25}
  - name: simple
    cascade: {models: [small, base], min_mean_logprob: -1.5}
rules:
  - {route: critical, regex: "contract|diagnos", ignore_case: true}
  - {route: simple, max_prompt_chars: 20}
default_route: bulk
)",
                                  "test", "/models");
}

Resolution resolved(const Router & router, const std::string & model, const std::string & task,
                    const std::string & text, double canary = 0.5, double shadow = 0.5) {
    auto r = router.resolve(model, task, text, canary, shadow);
    if (const auto * e = std::get_if<ApiError>(&r)) ADD_FAILURE() << e->message;
    return std::get<Resolution>(r);
}

}  // namespace

TEST(ServeRouter, PicksRoutes) {
    const auto p = routing_portfolio();
    const Router router(p);
    // A task names a route, whatever the text says.
    EXPECT_EQ(resolved(router, "", "critical", "hello").route, "critical");
    EXPECT_EQ(resolved(router, "", "critical", "").chain, (std::vector<std::string>{"base", "remote", "small"}));
    // Rules in order: regex (case-insensitive), then length, else the default.
    EXPECT_EQ(resolved(router, "", "", "Please review this CONTRACT for me").route, "critical");
    EXPECT_EQ(resolved(router, "", "", "short one").route, "simple");
    EXPECT_EQ(resolved(router, "", "", "a long enough prompt with nothing special").route, "bulk");
    // `model` names a route, or a model directly (no fallback then).
    EXPECT_EQ(resolved(router, "simple", "", "").route, "simple");
    const auto direct = resolved(router, "remote", "", "contract");
    EXPECT_EQ(direct.route, "");
    EXPECT_EQ(direct.chain, std::vector<std::string>{"remote"});
}

TEST(ServeRouter, UnknownNamesAre404) {
    const auto p = routing_portfolio();
    const Router router(p);
    auto r = router.resolve("gpt-4", "", "", 0.5, 0.5);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r));
    EXPECT_EQ(std::get<ApiError>(r).status, 404);
    EXPECT_EQ(std::get<ApiError>(r).code, "model_not_found");
    r = router.resolve("", "nope", "", 0.5, 0.5);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r));
    EXPECT_EQ(std::get<ApiError>(r).status, 404);
}

TEST(ServeRouter, CanaryAndShadowDraws) {
    const auto p = routing_portfolio();
    const Router router(p);
    const auto canary = resolved(router, "bulk", "", "", 0.05, 0.9);
    EXPECT_TRUE(canary.canary);
    EXPECT_EQ(canary.chain,
              (std::vector<std::string>{"canary-m", "small", "base"}));  // the canary falls back to the route's model
    EXPECT_EQ(canary.shadow, "");
    const auto plain = resolved(router, "bulk", "", "", 0.10, 0.2);
    EXPECT_FALSE(plain.canary);
    EXPECT_EQ(plain.chain, (std::vector<std::string>{"small", "base"}));
    EXPECT_EQ(plain.shadow, "base");
    const auto cascade = resolved(router, "simple", "", "");
    ASSERT_NE(cascade.cascade, nullptr);
    EXPECT_EQ(cascade.chain, (std::vector<std::string>{"small", "base"}));
}

TEST(ServeRouter, CascadeDecision) {
    const std::vector<engine::TokenLogprob> sure{{1, -0.1f, {}}, {2, -0.5f, {}}};
    const std::vector<engine::TokenLogprob> unsure{{1, -0.1f, {}}, {2, -4.0f, {}}};
    EXPECT_NEAR(*mean_logprob(sure), -0.3, 1e-6);
    EXPECT_FALSE(should_escalate(sure, true, -1.5));
    EXPECT_TRUE(should_escalate(unsure, true, -1.5));
    EXPECT_TRUE(should_escalate(sure, false, -1.5));  // no log-probabilities: cannot tell, ask the next
    EXPECT_FALSE(should_escalate({}, true, -1.5));  // nothing generated: nothing to doubt
}

TEST(ServeRouter, CooldownRestsFailedBackends) {
    Cooldown cooldown(std::chrono::seconds(30));
    const auto t0 = Cooldown::Clock::now();
    const std::vector<std::string> chain{"a", "b", "c"};
    EXPECT_EQ(cooldown.order(chain, t0), chain);
    cooldown.failed("a", t0);
    EXPECT_TRUE(cooldown.resting("a", t0 + std::chrono::seconds(29)));
    EXPECT_EQ(cooldown.order(chain, t0 + std::chrono::seconds(1)), (std::vector<std::string>{"b", "c"}));
    EXPECT_FALSE(cooldown.resting("a", t0 + std::chrono::seconds(31)));
    EXPECT_EQ(cooldown.order(chain, t0 + std::chrono::seconds(31)), chain);
    cooldown.failed("b", t0);
    cooldown.failed("c", t0);
    EXPECT_EQ(cooldown.order(chain, t0 + std::chrono::seconds(1)), chain);  // all resting: try them anyway
    cooldown.succeeded("b");
    EXPECT_EQ(cooldown.order(chain, t0 + std::chrono::seconds(1)), std::vector<std::string>{"b"});
}

TEST(ServeShadow, AgreementMath) {
    const std::vector<engine::Token> a{1, 2, 3, 4}, b{1, 2, 9, 4, 5};
    EXPECT_DOUBLE_EQ(positional_agreement<engine::Token>(a, b), 3.0 / 5.0);
    EXPECT_DOUBLE_EQ(positional_agreement<engine::Token>(a, a), 1.0);
    EXPECT_DOUBLE_EQ(positional_agreement<engine::Token>({}, {}), 1.0);
    const auto wa = words("the cat  sat"), wb = words("the dog sat down");
    EXPECT_DOUBLE_EQ(positional_agreement<std::string>(wa, wb), 2.0 / 4.0);
}

TEST(ServeShadow, TopKKld) {
    // Identical distributions: zero. A candidate that moves mass away: positive.
    const float l1 = std::log(0.7f), l2 = std::log(0.2f);
    const std::vector<engine::TokenLogprob> inc{{0, l1, {{0, l1}, {1, l2}}}};
    EXPECT_NEAR(*topk_kld(inc, inc, 10), 0.0, 1e-6);
    const std::vector<engine::TokenLogprob> cand{{0, std::log(0.3f), {{1, std::log(0.6f)}, {0, std::log(0.3f)}}}};
    const double kld = *topk_kld(inc, cand, 10);
    // Exact on the buckets {0}, {1}, rest: 0.7 ln(0.7/0.3) + 0.2 ln(0.2/0.6) + 0.1 ln(0.1/0.1).
    EXPECT_NEAR(kld, 0.7 * std::log(0.7 / 0.3) + 0.2 * std::log(0.2 / 0.6), 1e-4);
    EXPECT_FALSE(topk_kld({}, {}, 10).has_value());
}

TEST(ServeShadow, Verdicts) {
    model::Shadow s{.model = "c", .sample = 1, .promote_at = 0.95, .rollback_below = 0.8, .min_samples = 10};
    EXPECT_EQ(shadow_verdict(s, 9, 1.0), ShadowVerdict::keep);
    EXPECT_EQ(shadow_verdict(s, 10, 0.96), ShadowVerdict::promote);
    EXPECT_EQ(shadow_verdict(s, 10, 0.9), ShadowVerdict::keep);
    EXPECT_EQ(shadow_verdict(s, 10, 0.5), ShadowVerdict::roll_back);
}

namespace {

// A backend whose answers wait until the test lets them go (then fail): keeps a worker busy.
class HeldBackend final : public test::FakeBackend {
public:
    std::promise<void> first_started;
    std::shared_future<void> release;

    bool in_process() const override { return false; }
    std::shared_ptr<Stream> start(const ApiRequest &, const GenerationInput &, const std::function<bool()> &) override {
        if (!started_.exchange(true)) first_started.set_value();
        release.wait();
        auto stream = std::make_shared<Stream>();
        stream->fail(Failure::failed, "held");
        return stream;
    }

private:
    std::atomic<bool> started_{false};
};

}  // namespace

TEST(ServeShadow, AFullQueueDropsAndCountsInsteadOfWaiting) {
    Metrics metrics;
    auto backend = std::make_shared<HeldBackend>();
    auto started = backend->first_started.get_future();
    std::promise<void> release;
    backend->release = release.get_future().share();
    auto dep = std::make_shared<Deployment>();
    dep->backends = {{"incumbent", backend}, {"candidate", backend}};
    {
        ShadowWorker worker(
            metrics, std::chrono::milliseconds(1000), [&] { return std::shared_ptr<const Deployment>(dep); },
            [](const std::string &, const std::string &, bool) {});
        const auto job = [&] {
            return ShadowJob{.route = "r", .candidate = "candidate", .incumbent = "incumbent", .deployment = dep};
        };
        worker.enqueue(job());
        started.wait();  // the worker holds the first job: the queue takes kQueue more, then drops
        for (std::size_t i = 0; i < ShadowWorker::kQueue + 5; ++i) worker.enqueue(job());
        EXPECT_NE(metrics.prometheus().find(
                      "# TYPE switchyard_shadow_dropped_total counter\nswitchyard_shadow_dropped_total 5\n"),
                  std::string::npos)
            << metrics.prometheus();
        EXPECT_EQ(metrics.to_json()["shadow_dropped"], 5);
        release.set_value();
    }  // closing drops what is queued and waits for the job in hand
    EXPECT_GE(metrics.shadows()["r"].failures, 1u);
    EXPECT_EQ(metrics.to_json()["shadow_dropped"], 5);
}

TEST(ServeMetrics, PrometheusText) {
    Metrics m;
    m.answered("bulk", "small", 10, 5, 2.0, 0.001, 0.2);
    m.answered("bulk", "small", 4, 1, 2.0, 0.003, 3.0);
    m.fallback("bulk");
    m.attempt_failed("remote");
    const std::string text = m.prometheus();
    for (const char * line :
         {"switchyard_model_requests_total{model=\"small\"} 2\n", "switchyard_tokens_in_total{model=\"small\"} 14\n",
          "switchyard_tokens_out_total{model=\"small\"} 6\n", "switchyard_cost_estimate_total{model=\"small\"} 0.04\n",
          "switchyard_fallbacks_total{route=\"bulk\"} 1\n", "switchyard_model_errors_total{model=\"remote\"} 1\n",
          "switchyard_request_seconds_bucket{model=\"small\",le=\"0.25\"} 1\n",
          "switchyard_request_seconds_bucket{model=\"small\",le=\"+Inf\"} 2\n",
          "switchyard_request_seconds_count{model=\"small\"} 2\n", "# TYPE switchyard_ttft_seconds histogram\n"}) {
        EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "\n" << text;
    }
    EXPECT_EQ(m.to_json()["routes"]["bulk"]["requests"], 2);
}

namespace {

// The JSON of each `data:` event, and whether the stream ended with [DONE].
std::vector<nlohmann::json> events_of(const std::string & text, bool * done) {
    std::vector<nlohmann::json> out;
    *done = false;
    for (std::size_t pos = 0; (pos = text.find("data: ", pos)) != std::string::npos;) {
        const auto end = text.find("\n\n", pos);
        const std::string data = text.substr(pos + 6, end - pos - 6);
        pos = end;
        if (data == "[DONE]") {
            *done = true;
        } else {
            out.push_back(nlohmann::json::parse(data));
        }
    }
    return out;
}

}  // namespace

TEST(ServeSse, OwnChunksOpenWithTheRoleAndEndWithFinishAndUsage) {
    ApiRequest r = parse_ok(
        chat, R"({"messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}})");
    const SseWriter sse(r, Answer{"chatcmpl-1", 7, "small"}, false);
    bool done = false;
    auto opening = events_of(sse.opening(), &done);
    ASSERT_EQ(opening.size(), 1u);
    EXPECT_EQ(opening[0]["choices"][0]["delta"], (nlohmann::json{{"role", "assistant"}, {"content", ""}}));
    Stream::Event piece{.kind = Stream::Event::Kind::piece, .text = "Once"};
    EXPECT_EQ(events_of(sse.piece(piece), &done)[0]["choices"][0]["delta"]["content"], "Once");
    Generation g;
    g.finish = engine::FinishReason::stop;
    g.prompt_tokens = 3;
    g.completion_tokens = 1;
    const auto tail = events_of(sse.done(g), &done);
    EXPECT_TRUE(done);
    ASSERT_EQ(tail.size(), 2u);
    EXPECT_EQ(tail[0]["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(tail[1]["usage"]["total_tokens"], 4);
    EXPECT_TRUE(tail[1]["choices"].empty());
    const auto failed = events_of(sse.failed(ApiError{502, "gone", "backend_error"}), &done);
    EXPECT_TRUE(done);
    EXPECT_EQ(failed[0]["error"]["message"], "gone");
}

// An in-process answer's tool calls in OpenAI's shape (the one remote servers send): whole, the
// message's `tool_calls` and no content; streamed, one chunk per call with its index; either way
// finish_reason "tool_calls", unless max_tokens cut the answer.
TEST(ServeSse, ToolCallsGoOutInOpenAIsShape) {
    const ApiRequest r = parse_ok(chat, R"({"messages":[{"role":"user","content":"x"}],"stream":true,
        "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]})");
    Generation g;
    g.finish = engine::FinishReason::eos;
    g.tool_calls = {{.id = "call_1", .name = "get_weather", .arguments = R"({"city": "Paris"})"}};
    const auto call = nlohmann::json::parse(
        R"({"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}})");
    EXPECT_EQ(assistant_message(g),
              (nlohmann::json{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", {call}}}));
    EXPECT_STREQ(finish_reason(g), "tool_calls");

    bool done = false;
    const auto tail = events_of(SseWriter(r, Answer{"chatcmpl-1", 7, "small"}, false).done(g), &done);
    EXPECT_TRUE(done);
    ASSERT_EQ(tail.size(), 2u);
    auto indexed = call;
    indexed["index"] = 0;
    EXPECT_EQ(tail[0]["choices"][0]["delta"], (nlohmann::json{{"tool_calls", {indexed}}}));
    EXPECT_TRUE(tail[0]["choices"][0]["finish_reason"].is_null());
    EXPECT_EQ(tail[1]["choices"][0]["finish_reason"], "tool_calls");

    g.text = "Sure.";
    EXPECT_EQ(assistant_message(g)["content"], "Sure.");
    g.finish = engine::FinishReason::length;
    EXPECT_STREQ(finish_reason(g), "length");
}

TEST(ServeSse, RelayedChunksGoOnAsSentUnderTheClientsName) {
    ApiRequest r = parse_ok(chat, R"({"messages":[{"role":"user","content":"x"}],"stream":true})");
    const SseWriter sse(r, Answer{"chatcmpl-1", 7, "remote"}, true);
    EXPECT_EQ(sse.opening(), "");  // the server sends its own first chunk
    const auto call = nlohmann::json::parse(
        R"({"id":"up-1","model":"real-name","system_fingerprint":"fp","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c"}]},"finish_reason":null}]})");
    bool done = false;
    const auto relayed_chunk =
        events_of(sse.piece(Stream::Event{.kind = Stream::Event::Kind::piece, .upstream = call}), &done);
    auto want = call;
    want["model"] = "remote";
    want["id"] = "chatcmpl-1";
    EXPECT_EQ(relayed_chunk.at(0), want);
    // The usage chunk was asked of the server for the metrics; this client did not ask for it.
    const auto usage =
        nlohmann::json::parse(R"({"id":"up-1","model":"real-name","choices":[],"usage":{"total_tokens":5}})");
    EXPECT_EQ(sse.piece(Stream::Event{.kind = Stream::Event::Kind::piece, .upstream = usage}), "");
    EXPECT_EQ(sse.done(Generation{}), "data: [DONE]\n\n");
}
