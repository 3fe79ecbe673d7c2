// Chat templates on real models: stories260K re-written with a ChatML, a Llama-3 and Qwen2.5's
// template and their control tokens (`switchyard make-chat-model`), rendered by llama.cpp's Jinja
// engine, tokenized with special tokens parsed and one BOS, compared token for token with
// llama-server; tools (and tool calls read back) and response_format; a portfolio entry's
// normalization.
#include "engine/llama_engine.h"
#include "model/chat_fixture.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <optional>

using namespace switchyard;
using nlohmann::json;

namespace {

const json kMessages =
    json::parse(R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Once upon a time"}])");
const json kTools =
    json::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");

// stories260K has 512 tokens; the styles' control tokens follow, in order.
constexpr engine::Token kBos = 1, kImStart = 512, kImEnd = 513, kStartHeader = 512, kEndHeader = 513, kEotId = 514,
                        kToolCall = 514, kToolCallEnd = 515;

const std::string kCall =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";

class ChatFixture : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::ScratchDir;
        const auto base = test::model_path("stories260K-f32.gguf");
        // One through the CLI, as a user would write one; the other through the library.
        const auto r = test::run_switchyard(
            {"make-chat-model", base.string(), dir_->file("chatml.gguf").string(), "--style", "chatml"});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        EXPECT_NE(r.out.find("514 tokens (2 added: <|im_start|> <|im_end|>), chat template chatml"), std::string::npos)
            << r.out;
        for (const std::string style : {"llama3", "chatml-tools"})
            model::write_chat_model(base, model::find_chat_style(style), dir_->file(style + ".gguf"));
    }
    static void TearDownTestSuite() {
        delete dir_;
        dir_ = nullptr;
    }
    static std::filesystem::path model(const std::string & style) { return dir_->file(style + ".gguf"); }
    static engine::LlamaEngine load(const std::string & style, int context = 256) {
        return engine::LlamaEngine(
            {.model_path = model(style), .threads = 1, .context_length = context, .parallel = 1});
    }

    static std::vector<engine::Token> tokens(const engine::LlamaEngine & e, const std::string & text) {
        return e.tokenize(text, false);
    }

    static test::ScratchDir * dir_;
};

test::ScratchDir * ChatFixture::dir_ = nullptr;

std::vector<engine::Token> concat(std::initializer_list<std::vector<engine::Token>> parts) {
    std::vector<engine::Token> all;
    for (const auto & p : parts) all.insert(all.end(), p.begin(), p.end());
    return all;
}

}  // namespace

TEST_F(ChatFixture, ControlTokensAreSingleSpecialTokens) {
    const auto e = load("chatml");
    EXPECT_EQ(e.model().vocab_size, 514);
    EXPECT_EQ(e.tokenize("<|im_start|>", false, true), std::vector<engine::Token>{kImStart});
    EXPECT_EQ(e.tokenize("<|im_end|>", false, true), std::vector<engine::Token>{kImEnd});
    // Unparsed, the same text is ordinary characters: what chat prompts were tokenized as before.
    EXPECT_GT(e.tokenize("<|im_start|>", false, false).size(), 3u);
    EXPECT_FALSE(e.chat_template().empty());
    ASSERT_NE(e.chat(), nullptr);
    EXPECT_STREQ(engine::ChatTemplate::renderer(), "jinja");
}

