// `switchyard plan` end to end on the shared models: variants built, the search, the four outputs,
// the report in a real browser, reuse of the results store, and bad plans.
#include "model/portfolio.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>

using namespace switchyard;

namespace {

// Two classes: `stories` needs a 1024-token context, which babyllama (128) lacks, so only a switch
// can serve it (R1); `grammar` can be served by a compression of babyllama.
std::string test_plan(const std::filesystem::path & data) {
    const auto d = data.string();
    return "base: {name: babyllama, path: " + d + "/models/babyllama-0.9M-f32.gguf}\n"
           "alternatives:\n  - {name: stories260K, path: " + d + "/models/stories260K-f32.gguf}\n"
           "variants:\n  - {type: Q8_0}\n  - {type: Q4_0}\n"
           "calibration:\n  files:\n    - " + d + "/data/tinystories-valid-head.txt\n  samples: 20\n"
           "normalize: true\n"
           "tasks:\n"
           "  - spec: blimp:" + d + "/data/blimp/irregular_past_participle_verbs.jsonl\n    class: grammar\n"
           "  - cloze: {text: " + d + "/data/tinystories-valid-head.txt, items: 60, skip_passages: 1500}\n"
           "    name: story-cloze\n    class: stories\n    critical: true\n    requires: context:1024\n"
           "policy:\n  accuracy_floor: 0.5\n  deployment: {price_per_hour: 0.1}\n"
           "speed: {prompt_tokens: 32, generate_tokens: 8, repeats: 1}\n";
}

const nlohmann::json * recommendation(const nlohmann::json & decision, const std::string & cls) {
    for (const auto & r : decision["recommendation"])
        if (r["class"] == cls) return &r;
    return nullptr;
}

}  // namespace

TEST(Plan, DecidesPerClassWritesEveryOutputAndReusesTheStore) {
    test::ScratchDir dir;
    test::write_file(dir.file("plan.yaml"), test_plan(test::data_dir()));
    const auto out = dir.file("out");
    const std::vector<std::string> args = {"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results", dir.file("results.sqlite").string(), "-t", "1"};
    const auto first = test::run_switchyard(args);
    ASSERT_EQ(first.exit_code, 0) << first.err;

    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    const auto * stories = recommendation(decision, "stories");
    ASSERT_NE(stories, nullptr) << decision.dump(2);
    EXPECT_EQ((*stories)["action"], "switch");
    EXPECT_EQ((*stories)["model"], "stories260K");
    EXPECT_EQ((*stories)["rule"], "R1-capability");
    EXPECT_EQ((*stories)["backup"], "babyllama");
    const auto * grammar = recommendation(decision, "grammar");
    ASSERT_NE(grammar, nullptr);
    EXPECT_NE((*grammar)["action"], "switch") << "a compression of babyllama (or babyllama) serves grammar: " << grammar->dump();
    // Every verdict names its rule; the variants were built with the calibration's imatrix.
    for (const auto & a : decision["assessments"])
        for (const auto & v : a["verdicts"]) EXPECT_TRUE(v["rule"].get<std::string>().rfind("R", 0) == 0) << v.dump();
    EXPECT_TRUE(std::filesystem::exists(out / "models" / "babyllama-Q4_0+imatrix.gguf"));
    EXPECT_TRUE(std::filesystem::exists(out / "models" / "babyllama.imatrix"));
    const auto & search = decision["search"];
    EXPECT_GT(search["suite_runs"].get<int>(), 0);
    EXPECT_LT(search["suite_runs"].get<int>(), search["suite_runs_possible"].get<int>()) << "the search skips what it does not need";

    // The portfolio serves each class with its model and the backup as fallback.
    const auto portfolio = model::load_portfolio(out / "portfolio.yaml");
    const auto * route = portfolio.find_route("stories");
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->model, "stories260K");
    EXPECT_EQ(route->fallback, std::vector<std::string>{"babyllama"});
    EXPECT_EQ(portfolio.default_route, "grammar");
    EXPECT_TRUE(std::filesystem::exists(portfolio.find_model("stories260K")->path));

    const auto md = test::read_file(out / "report.md");
    EXPECT_NE(md.find("switch → stories260K"), std::string::npos);
    const auto html = test::read_file(out / "report.html");
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("src=\"http"), std::string::npos) << "the page fetches nothing";

    // The page opens in headless Chromium with no console message and shows the verdict.
    if (std::system("command -v chromium > /dev/null 2>&1") == 0) {
        const auto command = "chromium --headless --disable-gpu --no-sandbox --enable-logging=stderr --v=0 --dump-dom 'file://" + (out / "report.html").string() +
                             "' > '" + dir.file("dom.html").string() + "' 2> '" + dir.file("console.txt").string() + "'";
        ASSERT_EQ(std::system(command.c_str()), 0) << test::read_file(dir.file("console.txt"));
        const auto dom = test::read_file(dir.file("dom.html"));
        EXPECT_NE(dom.find("switch → stories260K"), std::string::npos);
        EXPECT_NE(dom.find("Accuracy against size"), std::string::npos);
        const auto console = test::read_file(dir.file("console.txt"));
        EXPECT_EQ(console.find(":CONSOLE"), std::string::npos) << console;
    } else {
        ADD_FAILURE() << "chromium is not installed (scripts/test.sh installs it): the report was not opened in a browser";
    }

    // Second run: every measurement comes from the store and the variants from the folder.
    const auto second = test::run_switchyard(args);
    ASSERT_EQ(second.exit_code, 0) << second.err;
    const auto again = nlohmann::json::parse(test::read_file(out / "decision.json"));
    EXPECT_EQ(again["search"]["suite_runs"], 0);
    EXPECT_EQ(again["search"]["suite_runs_reused"], search["suite_runs"].get<int>() + search["suite_runs_reused"].get<int>());
    EXPECT_EQ(again["search"]["variants_built"], 0);
    EXPECT_EQ(again["recommendation"], decision["recommendation"]);

    // serve runs the portfolio as written: each class's traffic reaches the model the plan chose.
    test::ServerProcess server(SWITCHYARD_BINARY, {"serve", "--portfolio", (out / "portfolio.yaml").string(), "--port", "0"});
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(std::chrono::seconds(60));
    const std::string body = R"({"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0})";
    const auto answer = client.Post("/v1/completions", {{"X-Switchyard-Task", "stories"}}, body, "application/json");
    ASSERT_TRUE(answer) << server.log();
    EXPECT_EQ(answer->status, 200) << answer->body;
    EXPECT_EQ(answer->get_header_value("X-Switchyard-Model"), "stories260K");
    const auto by_default = client.Post("/v1/completions", body, "application/json");
    ASSERT_TRUE(by_default);
    EXPECT_EQ(by_default->get_header_value("X-Switchyard-Model"), (*grammar)["model"].get<std::string>());
}

