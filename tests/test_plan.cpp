// `switchyard plan` end to end on the shared models: variants built, the search, the four outputs,
// the report in a real browser, reuse of the results store, and bad plans.
#include "compress/prune.h"
#include "compress/quantize.h"
#include "decide/variants.h"
#include "model/model_info.h"
#include "model/portfolio.h"
#include "report/digest.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <chrono>
#include <map>
#include <regex>
#include <thread>

using namespace switchyard;

namespace {

const nlohmann::json * recommendation(const nlohmann::json & decision, const std::string & cls) {
    for (const auto & r : decision["recommendation"])
        if (r["class"] == cls) return &r;
    return nullptr;
}

}  // namespace

TEST(Plan, DecidesPerClassWritesEveryOutputAndReusesTheStore) {
    test::ScratchDir dir;
    test::write_file(dir.file("plan.yaml"), test::two_class_plan());
    const auto out = dir.file("out");
    const std::vector<std::string> args = {"plan",      dir.file("plan.yaml").string(),      "-o", out.string(),
                                           "--results", dir.file("results.sqlite").string(), "-t", "1"};
    const auto first = test::run_switchyard(args);
    ASSERT_EQ(first.exit_code, 0) << first.err;
    EXPECT_NE(first.out.find("warning: " + dir.file("plan.yaml").string() +
                             ":10: calibration.samples: 20 samples is outside 100-500"),
              std::string::npos)
        << first.out;

    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    const auto * stories = recommendation(decision, "stories");
    ASSERT_NE(stories, nullptr) << decision.dump(2);
    EXPECT_EQ((*stories)["action"], "switch");
    EXPECT_EQ((*stories)["model"], "stories260K");
    EXPECT_EQ((*stories)["rule"], "R1-capability");
    EXPECT_EQ((*stories)["backup"], "babyllama");
    const auto * grammar = recommendation(decision, "grammar");
    ASSERT_NE(grammar, nullptr);
    EXPECT_EQ((*grammar)["action"], "compress") << "a compression of babyllama serves grammar: " << grammar->dump();
    // stories260K is not measured for grammar, and the report says exactly why: without a price,
    // R7 ranks by bits per weight, and it (f32) has more than the compression that passes.
    for (const auto & c : decision["candidates"]) {
        if (c["name"] == "stories260K") {
            EXPECT_EQ(c["not_run"]["grammar"].get<std::string>().rfind("more bits per weight than " +
                                                                           (*grammar)["model"].get<std::string>() +
                                                                           ", which passes (bits per weight 32 vs ",
                                                                       0),
                      0u)
                << c.dump(2);
        }
    }
    // Every verdict names its rule; the variants were built with the calibration's imatrix.
    for (const auto & a : decision["assessments"])
        for (const auto & v : a["verdicts"]) EXPECT_TRUE(v["rule"].get<std::string>().rfind("R", 0) == 0) << v.dump();
    EXPECT_TRUE(std::filesystem::exists(out / "models" / "babyllama-Q4_0+imatrix.gguf"));
    EXPECT_TRUE(std::filesystem::exists(out / "models" / "babyllama.imatrix"));
    const auto & search = decision["search"];
    EXPECT_GT(search["suite_runs"].get<int>(), 0);
    EXPECT_LT(search["suite_runs"].get<int>(), search["suite_runs_possible"].get<int>())
        << "the search skips what it does not need";

    // The portfolio serves each class with its model and the backup as fallback.
    const auto portfolio = model::load_portfolio(out / "portfolio.yaml");
    const auto * route = portfolio.find_route("stories");
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->model, "stories260K");
    EXPECT_EQ(route->fallback, std::vector<std::string>{"babyllama"});
    EXPECT_EQ(portfolio.default_route, "grammar");
    EXPECT_TRUE(std::filesystem::exists(portfolio.find_model("stories260K")->path));
    // What the dashboard shows of a route: its class's verdict line, and the report one click away.
    EXPECT_EQ(route->note.rfind("stories: switch → stories260K (backup: babyllama) — ", 0), 0u) << route->note;
    EXPECT_LE(report::display_length(route->note), report::kVerdictMaxChars) << route->note;
    EXPECT_EQ(route->evidence, std::filesystem::absolute(out / "report.html").string());

    const auto md = test::read_file(out / "report.md");
    EXPECT_NE(md.find("switch → stories260K"), std::string::npos);
    const auto html = test::read_file(out / "report.html");
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("src=\"http"), std::string::npos) << "the page fetches nothing";

    // Every verdict line is read in one glance; the same lines head the terminal summary.
    for (const auto & cls : {"stories", "grammar"}) {
        const auto at = first.out.find(std::string(cls) + ": ");
        ASSERT_NE(at, std::string::npos) << first.out;
        const auto line = first.out.substr(at, first.out.find('\n', at) - at);
        EXPECT_LE(report::display_length(line), report::kVerdictMaxChars) << line;
        EXPECT_NE(html.find(line.substr(0, line.find('`'))), std::string::npos)
            << "the page shows the terminal's verdict: " << line;
    }
    EXPECT_NE(html.find("Perplexity change against task drop"), std::string::npos);

    // The page as a person sees it, in headless Chromium at 1400 and 420 px: verdicts and the
    // perplexity flag above the fold, no console message (tests/report-browser.mjs).
    if (std::system("command -v chromium > /dev/null 2>&1 && command -v node > /dev/null 2>&1") == 0) {
        const auto command = "node --experimental-websocket '" SWITCHYARD_SOURCE_DIR "/tests/report-browser.mjs' '" +
            (out / "report.html").string() + "' '" + dir.path().string() + "' chromium > '" +
            dir.file("browser.txt").string() + "' 2>&1";
        EXPECT_EQ(std::system(command.c_str()), 0) << test::read_file(dir.file("browser.txt"));
        EXPECT_TRUE(std::filesystem::exists(dir.file("report-420.png")));
    } else {
        ADD_FAILURE()
            << "chromium or node is not installed (scripts/test.sh installs them): the report was not opened in a browser";
    }

    // Second run: every measurement comes from the store and the variants from the folder.
    const auto second = test::run_switchyard(args);
    ASSERT_EQ(second.exit_code, 0) << second.err;
    const auto again = nlohmann::json::parse(test::read_file(out / "decision.json"));
    EXPECT_EQ(again["search"]["suite_runs"], 0);
    EXPECT_EQ(again["search"]["suite_runs_reused"],
              search["suite_runs"].get<int>() + search["suite_runs_reused"].get<int>());
    EXPECT_EQ(again["search"]["variants_built"], 0);
    EXPECT_EQ(again["recommendation"], decision["recommendation"]);

    // serve runs the portfolio as written: each class's traffic reaches the model the plan chose.
    test::ServerProcess server(SWITCHYARD_BINARY,
                               {"serve", "--portfolio", (out / "portfolio.yaml").string(), "--port", "0"});
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

    // serve runs each model as the plan measured it: prompts normalized (babyllama has no newline,
    // which the chat transcript holds) and the threads its latency was measured with.
    for (const auto & m : portfolio.models) {
        EXPECT_TRUE(m.normalize) << m.name;
        EXPECT_EQ(m.threads, 1) << m.name;
    }
    const auto chat = client.Post(
        "/v1/chat/completions",
        R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The cat"}], "max_tokens": 4, "temperature": 0})",
        "application/json");
    ASSERT_TRUE(chat);
    EXPECT_EQ(chat->status, 200) << chat->body;
    EXPECT_EQ(chat->get_header_value("X-Switchyard-Model"), (*grammar)["model"].get<std::string>());
}