TEST_F(ChatFixture, ChatMlRendersToExactTokenIds) {
    const auto e = load("chatml");
    const auto prompt = e.chat()->apply({.messages = kMessages});
    EXPECT_EQ(
        prompt.text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_TRUE(prompt.grammar.gbnf.empty());
    // One BOS (the vocabulary adds it), each control token one id, the text between as the
    // tokenizer splits it on its own.
    const auto expected = concat({{kBos, kImStart},
                                  tokens(e, "system\nBe brief."),
                                  {kImEnd},
                                  tokens(e, "\n"),
                                  {kImStart},
                                  tokens(e, "user\nOnce upon a time"),
                                  {kImEnd},
                                  tokens(e, "\n"),
                                  {kImStart},
                                  tokens(e, "assistant\n")});
    EXPECT_EQ(e.tokenize(prompt.text, true, true), expected);
    EXPECT_EQ(e.tokenize(prompt.text, true, true),
              (std::vector<engine::Token>{1,   512, 419, 422, 356, 411, 423, 13,  445, 411, 268, 325, 411,
                                          431, 426, 513, 13,  512, 425, 419, 285, 13,  441, 416, 331, 407,
                                          261, 378, 513, 13,  512, 412, 419, 419, 293, 413, 303, 413, 13}))
        << "what llama-server's /tokenize gives for this text (add_special, parse_special)";
}

TEST_F(ChatFixture, Llama3TemplateWritesBosOnce) {
    const auto e = load("llama3");
    const auto prompt = e.chat()->apply({.messages = kMessages});
    // The template starts with bos_token; llama.cpp drops it from the text since tokenizing adds it.
    EXPECT_EQ(
        prompt.text,
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "Once upon a time<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    const auto ids = e.tokenize(prompt.text, true, true);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), kBos), 1);
    const auto expected = concat({{kBos, kStartHeader},
                                  tokens(e, "system"),
                                  {kEndHeader},
                                  tokens(e, "\n\nBe brief."),
                                  {kEotId, kStartHeader},
                                  tokens(e, "user"),
                                  {kEndHeader},
                                  tokens(e, "\n\nOnce upon a time"),
                                  {kEotId, kStartHeader},
                                  tokens(e, "assistant"),
                                  {kEndHeader},
                                  tokens(e, "\n\n")});
    EXPECT_EQ(ids, expected);
}

TEST_F(ChatFixture, ToolsNeedATemplateThatTakesThem) {
    const auto e = load("chatml");
    EXPECT_FALSE(e.chat()->supports_tools());
    EXPECT_THROW(e.chat()->apply({.messages = kMessages, .tools = kTools}), engine::UnsupportedChat);
    // tool_choice "none": the tools are not offered, so nothing is lost.
    EXPECT_NO_THROW(e.chat()->apply({.messages = kMessages, .tools = kTools, .tool_choice = "none"}));
    // A schema becomes a grammar the sampler enforces, after the template's opening of the answer.
    const auto json_answer = e.chat()->apply({.messages = kMessages, .json_schema = json::object()});
    EXPECT_NE(json_answer.grammar.gbnf.find("root ::="), std::string::npos) << json_answer.grammar.gbnf;
    EXPECT_FALSE(json_answer.grammar.lazy);
    EXPECT_EQ(json_answer.grammar.prefill, "<|im_start|>assistant\n");

    const auto t = load("chatml-tools");
    ASSERT_TRUE(t.chat()->supports_tools());
    const auto with_tools = t.chat()->apply({.messages = kMessages, .tools = kTools});
    EXPECT_NE(with_tools.text.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""),
              std::string::npos)
        << with_tools.text;
    EXPECT_EQ(with_tools.text.substr(with_tools.text.size() - 22), "<|im_start|>assistant\n");
    EXPECT_FALSE(with_tools.grammar.gbnf.empty()) << "tool calls are constrained once the model opens one";
}

// A request that offered tools gets its answer read back as llama-server reads it (the parser
// llama.cpp built for the template's format): the calls out of the text, arguments as written.
TEST_F(ChatFixture, ToolCallsAreReadBackFromTheAnswer) {
    const auto e = load("chatml-tools");
    EXPECT_EQ(e.model().vocab_size, 516);
    EXPECT_EQ(e.chat()->apply({.messages = kMessages}).answer_parser, nullptr)
        << "no tools: the answer is the text as written";
    EXPECT_EQ(e.chat()->apply({.messages = kMessages, .tools = kTools, .tool_choice = "none"}).answer_parser, nullptr);
    const auto prompt = e.chat()->apply({.messages = kMessages, .tools = kTools});
    ASSERT_NE(prompt.answer_parser, nullptr);
    // The call tags are control tokens the answer writes as text.
    EXPECT_EQ(prompt.text_tokens, (std::vector<engine::Token>{kToolCall, kToolCallEnd}));

    const auto call = prompt.answer_parser->parse(kCall, true);
    EXPECT_EQ(call.content, "");
    ASSERT_EQ(call.tool_calls.size(), 1u);
    EXPECT_EQ(call.tool_calls[0].name, "get_weather");
    EXPECT_EQ(json::parse(call.tool_calls[0].arguments), (json{{"city", "Paris"}}));
    EXPECT_EQ(call.tool_calls[0].id, "") << "this format writes no ids (serve gives each call one)";

    const auto both = prompt.answer_parser->parse("Sure. " + kCall, true);
    EXPECT_EQ(both.content, "Sure. ");
    EXPECT_EQ(both.tool_calls.size(), 1u);
    const auto text = prompt.answer_parser->parse("Once upon a time", true);
    EXPECT_EQ(text.content, "Once upon a time");
    EXPECT_TRUE(text.tool_calls.empty());
}

// This model never chooses a call by itself (see ServeHoldsBackAToolsAnswer), so a grammar makes
// it write one: the tags come out as text only because the prompt names them text tokens, and
// what the model wrote reads back as the call.
TEST_F(ChatFixture, AGeneratedCallComesOutAsTextAndReadsBack) {
    auto e = load("chatml-tools", 1024);  // the tools make a prompt of 419 tokens, the call some 60 more
    const auto prompt = e.chat()->apply({.messages = kMessages, .tools = kTools, .tool_choice = "required"});
    EXPECT_FALSE(prompt.grammar.lazy) << "required: constrained from the first token";
    engine::GenerateRequest request{
        .prompt = prompt.text, .parse_special = true, .max_tokens = 128, .sampling = {.temperature = 0}};
    request.grammar.gbnf =
        R"(root ::= <tool_call> "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n" </tool_call>)";
    EXPECT_EQ(e.generate(std::span(&request, 1))[0].text,
              "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n")
        << "control tokens leave no text unless named";
    request.text_tokens = prompt.text_tokens;
    const auto result = e.generate(std::span(&request, 1))[0];
    EXPECT_EQ(result.text, kCall);
    EXPECT_EQ(result.finish, engine::FinishReason::eos);
    const auto answer = prompt.answer_parser->parse(result.text, true);
    ASSERT_EQ(answer.tool_calls.size(), 1u);
    EXPECT_EQ(answer.tool_calls[0].name, "get_weather");
    EXPECT_EQ(json::parse(answer.tool_calls[0].arguments), (json{{"city", "Paris"}}));
}

// llama-server from the same llama.cpp source renders the same text and feeds the same token ids.
TEST_F(ChatFixture, TokenIdsMatchLlamaServer) {
    if (!std::filesystem::exists(test::llama_server_binary()))
        GTEST_SKIP() << "llama-server was not built (see SWITCHYARD_REFERENCE_TOOLS)";
    for (const std::string style : {"chatml", "llama3", "chatml-tools"}) {
        SCOPED_TRACE(style);
        const auto e = load(style);
        const json tools = style == "chatml-tools" ? kTools : json();
        const auto ours = e.chat()->apply({.messages = kMessages, .tools = tools});
        const test::LlamaServer server(model(style), style, dir_->file(style + "-server.log"));
        httplib::Client client("127.0.0.1", server.port());
        json request = {{"messages", kMessages}};
        if (!tools.is_null()) request["tools"] = tools;
        const auto rendered = client.Post("/apply-template", request.dump(), "application/json");
        ASSERT_TRUE(rendered && rendered->status == 200) << (rendered ? rendered->body : "no answer");
        EXPECT_EQ(json::parse(rendered->body)["prompt"], ours.text);
        // What llama-server tokenizes a chat prompt with: add_special and parse_special.
        const auto tokenized = client.Post(
            "/tokenize", json{{"content", ours.text}, {"add_special", true}, {"parse_special", true}}.dump(),
            "application/json");
        ASSERT_TRUE(tokenized && tokenized->status == 200);
        const auto theirs = json::parse(tokenized->body)["tokens"].get<std::vector<engine::Token>>();
        EXPECT_EQ(e.tokenize(ours.text, true, true), theirs);
        // And a whole chat request: the same prompt length, the same greedy answer.
        request["max_tokens"] = 12;
        request["temperature"] = 0;
        const auto answer = client.Post("/v1/chat/completions", request.dump(), "application/json");
        ASSERT_TRUE(answer && answer->status == 200) << (answer ? answer->body : "no answer");
        EXPECT_EQ(json::parse(answer->body)["usage"]["prompt_tokens"], theirs.size());
    }
}

// `switchyard serve` with a templated model: the chat is the template's, and requests the template
// cannot take are the client's 400, never silently dropped.
TEST_F(ChatFixture, ServeChatsThroughTheTemplate) {
    test::ServerProcess server(SWITCHYARD_BINARY,
                               {"serve", "-m", model("chatml").string(), "--port", "0", "-t", "1", "-c", "256"});
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(std::chrono::seconds(60));
    const auto post = [&](json body) {
        body["messages"] = kMessages;
        body["temperature"] = 0;
        return client.Post("/v1/chat/completions", body.dump(), "application/json");
    };
    const auto e = load("chatml");
    const auto prompt_ids = e.tokenize(e.chat()->apply({.messages = kMessages}).text, true, true);

    const auto plain = post({{"max_tokens", 8}});
    ASSERT_TRUE(plain) << server.log();
    ASSERT_EQ(plain->status, 200) << plain->body;
    EXPECT_EQ(json::parse(plain->body)["usage"]["prompt_tokens"], prompt_ids.size());

    // The grammar allows a little whitespace, then an object must open (and, once finished, close).
    const auto as_json = post({{"max_tokens", 48}, {"response_format", {{"type", "json_object"}}}});
    ASSERT_TRUE(as_json);
    ASSERT_EQ(as_json->status, 200) << as_json->body;
    const std::string content = json::parse(as_json->body)["choices"][0]["message"]["content"];
    const auto first = content.find_first_not_of(" \t\n");
    ASSERT_NE(first, std::string::npos) << "only whitespace: '" << content << "'";
    EXPECT_EQ(content[first], '{') << content;
    if (json::parse(as_json->body)["choices"][0]["finish_reason"] == "stop") {
        EXPECT_TRUE(json::parse(content).is_object()) << content;
    }

    const auto with_tools = post({{"max_tokens", 8}, {"tools", kTools}});
    ASSERT_TRUE(with_tools);
    EXPECT_EQ(with_tools->status, 400) << with_tools->body;
    EXPECT_NE(with_tools->body.find("no place for tools"), std::string::npos) << with_tools->body;

    const auto named =
        post({{"tools", kTools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}});
    ASSERT_TRUE(named);
    EXPECT_EQ(named->status, 400);
    EXPECT_EQ(json::parse(named->body)["error"]["param"], "tool_choice");
}

// Where the template takes tools, they are rendered into the prompt the model sees.
TEST_F(ChatFixture, ServeRendersToolsWhereTheTemplateTakesThem) {
    test::ServerProcess server(SWITCHYARD_BINARY,
                               {"serve", "-m", model("chatml-tools").string(), "--port", "0", "-t", "1", "-c", "512"});
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(std::chrono::seconds(60));
    const json body = {{"messages", kMessages}, {"tools", kTools}, {"max_tokens", 8}, {"temperature", 0}};
    const auto r = client.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(r) << server.log();
    ASSERT_EQ(r->status, 200) << r->body;
    const auto e = load("chatml-tools");
    EXPECT_EQ(json::parse(r->body)["usage"]["prompt_tokens"],
              e.tokenize(e.chat()->apply({.messages = kMessages, .tools = kTools}).text, true, true).size());
}

// A tools request's answer is read back whole before anything goes out, so a call never reaches
// a streaming client as text. llama.cpp's "required" grammar lets text come before the call
// (`until <tool_call>`, then the calls), and this untrained model writes story text until
// max_tokens: the answer is that text, as the engine writes and reads it back, with no calls.
// (The calls' own shapes are checked on serve's pure core, test_serve.cpp.)
TEST_F(ChatFixture, ServeHoldsBackAToolsAnswer) {
    test::ServerProcess server(SWITCHYARD_BINARY,
                               {"serve", "-m", model("chatml-tools").string(), "--port", "0", "-t", "1", "-c", "512"});
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(std::chrono::seconds(60));
    json body = {{"messages", kMessages},
                 {"tools", kTools},
                 {"tool_choice", "required"},
                 {"max_tokens", 12},
                 {"temperature", 0}};

    auto e = load("chatml-tools", 512);
    const auto prompt = e.chat()->apply({.messages = kMessages, .tools = kTools, .tool_choice = "required"});
    engine::GenerateRequest request{.prompt = prompt.text,
                                    .parse_special = true,
                                    .max_tokens = 12,
                                    .sampling = {.temperature = 0},
                                    .stop = prompt.stop,
                                    .grammar = prompt.grammar,
                                    .text_tokens = prompt.text_tokens};
    const auto generated = e.generate(std::span(&request, 1))[0];
    ASSERT_EQ(generated.finish, engine::FinishReason::length);
    const std::string expected = prompt.answer_parser->parse(generated.text, false).content;
    ASSERT_FALSE(expected.empty());

    const auto whole = client.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(whole) << server.log();
    ASSERT_EQ(whole->status, 200) << whole->body;
    const json choice = json::parse(whole->body)["choices"][0];
    EXPECT_EQ(choice["finish_reason"], "length");
    EXPECT_EQ(choice["message"]["content"], expected);
    EXPECT_FALSE(choice["message"].contains("tool_calls"));

    body["stream"] = true;
    const auto streamed = client.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(streamed);
    ASSERT_EQ(streamed->status, 200) << streamed->body;
    std::vector<json> deltas;
    for (std::size_t at = 0; (at = streamed->body.find("data: {", at)) != std::string::npos; ++at)
        deltas.push_back(
            json::parse(streamed->body.substr(at + 6, streamed->body.find("\n\n", at) - at - 6))["choices"][0]);
    ASSERT_EQ(deltas.size(), 3u) << streamed->body;  // the role, the whole text in one piece, the finish
    EXPECT_EQ(deltas[0]["delta"]["role"], "assistant");
    EXPECT_EQ(deltas[1]["delta"], (json{{"content", expected}}));
    EXPECT_EQ(deltas[2]["finish_reason"], "length");
}

// A model without a template keeps the plain transcript: response_format constrains its answer
// with the schema's grammar (as llama-server does), while tools, which need a template, are refused.
TEST(ServeChat, ModelWithoutTemplateTakesSchemasNotTools) {
    test::ServerProcess server(
        SWITCHYARD_BINARY,
        {"serve", "-m", test::model_path("stories260K-f32.gguf").string(), "--port", "0", "-t", "1", "-c", "256"});
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(std::chrono::seconds(60));
    // Bounded strings and an enum, so that even a 260K-parameter model finishes the object within max_tokens.
    const json schema = json::parse(
        R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}, "mood": {"enum": ["happy", "sad"]}},
                                        "required": ["name", "mood"], "additionalProperties": false})");
    for (const json & format : {json{{"type", "json_schema"}, {"json_schema", {{"name", "hero"}, {"schema", schema}}}},
                                json{{"type", "json_object"}}}) {
        json body = {{"messages", kMessages}, {"max_tokens", 60}, {"temperature", 0}, {"response_format", format}};
        const auto r = client.Post("/v1/chat/completions", body.dump(), "application/json");
        ASSERT_TRUE(r) << server.log();
        ASSERT_EQ(r->status, 200) << r->body;
        const json choice = json::parse(r->body)["choices"][0];
        const std::string content = choice["message"]["content"];
        const auto first = content.find_first_not_of(" \t\n");
        ASSERT_NE(first, std::string::npos) << content;
        EXPECT_EQ(content[first], '{') << content;
        if (format["type"] == "json_schema") {
            ASSERT_EQ(choice["finish_reason"], "stop") << content;
            const json answer = json::parse(content);
            EXPECT_LE(answer["name"].get<std::string>().size(), 6u) << content;
            EXPECT_TRUE(answer["mood"] == "happy" || answer["mood"] == "sad") << content;
        }
    }
    json body = {{"messages", kMessages}, {"max_tokens", 4}, {"tools", kTools}};
    const auto r = client.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(json::parse(r->body)["error"]["message"], "this model has no chat template, so it cannot take 'tools'");
}