// An alternative behind an OpenAI-compatible endpoint (here switchyard's own server) is measured
// through it: tasks by the server's log-probabilities, latency by timed requests, cost as declared.
TEST(Plan, SwitchesToAServedAlternative) {
    test::ScratchDir dir;
    const auto data = test::data_dir();
    test::ServerProcess server(SWITCHYARD_BINARY, {"serve", "-m", (data / "models" / "stories260K-f32.gguf").string(), "--port", "0", "-t", "1"});
    test::write_file(dir.file("plan.yaml"),
                     "base: {name: babyllama, path: " + (data / "models" / "babyllama-0.9M-f32.gguf").string() + "}\n"
                     "alternatives:\n  - {name: served-stories, endpoint: \"http://127.0.0.1:" + std::to_string(server.port()) + "/v1\", cost_per_1k_tokens: 0.002}\n"
                     "tasks:\n  - cloze: {text: " + (data / "data" / "tinystories-valid-head.txt").string() + ", items: 30, skip_passages: 1500}\n"
                     "    name: story-cloze\n    critical: true\n    requires: context:1024\n"
                     "normalize: true\npolicy: {accuracy_floor: 0.5, budgets: {memory: 1G}}\nspeed: {prompt_tokens: 16, generate_tokens: 4, repeats: 2}\n");
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results", dir.file("r.sqlite").string(), "-t", "1", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err << server.log();
    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    const auto * critical = recommendation(decision, "critical");
    ASSERT_NE(critical, nullptr) << decision.dump(2);
    EXPECT_EQ((*critical)["action"], "switch");
    EXPECT_EQ((*critical)["model"], "served-stories");
    EXPECT_EQ((*critical)["rule"], "R1-capability");
    const auto & served = decision["candidates"][1];
    EXPECT_EQ(served["endpoint"]["model"], "stories260K-f32");
    EXPECT_GT(served["cost"]["p95_latency_ms"].get<double>(), 0);
    EXPECT_EQ(served["suites"][0]["n"], 30);
    const auto portfolio = model::load_portfolio(out / "portfolio.yaml");
    ASSERT_NE(portfolio.find_model("served-stories"), nullptr);
    EXPECT_EQ(portfolio.find_model("served-stories")->endpoint, "http://127.0.0.1:" + std::to_string(server.port()) + "/v1");
}

TEST(Plan, BadPlansFailCleanly) {
    test::ScratchDir dir;
    test::write_file(dir.file("typo.yaml"), "base: m.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  acuracy_floor: 0.9\n");
    test::expect_clean_failure(test::run_switchyard({"plan", dir.file("typo.yaml").string(), "-o", dir.file("out").string()}),
                               "typo.yaml:5: policy.acuracy_floor: unknown key");
    test::write_file(dir.file("t.jsonl"), "{\"good\": \"a b\", \"bad\": \"b a\"}\n");
    test::write_file(dir.file("nomodel.yaml"), "base: " + dir.file("missing.gguf").string() + "\ntasks:\n  - spec: t.jsonl\n");
    test::expect_clean_failure(test::run_switchyard({"plan", dir.file("nomodel.yaml").string(), "-o", dir.file("out").string(), "--results",
                                                     dir.file("r.sqlite").string()}),
                               "missing.gguf");
    test::expect_clean_failure(test::run_switchyard({"plan", dir.file("absent.yaml").string()}), "absent.yaml: cannot open the plan");
    EXPECT_FALSE(std::filesystem::exists(dir.file("out") / "decision.json"));
}