// An alternative behind an OpenAI-compatible endpoint (here switchyard's own server) is measured
// through it: tasks by the server's log-probabilities, latency by timed requests, cost as declared.
TEST(Plan, AMemoryBudgetKeepsTheChosenModelsLoadedAndLoadsBackupsOnDemand) {
    test::ScratchDir dir;
    std::string plan = test::two_class_plan("  - {type: Q8_0}\n");
    const std::string policy = "policy:\n  accuracy_floor: 0.5\n";
    plan.replace(plan.find(policy), policy.size(), policy + "  budgets: {memory: 1G}\n");
    test::write_file(dir.file("plan.yaml"), plan);
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results",
                                         dir.file("r.sqlite").string(), "-t", "1", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto portfolio = model::load_portfolio(out / "portfolio.yaml");
    EXPECT_EQ(portfolio.server.memory_budget, 1ull << 30);
    const auto * stories = portfolio.find_route("stories");
    ASSERT_NE(stories, nullptr);
    ASSERT_EQ(stories->fallback, std::vector<std::string>{"babyllama"});
    // Each route's chosen model stays loaded (both fit 1G); the backup loads only when needed.
    for (const auto & route : portfolio.routes) {
        EXPECT_EQ(portfolio.find_model(route.model)->load, model::PortfolioModel::Load::always) << route.model;
        EXPECT_EQ(portfolio.find_model(route.model)->ttl_s, 0) << route.model;
    }
    EXPECT_EQ(portfolio.find_model("babyllama")->load, model::PortfolioModel::Load::on_demand);
    EXPECT_EQ(portfolio.find_model("babyllama")->ttl_s, 600);
    const auto yaml = test::read_file(out / "portfolio.yaml");
    EXPECT_NE(yaml.find("memory_budget: 1024MiB"), std::string::npos) << yaml;
    EXPECT_NE(yaml.find("load: on_demand"), std::string::npos) << yaml;
}

