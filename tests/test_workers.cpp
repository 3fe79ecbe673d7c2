// One machine is not enough: models on llama.cpp's rpc-server workers (eval --rpc, serve's `rpc:`)
// and plan workers that measure candidates side by side, with a worker lost mid-run.
#include "decide/search.h"
#include "support/error.h"
#include "support/rpc_endpoint.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <sys/wait.h>
#include <thread>

using namespace switchyard;
using nlohmann::json;

namespace {

std::string blimp_suite() {
    return "blimp:" + (test::data_dir() / "data/blimp/irregular_past_participle_verbs.jsonl").string();
}

// The plan of test_plan.cpp with four variants, so that two workers have candidates to share.
std::string worker_plan(const std::string & workers) {
    return test::two_class_plan("  - {type: Q8_0}\n  - {type: Q6_K}\n  - {type: Q4_0}\n  - {type: Q2_K}\n", workers);
}

// What a decision rests on: every candidate's measurements, every assessment and the choice. Not
// paths (each run builds its variants in its own folder), times or the search's own counts.
json measured(const json & decision) {
    json out = {{"assessments", decision["assessments"]}, {"recommendation", decision["recommendation"]}};
    for (const auto & c : decision["candidates"])
        out["candidates"][c["name"].get<std::string>()] = {{"suites", c["suites"]},
                                                           {"drift", c.value("drift", json())},
                                                           {"not_run", c.value("not_run", json())},
                                                           {"skipped", c.value("skipped", json())}};
    return out;
}

// `switchyard ARGS` in the background, its output to a file that the test reads while it runs.
class Background {
public:
    Background(const std::vector<std::string> & args, const std::filesystem::path & err) : err_(err) {
        std::vector<std::string> all = {SWITCHYARD_BINARY};
        all.insert(all.end(), args.begin(), args.end());
        pid_ = test::spawn_logged(all, err);
    }
    ~Background() { test::stop_group(pid_, SIGKILL); }
    // Waits (up to `seconds`) until the output holds `text`.
    bool wait_for(const std::string & text, int seconds) const {
        for (int i = 0; i < seconds * 20; ++i) {
            if (test::read_file(err_).find(text) != std::string::npos) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::string err() const { return test::read_file(err_); }

private:
    std::filesystem::path err_;
    int pid_ = -1;
};

}  // namespace

TEST(RpcEndpoint, ReadsHostAndPortAndRefusesTheRest) {
    EXPECT_EQ(rpc_endpoint("rpc://10.0.0.5:50052"), "10.0.0.5:50052");
    EXPECT_EQ(rpc_endpoint("worker-3:50052"), "worker-3:50052");
    EXPECT_EQ(rpc_endpoint("rpc://[::1]:50052/"), "[::1]:50052");
    for (const char * bad : {"rpc://host", "rpc://:50052", "host:0", "host:70000", "host:12ab", "http://host:80x"})
        EXPECT_THROW(rpc_endpoint(bad), Error) << bad;
}

// What workers measure ahead, in the order the search asks for it: each method's ladder mild to
// aggressive, screened-out and duplicate variants left out.
TEST(Search, LaddersAreEachMethodsVariantsMildToAggressive) {
    const auto variant = [](const std::string & name, const std::string & ladder, double severity,
                            const std::string & skipped = "") {
        return decide::Candidate{.name = name,
                                 .kind = decide::CandidateKind::variant,
                                 .ladder = ladder,
                                 .severity = severity,
                                 .skipped = skipped};
    };
    std::vector<decide::Candidate> candidates = {{.name = "orig", .kind = decide::CandidateKind::original},
                                                 variant("pruned-60", "prune", 0.6),
                                                 variant("Q4_0", "quantize", -4.5),
                                                 variant("Q8_0", "quantize", -8.5),
                                                 variant("pruned-30", "prune", 0.3),
                                                 variant("Q2_K", "quantize", -2.6, "screened out"),
                                                 {.name = "small", .kind = decide::CandidateKind::alternative}};
    const auto ladders = decide::ladders(candidates);
    ASSERT_EQ(ladders.size(), 2u);
    std::vector<std::vector<std::string>> names;
    for (const auto & ladder : ladders) {
        names.emplace_back();
        for (const auto * c : ladder) names.back().push_back(c->name);
    }
    EXPECT_EQ(names, (std::vector<std::vector<std::string>>{{"pruned-30", "pruned-60"}, {"Q8_0", "Q4_0"}}));
}

TEST(Workers, UnreachableOrMalformedWorkersFailCleanly) {
    test::ScratchDir dir;
    test::write_file(dir.file("plan.yaml"), worker_plan("workers: [nonsense]\n"));
    auto r = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", dir.file("out").string()});
    test::expect_clean_failure(
        r, "plan.yaml:25: workers: 'nonsense' is not an RPC worker endpoint: expected rpc://HOST:PORT");

    const std::string nobody = "rpc://127.0.0.1:" + std::to_string(test::free_port());
    test::write_file(dir.file("plan.yaml"), worker_plan(""));
    r = test::run_switchyard(
        {"plan", dir.file("plan.yaml").string(), "-o", dir.file("out").string(), "--workers", nobody, "-q"});
    test::expect_clean_failure(r, "is not reachable: start llama.cpp's rpc-server there");
    r = test::run_switchyard({"eval", "-m", test::model_path("babyllama-0.9M-f32.gguf").string(), "--tasks",
                              blimp_suite(), "--rpc", nobody, "--no-results"});
    test::expect_clean_failure(r, "RPC worker 127.0.0.1:");
}

TEST(Workers, AModelOnAnRpcWorkerScoresAsInProcess) {
    test::ScratchDir dir;
    test::RpcServer worker(dir.file("rpc.log"));
    const auto model = test::model_path("babyllama-0.9M-f32.gguf").string();
    const std::vector<std::string> args = {"eval",        "-m",           model,    "--tasks", blimp_suite(),
                                           "--normalize", "--no-results", "--json", "-t",      "1"};
    const auto local = test::run_switchyard(args);
    ASSERT_EQ(local.exit_code, 0) << local.err;
    auto remote_args = args;
    remote_args.insert(remote_args.end(), {"--rpc", worker.endpoint()});
    const auto remote = test::run_switchyard(remote_args);
    ASSERT_EQ(remote.exit_code, 0) << remote.err << test::read_file(dir.file("rpc.log"));
    const auto a = json::parse(local.out)["suites"][0], b = json::parse(remote.out)["suites"][0];
    EXPECT_GT(a["n"].get<int>(), 100);
    EXPECT_EQ(a["n"], b["n"]);
    EXPECT_EQ(a["accuracy"], b["accuracy"]);
    // The worker really held the model: rpc-server logs the client that connected.
    EXPECT_NE(test::read_file(dir.file("rpc.log")).find("Accepted client connection"), std::string::npos)
        << test::read_file(dir.file("rpc.log"));
}

TEST(Workers, ServeRunsAnInProcessModelOnAWorker) {
    test::ScratchDir dir;
    test::RpcServer worker(dir.file("rpc.log"));
    test::write_file(dir.file("portfolio.yaml"),
                     "models:\n  - {name: spread, path: " + test::model_path("stories260K-f32.gguf").string() +
                         ", threads: 1, rpc: ['" + worker.endpoint() + "']}\n");
    test::ServerProcess server(SWITCHYARD_BINARY,
                               {"serve", "--portfolio", dir.file("portfolio.yaml").string(), "--port", "0"});
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(60);
    const auto r = client.Post(
        "/v1/completions", R"({"model": "spread", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0})",
        "application/json");
    ASSERT_TRUE(r) << server.log();
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 8);
    EXPECT_NE(test::read_file(dir.file("rpc.log")).find("Accepted client connection"), std::string::npos);
}

// The acceptance run of plan workers, on the shared models: the same numbers as a plan run here,
// with one of two workers killed as it starts its first candidate.
TEST(Workers, TwoWorkersGiveTheLocalNumbersAndSurviveALostWorker) {
    test::ScratchDir dir;
    test::write_file(dir.file("plan.yaml"), worker_plan(""));
    const auto local = test::run_switchyard({"plan", dir.file("plan.yaml").string(), "-o", dir.file("local").string(),
                                             "--results", dir.file("local.sqlite").string(), "-t", "1", "-q"});
    ASSERT_EQ(local.exit_code, 0) << local.err;

    test::RpcServer a(dir.file("a.log")), b(dir.file("b.log"));
    Background plan({"plan", dir.file("plan.yaml").string(), "-o", dir.file("spread").string(), "--results",
                     dir.file("spread.sqlite").string(), "-t", "1", "--workers", a.endpoint() + "," + b.endpoint()},
                    dir.file("plan.err"));
    ASSERT_TRUE(plan.wait_for("workers: " + a.endpoint().substr(6) + " measures", 300)) << plan.err();
    a.kill();
    ASSERT_EQ(plan.wait(), 0) << plan.err();

    const auto expected = json::parse(test::read_file(dir.file("local/decision.json")));
    const auto got = json::parse(test::read_file(dir.file("spread/decision.json")));
    EXPECT_EQ(measured(got), measured(expected)) << plan.err();
    const auto & search = got["search"];
    ASSERT_EQ(search["workers"].size(), 2u) << search.dump(2);
    EXPECT_EQ(search["workers"][0]["up"], false);
    EXPECT_GE(search["workers"][0]["lost"].get<int>(), 1);
    EXPECT_GE(search["workers"][1]["jobs"].get<int>(), 1);
    EXPECT_GE(search["suite_runs_on_workers"].get<int>(), 1);
    EXPECT_EQ(search["suite_runs"].get<int>(), expected["search"]["suite_runs"].get<int>());
    EXPECT_NE(plan.err().find("went away while measuring"), std::string::npos) << plan.err();
}
