// The closed loop on the shared models: traffic served with capture on becomes suites, a plan
// decides on them, and serve shadows the plan's choice on fresh traffic, then promotes it; and the
// roll-out's pure core.
#include "eval/captured_suite.h"
#include "eval/run_suite.h"
#include "eval/suite.h"
#include "engine/llama_engine.h"
#include "model/portfolio.h"
#include "serve/rollout.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

using namespace switchyard;
using nlohmann::json;

namespace {

const char * const kNames[] = {"Tim", "Lily", "Ben", "Sue", "Max", "Anna", "Tom", "Mia"};
const char * const kThings[] = {"a red ball",  "a big dog",   "a small cat", "a toy car",
                                "a blue bird", "a tall tree", "a warm cake", "a shiny box"};
const char * const kPlaces[] = {"the park", "the garden", "the house", "the sea", "the forest"};

// A story opening for the default route; a question for the "qa" route (its rule: "^Q:").
std::string story(int i) {
    return std::string("Once upon a time ") + kNames[i % 8] + " found " + kThings[(i / 8) % 8] + " in " +
        kPlaces[(i / 64) % 5];
}
std::string question(int i) {
    return std::string("Q: where did ") + kNames[i % 8] + " see " + kThings[(i / 8) % 8] + " near " +
        kPlaces[(i / 64) % 5] + "?";
}

// `count` requests on `threads` connections; returns the ids of the answers, in request order.
std::vector<std::string> send(int port, int first, int count, const std::function<json(int)> & body_of,
                              const std::string & path) {
    std::vector<std::string> ids(static_cast<std::size_t>(count));
    std::atomic<int> next{0}, failures{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < 6; ++t) {
        pool.emplace_back([&] {
            httplib::Client c("127.0.0.1", port);
            c.set_read_timeout(std::chrono::seconds(60));
            for (int k; (k = next++) < count;) {
                const auto res = c.Post(path.c_str(), body_of(first + k).dump(), "application/json");
                if (!res || res->status != 200) {
                    ++failures;
                    continue;
                }
                ids[static_cast<std::size_t>(k)] = json::parse(res->body)["id"];
            }
        });
    }
    for (auto & t : pool) t.join();
    EXPECT_EQ(failures.load(), 0);
    return ids;
}

json story_request(int i) { return {{"prompt", story(i)}, {"max_tokens", 6}, {"temperature", 0}}; }
json question_request(int i) {
    return {{"messages", {{{"role", "user"}, {"content", question(i)}}}}, {"max_tokens", 6}, {"temperature", 0}};
}

}  // namespace