TEST(Plan, SwitchesToAServedAlternative) {
    test::ScratchDir dir;
    const auto data = test::data_dir();
    test::ServerProcess server(
        SWITCHYARD_BINARY,
        {"serve", "-m", (data / "models" / "stories260K-f32.gguf").string(), "--port", "0", "-t", "1"});
    test::write_file(
        dir.file("plan.yaml"),
        "base: {name: babyllama, path: " + (data / "models" / "babyllama-0.9M-f32.gguf").string() +
            "}\n"
            "alternatives:\n  - {name: served-stories, endpoint: \"http://127.0.0.1:" +
            std::to_string(server.port()) +
            "/v1\", cost_per_1k_tokens: 0.002}\n"
            "tasks:\n  - cloze: {text: " +
            (data / "data" / "tinystories-valid-head.txt").string() +
            ", items: 30, skip_passages: 1500}\n"
            "    name: story-cloze\n    critical: true\n    requires: context:1024\n"
            "normalize: true\npolicy: {accuracy_floor: 0.5, budgets: {memory: 1G}}\nspeed: {prompt_tokens: 16, generate_tokens: 4, repeats: 2}\n");
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results",
                                         dir.file("r.sqlite").string(), "-t", "1", "-q"});
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
    EXPECT_EQ(portfolio.find_model("served-stories")->endpoint,
              "http://127.0.0.1:" + std::to_string(server.port()) + "/v1");
}

TEST(Plan, BadPlansFailCleanly) {
    test::ScratchDir dir;
    test::write_file(dir.file("typo.yaml"), "base: m.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  acuracy_floor: 0.9\n");
    test::expect_clean_failure(
        test::run_switchyard({"plan", dir.file("typo.yaml").string(), "-o", dir.file("out").string()}),
        "typo.yaml:5: policy.acuracy_floor: unknown key");
    test::write_file(dir.file("t.jsonl"), "{\"good\": \"a b\", \"bad\": \"b a\"}\n");
    test::write_file(dir.file("nomodel.yaml"),
                     "base: " + dir.file("missing.gguf").string() + "\ntasks:\n  - spec: t.jsonl\n");
    test::expect_clean_failure(
        test::run_switchyard({"plan", dir.file("nomodel.yaml").string(), "-o", dir.file("out").string(), "--results",
                              dir.file("r.sqlite").string()}),
        "missing.gguf");
    test::expect_clean_failure(test::run_switchyard({"plan", dir.file("absent.yaml").string()}),
                               "absent.yaml: cannot open the plan");
    EXPECT_FALSE(std::filesystem::exists(dir.file("out") / "decision.json"));
}

// Defect 1: variants count as the same only when their tensor bytes are. A magnitude-pruned Q8_0
// has exactly the tensor types of a plain Q8_0 (what the old check compared) but other weights.
TEST(Plan, VariantsAreTheSameOnlyWithIdenticalTensorBytes) {
    test::ScratchDir dir;
    const auto base = test::model_path("babyllama-0.9M-f32.gguf");
    compress::quantize({.input = base, .output = dir.file("q8.gguf"), .type = "Q8_0", .threads = 2});
    compress::quantize({.input = base, .output = dir.file("q8-again.gguf"), .type = "Q8_0", .threads = 2});
    compress::prune(
        {.input = base, .output = dir.file("pruned-q8.gguf"), .sparsity = 0.5, .then_quantize = "Q8_0", .threads = 2});
    const auto types = [](const std::filesystem::path & p) {
        std::string out;
        for (const auto & t : model::inspect_gguf(p).tensors) out += t.name + "=" + t.type + ";";
        return out;
    };
    ASSERT_EQ(types(dir.file("q8.gguf")), types(dir.file("pruned-q8.gguf")));
    EXPECT_EQ(decide::tensor_data_hash(dir.file("q8.gguf")), decide::tensor_data_hash(dir.file("q8-again.gguf")));
    EXPECT_NE(decide::tensor_data_hash(dir.file("q8.gguf")), decide::tensor_data_hash(dir.file("pruned-q8.gguf")));
}