// babyllama has no newline: the plain transcript only encodes when the entry normalizes, as the
// plan that measured it did (its portfolio says `normalize: true`).
TEST(ServeChat, NormalizedEntryChatsWhereTheRawOneCannot) {
    test::ScratchDir dir;
    const auto baby = test::model_path("babyllama-0.9M-f32.gguf").string();
    test::write_file(dir.file("p.yaml"),
                     "models:\n  - {name: raw, path: " + baby +
                         ", context: 128, parallel: 1, threads: 1}\n"
                         "  - {name: normalized, path: " +
                         baby + ", context: 128, parallel: 1, threads: 1, normalize: true}\n");
    test::ServerProcess server(SWITCHYARD_BINARY, {"serve", "--portfolio", dir.file("p.yaml").string(), "--port", "0"});
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(std::chrono::seconds(60));
    const auto chat = [&](const std::string & model) {
        const json body = {{"model", model}, {"messages", kMessages}, {"max_tokens", 4}, {"temperature", 0}};
        return client.Post("/v1/chat/completions", body.dump(), "application/json");
    };
    const auto raw = chat("raw");
    ASSERT_TRUE(raw) << server.log();
    EXPECT_EQ(raw->status, 400);
    EXPECT_NE(raw->body.find("U+000A"), std::string::npos) << raw->body;
    const auto normalized = chat("normalized");
    ASSERT_TRUE(normalized);
    EXPECT_EQ(normalized->status, 200) << normalized->body;
}