TEST(ClosedLoop, CapturedTrafficBecomesSuitesAPlanAndAPromotedShadow) {
    test::ScratchDir dir;
    const auto baby = test::model_path("babyllama-0.9M-f32.gguf").string();
    // babyllama's vocabulary is 105 symbols: served (and planned) with prompts normalized.
    test::write_file(dir.file("portfolio.yaml"),
                     "models:\n  - {name: babyllama, path: " + baby +
                         ", context: 256, parallel: 4, threads: 1, normalize: true}\n"
                         "routes:\n"
                         "  - {name: stories, model: babyllama, capture: {sample: 1}}\n"
                         "  - {name: qa, model: babyllama, capture: {sample: 1}}\n"
                         "rules:\n  - {route: qa, regex: \"^Q:\"}\n"
                         "default_route: stories\n"
                         "server: {admin_model_dirs: [" +
                         dir.file("plan").string() + "]}\n");
    test::ServerProcess serve(SWITCHYARD_BINARY,
                              {"serve", "--portfolio", dir.file("portfolio.yaml").string(), "--port", "0"},
                              {"SWITCHYARD_ADMIN_TOKEN=sekrit"});
    httplib::Client client("127.0.0.1", serve.port());
    client.set_read_timeout(std::chrono::seconds(120));
    const auto post = [&](const std::string & path, const json & body, const httplib::Headers & headers = {}) {
        return client.Post(path.c_str(), headers, body.dump(), "application/json");
    };

    // 500 requests of two classes: stories as completions, questions as chats (routed by the rule).
    send(serve.port(), 0, 250, story_request, "/v1/completions");
    const auto qa_ids = send(serve.port(), 0, 250, question_request, "/v1/chat/completions");
    // Feedback on some questions: 20 confirmed, 5 corrected to an answer no model gives.
    for (int i = 0; i < 25; ++i) {
        const json label = i < 20
            ? json{{"id", qa_ids[i]}, {"correct", true}}
            : json{{"id", qa_ids[i]}, {"correct", false}, {"expected", "in the attic of the moon"}};
        ASSERT_EQ(post("/v1/feedback", label)->status, 200);
    }
    json stats = json::parse(client.Get("/stats")->body);
    EXPECT_EQ(stats["capture"]["stories"]["stored"], 250);
    EXPECT_EQ(stats["capture"]["qa"]["stored"], 250);
    for (const auto & r : stats["portfolio"]["routes"])
        EXPECT_EQ(r["capture"]["sample"], 1.0) << r;  // what the dashboard's Capture table shows
    EXPECT_NE(client.Get("/")->body.find("<table id=\"capture\">"), std::string::npos);

    // The suites: labelled answers are ground truth, the rest consistency with the incumbent.
    const auto built =
        test::run_switchyard({"tasks", "capture", "--route", "qa", "--since", "1h", "--db",
                              dir.file("captures.sqlite").string(), "-o", dir.file("qa.jsonl").string()});
    ASSERT_EQ(built.exit_code, 0) << built.err;
    EXPECT_NE(built.out.find("250 items of route qa (25 labelled -> generation, 225 unlabelled -> consistency"),
              std::string::npos)
        << built.out;
    const auto qa = eval::load_suite(dir.file("qa.jsonl").string());
    ASSERT_EQ(qa.items.size(), 250u);
    EXPECT_EQ(qa.settings.name, "capture-qa");
    // Items come in the order their answers were captured, not the order they were sent.
    std::size_t generation = 0, corrected = 0;
    for (const auto & item : qa.items) {
        generation += item.kind == eval::ItemKind::generation;
        corrected += item.expected == "in the attic of the moon";
        if (item.kind == eval::ItemKind::consistency) {
            EXPECT_NE(item.messages.find("Q: where did"), std::string::npos) << item.messages;
            EXPECT_FALSE(item.reference.empty());
        }
    }
    EXPECT_EQ(generation, 25u);
    EXPECT_EQ(corrected, 5u);
    // The incumbent reproduces its own greedy answers, and finds them likely.
    engine::LlamaEngine incumbent({.model_path = baby, .threads = 1, .context_length = 256, .parallel = 4});
    const auto own = eval::run_suite(incumbent, qa, {.normalize = true, .progress = false});
    EXPECT_GE(own.accuracy(), 0.9) << own.correct << "/" << own.scored;
    ASSERT_TRUE(own.mean_reference_logprob.has_value());
    EXPECT_GT(*own.mean_reference_logprob, -1.0);

    // A plan on the captured traffic: one class per route.
    test::write_file(dir.file("plan.yaml"),
                     "base: {name: babyllama, path: " + baby +
                         "}\n"
                         "variants: [{type: Q8_0, imatrix: false}]\n"
                         "normalize: true\n"
                         "tasks:\n  - capture: {route: stories, since: 1h}\n  - capture: {route: qa, since: 1h}\n"
                         "speed: {prompt_tokens: 16, generate_tokens: 8, repeats: 1}\n"
                         // Q8_0 of a 0.9M-parameter model changes about 8% of its 6-token greedy answers:
                         // this team tolerates up to 25% changed answers.
                         "policy: {max_drop: 0.25}\n");
    const auto planned = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", dir.file("plan").string(),
                                               "--results", dir.file("results.sqlite").string(), "-t", "1"});
    ASSERT_EQ(planned.exit_code, 0) << planned.err << planned.out;
    const json decision = json::parse(test::read_file(dir.file("plan/decision.json")));
    json qa_decision;
    for (const auto & d : decision["recommendation"])
        if (d["class"] == "qa") qa_decision = d;
    ASSERT_FALSE(qa_decision.is_null()) << decision.dump(1);
    ASSERT_EQ(qa_decision["action"], "compress") << qa_decision.dump();
    const std::string candidate = qa_decision["model"];
    const std::string report = test::read_file(dir.file("plan/report.md"));
    EXPECT_NE(report.find("capture-qa"), std::string::npos);

    // Roll the plan's choice for "qa" out as a shadow; a bad request says what is wrong.
    const httplib::Headers admin{{"Authorization", "Bearer sekrit"}};
    EXPECT_EQ(post("/admin/rollout", {{"plan", "plan"}, {"class", "qa"}}, {})->status, 401);
    EXPECT_EQ(post("/admin/rollout", {{"plan", "plan"}, {"class", "nope"}}, admin)->status, 400);
    EXPECT_EQ(post("/admin/rollout", {{"plan", "plan"}, {"class", "qa"}, {"promote_at", 2}}, admin)->status, 400);
    auto res = post(
        "/admin/rollout",
        {{"plan", "plan"}, {"class", "qa"}, {"min_samples", 30}, {"promote_at", 0.8}, {"rollback_below", 0.3}}, admin);
    ASSERT_EQ(res->status, 200) << res->body;
    json rollout = json::parse(res->body);
    EXPECT_EQ(rollout["candidate"], candidate);
    EXPECT_EQ(rollout["incumbent"], "babyllama");
    EXPECT_NE(rollout["decision"].get<std::string>().find("compress"), std::string::npos);
    EXPECT_EQ(post("/admin/rollout", {{"plan", "plan"}, {"class", "qa"}}, admin)->status,
              200);  // again: the same shadow, restarted

    // Fresh questions until the shadow's agreement promotes the candidate.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
    int sent = 250;
    json qa_route;
    while (std::chrono::steady_clock::now() < deadline) {
        send(serve.port(), sent, 20, question_request, "/v1/chat/completions");
        sent += 20;
        stats = json::parse(client.Get("/stats")->body);
        for (const auto & r : stats["portfolio"]["routes"])
            if (r["name"] == "qa") qa_route = r;
        if (qa_route["model"] == candidate) break;
    }
    ASSERT_EQ(qa_route["model"], candidate) << stats.dump(1);
    EXPECT_EQ(qa_route["fallback"], json::array({"babyllama"}));
    const json shadow = stats["shadows"]["qa"];
    EXPECT_EQ(shadow["state"], "promoted");
    EXPECT_GE(shadow["samples"].get<int>(), 30);
    EXPECT_GE(shadow["token_agreement"].get<double>(), 0.8);
    EXPECT_NE(qa_route["note"].get<std::string>().find("promoted from shadow: token agreement"), std::string::npos)
        << qa_route;
    EXPECT_NE(qa_route["note"].get<std::string>().find("plan: qa: compress → "), std::string::npos)
        << qa_route;  // the verdict line
    EXPECT_EQ(qa_route["evidence"],
              std::filesystem::absolute(dir.file("plan/report.html")).lexically_normal().string());
    std::printf(
        "closed loop: %d requests; qa: %s; shadow %s over %d mirrored requests, token agreement %.3f, exact %.3f\n",
        sent + 250, qa_decision["reason"].get<std::string>().substr(0, 160).c_str(),
        shadow["state"].get<std::string>().c_str(), shadow["samples"].get<int>(),
        shadow["token_agreement"].get<double>(), shadow["exact_match"].get<double>());
    const auto evidence = client.Get("/evidence?route=qa");
    ASSERT_EQ(evidence->status, 200);
    EXPECT_NE(evidence->body.find("capture-qa"), std::string::npos);
    EXPECT_EQ(client.Get("/evidence?route=stories")->status, 404);
    // The stories route was not touched.
    for (const auto & r : stats["portfolio"]["routes"]) {
        if (r["name"] == "stories") {
            EXPECT_EQ(r["model"], "babyllama");
        }
    }
}