// The case the product exists for, end to end on the shared models: babyllama passes, its
// compressions drop more than 10% on the story cloze, and stories260K (smaller) stays within the
// limit: the plan measures it although the original passes, and switches (R3 ruled compression out).
// Unstructured and 2:4 pruning are ladders of their own: each is measured, neither cuts the other.
TEST(Plan, SwitchesWhenEveryVariantDropsTooMuch) {
    test::ScratchDir dir;
    const auto d = test::data_dir().string();
    test::write_file(
        dir.file("plan.yaml"),
        "base: {name: babyllama, path: " + d +
            "/models/babyllama-0.9M-f32.gguf}\n"
            "alternatives:\n  - {name: stories260K, path: " +
            d +
            "/models/stories260K-f32.gguf}\n"
            "variants:\n  - {prune: {method: magnitude, sparsity: 0.6}, type: Q8_0}\n  - {prune: {pattern: \"2:4\"}, type: Q8_0}\n"
            "normalize: true\n"
            "tasks:\n  - cloze: {text: " +
            d +
            "/data/tinystories-valid-head.txt, items: 200, skip_passages: 1500}\n"
            "    name: story-cloze\n    class: stories\n");
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results",
                                         dir.file("r.sqlite").string(), "-t", "1", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    const auto * stories = recommendation(decision, "stories");
    ASSERT_NE(stories, nullptr) << decision.dump(2);
    EXPECT_EQ((*stories)["action"], "switch") << stories->dump(2);
    EXPECT_EQ((*stories)["model"], "stories260K");
    EXPECT_EQ((*stories)["rule"], "R3-drop");
    EXPECT_EQ((*stories)["backup"], "babyllama");
    EXPECT_EQ((*stories)["flagged"], false);
    const auto reason = (*stories)["reason"].get<std::string>();
    EXPECT_NE(reason.find("no compression passes (magnitude-60pct+Q8_0: R3-drop: drop "), std::string::npos) << reason;
    EXPECT_NE(reason.find("; magnitude-2:4+Q8_0: R3-drop: drop "), std::string::npos) << reason;
    EXPECT_NE(reason.find("the drop is above max_drop 10.0% -> too compressed"), std::string::npos) << reason;
    EXPECT_NE(reason.find("stories260K passes: drop "), std::string::npos) << reason;
    EXPECT_NE(
        (*stories)["guarantee"].get<std::string>().find(
            "the chance that stories260K in fact drops more than 10.0% versus the original on some suite of `stories` is at most 0.05 (3 families"),
        std::string::npos)
        << stories->dump(2);
    // Every candidate was measured: two ladders of one rung and the alternative.
    std::map<std::string, nlohmann::json> by_name;
    for (const auto & c : decision["candidates"]) by_name[c["name"]] = c;
    EXPECT_EQ(by_name["magnitude-2:4+Q8_0"]["suites"].size(), 1u) << by_name["magnitude-2:4+Q8_0"].dump(2);
    EXPECT_EQ(by_name["magnitude-2:4+Q8_0"]["ladder"]["method"], "prune:magnitude/2:4+Q8_0");
    EXPECT_EQ(by_name["magnitude-60pct+Q8_0"]["ladder"]["method"], "prune:magnitude/unstructured+Q8_0");
    EXPECT_EQ(by_name["stories260K"]["suites"].size(), 1u);
    EXPECT_EQ(decision["search"]["suite_runs"], 4);
    EXPECT_EQ(decision["search"]["suite_runs_possible"], 4);
    EXPECT_NE(r.out.find("stories: switch → stories260K (backup: babyllama) — no compression passes; the "),
              std::string::npos)
        << r.out;
}

// A pruned Q8_0 keeps 8.5 bits per weight but is no milder than a Q6_K: when it fails, the Q6_K is
// still measured, and the plan compresses to it (the review's case, on two BLiMP suites).
TEST(Plan, APrunedVariantThatFailsDoesNotHideAMilderQuantization) {
    test::ScratchDir dir;
    const auto d = test::data_dir().string();
    test::write_file(dir.file("plan.yaml"),
                     "base: {name: babyllama, path: " + d +
                         "/models/babyllama-0.9M-f32.gguf}\n"
                         "variants:\n  - {prune: {method: magnitude, sparsity: 0.6}, type: Q8_0}\n  - {type: Q6_K}\n"
                         "normalize: true\n"
                         "tasks:\n  - spec: blimp:" +
                         d +
                         "/data/blimp/anaphor_gender_agreement.jsonl\n"
                         "  - spec: blimp:" +
                         d + "/data/blimp/determiner_noun_agreement_1.jsonl\n");
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results",
                                         dir.file("r.sqlite").string(), "-t", "1", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    const auto * general = recommendation(decision, "general");
    ASSERT_NE(general, nullptr) << decision.dump(2);
    EXPECT_EQ((*general)["action"], "compress") << general->dump(2);
    EXPECT_EQ((*general)["model"], "Q6_K");
    std::map<std::string, nlohmann::json> by_name;
    for (const auto & c : decision["candidates"]) by_name[c["name"]] = c;
    EXPECT_EQ(by_name["Q6_K"]["suites"].size(), 2u);
    bool pruned_failed = false;
    for (const auto & a : decision["assessments"])
        if (a["candidate"] == "magnitude-60pct+Q8_0") pruned_failed = a["outcome"] == "fail";
    EXPECT_TRUE(pruned_failed) << decision["assessments"].dump(2);
}

// Sequential tests read each suite in rounds and keep every round in the results store: a plan
// killed midway resumes from its last recorded round (nothing scored twice) and reaches the verdict
// of a plan that ran through, reading the same items.
TEST(Plan, AnInterruptedSequentialPlanResumesToTheSameVerdict) {
    test::ScratchDir dir;
    const auto d = test::data_dir().string();
    test::write_file(dir.file("plan.yaml"),
                     "base: {name: babyllama, path: " + d +
                         "/models/babyllama-0.9M-f32.gguf}\n"
                         "variants:\n  - {type: Q8_0, imatrix: false}\n  - {type: Q4_0, imatrix: false}\n"
                         "normalize: true\n"
                         "tasks:\n"
                         "  - spec: blimp:" +
                         d +
                         "/data/blimp/irregular_past_participle_verbs.jsonl\n"
                         "  - spec: blimp:" +
                         d + "/data/blimp/determiner_noun_agreement_1.jsonl\n");
    const auto plan = [&](const std::string & out, const std::string & store) {
        return std::vector<std::string>{"plan",      dir.file("plan.yaml").string(), "-o", dir.file(out).string(),
                                        "--results", dir.file(store).string(),       "-t", "1"};
    };
    const auto through = test::run_switchyard(plan("through", "through.sqlite"));
    ASSERT_EQ(through.exit_code, 0) << through.err;
    const auto expected = nlohmann::json::parse(test::read_file(dir.file("through") / "decision.json"));
    ASSERT_LT(expected["search"]["items_read"].get<std::size_t>(),
              expected["search"]["items_available"].get<std::size_t>())
        << "the suites stopped early";

    // Killed once a round is in the store, its suite not yet read through (a partial run with items).
    auto args = plan("killed", "resumed.sqlite");
    args.insert(args.begin(), SWITCHYARD_BINARY);
    int pid = test::spawn_logged(args, dir.file("killed.log"));
    bool begun = false;
    test::CommandResult listed;
    for (int i = 0; i < 1200 && !begun; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (!std::filesystem::exists(dir.file("resumed.sqlite"))) continue;
        listed = test::run_switchyard({"results", "--results", dir.file("resumed.sqlite").string(), "list"});
        static const std::regex partial_with_items(R"(partial .* [1-9][0-9]*/[0-9]+ )");
        begun = std::regex_search(listed.out, partial_with_items);
    }
    test::stop_group(pid, SIGKILL);
    ASSERT_TRUE(begun) << test::read_file(dir.file("killed.log")) << listed.out << listed.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("killed") / "decision.json"));

    const auto resumed = test::run_switchyard(plan("resumed", "resumed.sqlite"));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    const auto got = nlohmann::json::parse(test::read_file(dir.file("resumed") / "decision.json"));
    EXPECT_EQ(got["recommendation"], expected["recommendation"]);
    ASSERT_EQ(got["assessments"].size(), expected["assessments"].size());
    for (std::size_t i = 0; i < got["assessments"].size(); ++i) {
        EXPECT_EQ(got["assessments"][i]["outcome"], expected["assessments"][i]["outcome"]);
        EXPECT_EQ(got["assessments"][i]["verdicts"], expected["assessments"][i]["verdicts"]);
    }
    EXPECT_EQ(got["search"]["items_read"], expected["search"]["items_read"]);
    const auto reused = got["search"]["items_reused"].get<std::size_t>();
    EXPECT_GT(reused, 0u) << "the rounds recorded before the kill are read back";
    EXPECT_EQ(got["search"]["items_scored"].get<std::size_t>() + reused,
              expected["search"]["items_scored"].get<std::size_t>())
        << "nothing scored twice, nothing missing";

    // A later plan with a tighter limit reads the stored rounds back and scores only what its own
    // rules need beyond them, reaching the verdict a fresh store gives.
    test::write_file(dir.file("plan.yaml"), test::read_file(dir.file("plan.yaml")) + "policy: {max_drop: 0.03}\n");
    const auto tighter = test::run_switchyard(plan("tighter", "resumed.sqlite"));
    ASSERT_EQ(tighter.exit_code, 0) << tighter.err;
    const auto fresh = test::run_switchyard(plan("fresh", "fresh.sqlite"));
    ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
    const auto t = nlohmann::json::parse(test::read_file(dir.file("tighter") / "decision.json"));
    const auto f = nlohmann::json::parse(test::read_file(dir.file("fresh") / "decision.json"));
    EXPECT_EQ(t["recommendation"], f["recommendation"]);
    EXPECT_EQ(t["search"]["items_read"], f["search"]["items_read"]);
    EXPECT_GT(t["search"]["items_reused"].get<std::size_t>(), 0u);
    EXPECT_LT(t["search"]["items_scored"].get<std::size_t>(), f["search"]["items_scored"].get<std::size_t>());
}