TEST(ClosedLoop, SinceAcceptsAgesAndDatesOnly) {
    EXPECT_EQ(eval::parse_since("7d", 1'000'000, "x"), 1'000'000 - 7 * 86400);
    EXPECT_EQ(eval::parse_since("1.5h", 10'000, "x"), 10'000 - 5400);
    EXPECT_EQ(eval::parse_since("2026-11-01", 0, "x"), 1793491200);
    EXPECT_EQ(eval::parse_since("2026-11-01T08:00:00Z", 0, "x"), 1793491200 + 8 * 3600);
    EXPECT_EQ(eval::parse_since("2028-02-29", 0, "x"), 1835395200);
    for (const char * bad :
         {"", "7", "d", "-1d", "2026-13-01", "2026-11-01T08:00", "yesterday", "2026-02-31", "2026-02-29", "2026-04-31",
          "2026-11-01T24:00:00Z", "2026-11-01T08:60:00Z", "2026-11-01x", "2026-11-1"})
        EXPECT_THROW(eval::parse_since(bad, 0, "x"), Error) << bad;
}

TEST(ClosedLoop, AnEmptyWindowSaysSo) {
    test::ScratchDir dir;
    EXPECT_THROW(eval::build_capture_suite({.db = dir.file("none.sqlite"), .route = "r"}), Error);
    const auto r = test::run_switchyard({"tasks", "capture", "--route", "qa", "--db", dir.file("none.sqlite").string(),
                                         "-o", dir.file("x.jsonl").string()});
    test::expect_clean_failure(r, "no capture database");
    EXPECT_FALSE(std::filesystem::exists(dir.file("x.jsonl")));
}

TEST(Rollout, ShadowsTheClassRouteAndRefusesWhatCannotBe) {
    const auto live = model::parse_portfolio(
        "models:\n  - {name: base, path: /m/base.gguf}\n  - {name: small, path: /m/small.gguf}\n"
        "routes:\n  - {name: qa, model: base}\n  - {name: both, cascade: {models: [small, base]}}\n",
        "live.yaml", "/");
    serve::Recommendation rec{.task_class = "qa",
                              .model = {.name = "base-q8", .path = "/plan/base-q8.gguf"},
                              .decision = "compress (R7): ...",
                              .evidence = "/plan/report.html"};
    const auto next = serve::with_rollout(
        live, "qa", rec, {.model = {}, .sample = 0.5, .promote_at = 0.9, .rollback_below = 0.5, .min_samples = 20});
    ASSERT_NE(next.find_model("base-q8"), nullptr);
    const auto & shadow = next.find_route("qa")->shadow;
    ASSERT_TRUE(shadow.has_value());
    EXPECT_EQ(shadow->model, "base-q8");
    EXPECT_EQ(shadow->min_samples, 20);
    EXPECT_EQ(shadow->decision, "compress (R7): ...");
    EXPECT_EQ(shadow->evidence, "/plan/report.html");
    EXPECT_EQ(next.find_route("qa")->model, "base");  // the incumbent serves until promotion
    // Written and read back, the portfolio keeps the evidence.
    const auto again = model::parse_portfolio(model::portfolio_to_yaml(next, "/"), "again.yaml", "/");
    EXPECT_EQ(again.find_route("qa")->shadow->evidence, "/plan/report.html");

    EXPECT_THROW(serve::with_rollout(live, "nope", rec, {}), serve::RolloutConflict);
    EXPECT_THROW(serve::with_rollout(live, "both", rec, {}), serve::RolloutConflict);  // a cascade
    rec.model.name = "base";
    EXPECT_THROW(serve::with_rollout(live, "qa", rec, {}), serve::RolloutConflict);  // another model of that name
    rec.model.path = "/m/base.gguf";
    EXPECT_THROW(serve::with_rollout(live, "qa", rec, {}), serve::RolloutConflict);  // already serves the route
    rec.model = {.name = "small", .path = "/m/small.gguf"};
    EXPECT_EQ(serve::with_rollout(live, "qa", rec, {}).models.size(), 2u);  // the same entry is reused

    test::ScratchDir dir;
    EXPECT_THROW(serve::read_recommendation(dir.file("nothing"), "qa"), Error);
}