TEST(Plan, CarriesAnAwqVariantToTheReport) {
    test::ScratchDir dir;
    const auto d = test::data_dir().string();
    test::write_file(dir.file("plan.yaml"),
                     "base: {name: babyllama, path: " + d +
                         "/models/babyllama-0.9M-f32.gguf}\n"
                         "variants:\n  - {type: Q4_0}\n  - {type: Q4_0, awq: true}\n"
                         "calibration:\n  files:\n    - " +
                         d +
                         "/data/tinystories-valid-head.txt\n  samples: 8\n"
                         "normalize: true\n"
                         "tasks:\n  - spec: blimp:" +
                         d + "/data/blimp/anaphor_gender_agreement.jsonl\n");
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results",
                                         dir.file("r.sqlite").string(), "-t", "2", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    const nlohmann::json * awq = nullptr;
    for (const auto & c : decision["candidates"])
        if (c["name"] == "Q4_0+AWQ") awq = &c;
    ASSERT_NE(awq, nullptr) << decision["candidates"].dump(2);
    const auto recipe = nlohmann::json::parse(test::read_file((*awq)["path"].get<std::string>() + ".recipe.json"));
    EXPECT_EQ(recipe["method"], "awq");
    EXPECT_NE(test::read_file(out / "report.md").find("Q4_0+AWQ"), std::string::npos);
}

// Issue #28's case: a team whose compressions fail its critical suite can keep the original's
// answers drafted by a smaller model of the same vocabulary, if that is measurably faster. The
// drafted original is timed and its answers checked, never scored; on these tiny CPU models a
// draft step costs about what a step of the original does, so the verdict states whichever is
// true, with the numbers. stories260K, another vocabulary, is a reason, not an error.
TEST(Plan, ADraftedOriginalIsTimedCheckedAndJudgedOnCost) {
    test::ScratchDir dir;
    const auto d = test::data_dir().string();
    const auto base = test::data_dir() / "models" / "babyllama-0.9M-f32.gguf";
    compress::quantize({.input = base, .output = dir.file("q8.gguf"), .type = "Q8_0", .threads = 2});
    test::write_file(
        dir.file("plan.yaml"),
        "base: {name: babyllama, path: " + base.string() +
            "}\n"
            "variants:\n  - {prune: {method: magnitude, sparsity: 0.6}, type: Q8_0, imatrix: false}\n"
            "normalize: true\n"
            "tasks:\n  - cloze: {text: " +
            d +
            "/data/tinystories-valid-head.txt, items: 200, skip_passages: 1500}\n"
            "    name: story-cloze\n    critical: true\n"
            "drafts: [q8.gguf, " +
            d +
            "/models/stories260K-f32.gguf]\n"
            "policy:\n  deployment: {price_per_hour: 0.1}\n"
            "speed: {prompt_tokens: 32, generate_tokens: 64}\n");
    const auto out = dir.file("out");
    const auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", out.string(), "--results",
                                         dir.file("r.sqlite").string(), "-t", "1", "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto decision = nlohmann::json::parse(test::read_file(out / "decision.json"));
    std::map<std::string, nlohmann::json> by_name;
    for (const auto & c : decision["candidates"]) by_name[c["name"]] = c;
    const auto & drafted = by_name["babyllama+draft=q8"];
    ASSERT_EQ(drafted["kind"], "drafted") << decision.dump(2);
    EXPECT_EQ(drafted["draft"]["max_tokens"], 8);
    // Never scored: its suite is the original's, and it spent no share of alpha.
    EXPECT_EQ(drafted["suites"][0]["accuracy"], by_name["babyllama"]["suites"][0]["accuracy"]);
    EXPECT_EQ(decision["search"]["suite_runs_possible"], 2);
    // Timed with its answers compared: every greedy answer the original's.
    const auto & draft = drafted["cost"]["draft"];
    ASSERT_TRUE(draft.is_object()) << drafted.dump(2);
    EXPECT_GE(draft["answers_compared"].get<int>(), 12);
    EXPECT_EQ(draft["answers_identical"], draft["answers_compared"]) << draft["first_difference"];
    EXPECT_GT(draft["drafted_tokens"].get<int>(), 0);
    EXPECT_GT(draft["acceptance"].get<double>(), 0.5) << "a Q8_0 of the same weights mostly agrees";
    EXPECT_LE(draft["acceptance"].get<double>(), 1.0);
    const auto & assessments = decision["assessments"];
    const auto same = std::find_if(assessments.begin(), assessments.end(), [](const nlohmann::json & a) {
        return a["candidate"] == "babyllama+draft=q8";
    });
    ASSERT_NE(same, assessments.end());
    EXPECT_NE(same->dump().find("no drop: the original's answers (drafted by q8: greedy answers identical on"),
              std::string::npos)
        << same->dump(2);

    const auto * critical = recommendation(decision, "critical");
    ASSERT_NE(critical, nullptr);
    const double faster_lo = draft["query_speedup_ci95"][0].get<double>();
    const double faster_hi = draft["query_speedup_ci95"][1].get<double>();
    if ((*critical)["model"] == "babyllama+draft=q8") {
        // Measurably cheaper than the original alone: a speed-up outside the 10% band.
        EXPECT_GT(faster_lo, 1.1);
        EXPECT_EQ((*critical)["action"], "keep");
        EXPECT_EQ((*critical)["draft"], "q8");
        EXPECT_NE(r.out.find("critical: keep babyllama, drafted by q8 (backup: babyllama) — "), std::string::npos)
            << r.out;
        const auto portfolio = test::read_file(out / "portfolio.yaml");
        EXPECT_NE(portfolio.find("draft: q8"), std::string::npos) << portfolio;
    } else {
        // Not measurably faster: the original stays (its compression failed the critical suite), and
        // the drafted original's line says what its draft did, from its measurement.
        EXPECT_EQ((*critical)["model"], "babyllama") << critical->dump(2);
        EXPECT_EQ((*critical)["action"], "keep");
        EXPECT_LE(faster_lo, 1.1) << "R7 chooses it when measurably cheaper, up to " << faster_hi << "x faster";
        const std::regex line(
            "babyllama\\+draft=q8: passes, [^\\n]*\\(drafted: [0-9.]+× decode, acceptance [0-9]+%, [0-9.]+× per query \\[[0-9.]+, [0-9.]+\\]\\)");
        EXPECT_TRUE(std::regex_search(r.out, line)) << r.out;
    }
    EXPECT_NE(r.out.find("babyllama+draft=stories260K-f32: stories260K-f32 cannot draft for babyllama: the "
                         "vocabularies differ: 105 tokens against 512"),
              std::string::npos)
        << r.out;
}
