// The portfolio file: what serve reads and plan writes must survive a round trip, and mistakes name their line.
#include "model/portfolio.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>

using switchyard::Error;
using namespace switchyard::model;

namespace {

const char * kPortfolio = R"(version: 1
models:
  - name: base
    path: models/base.gguf
    context: 512
    normalize: true
  - name: small
    path: /abs/small.gguf
    cost_per_1k_tokens: 0.0002
  - name: remote
    endpoint: http://127.0.0.1:9000/v1
    remote_model: llama-3-8b
routes:
  - name: critical
    model: base
    fallback: [remote, small]
  - name: bulk
    model: small
    canary: {model: base, percent: 10}
    shadow: {model: base, sample: 0.25, promote_at: 0.9, min_samples: 20}
  - name: simple
    cascade: {models: [small, base], min_mean_logprob: -1.5}
rules:
  - route: critical
    regex: "contract|invoice"
    ignore_case: true
  - route: simple
    max_prompt_chars: 200
default_route: bulk
)";

std::string error_of(const std::string & yaml) {
    try {
        parse_portfolio(yaml, "p.yaml", "/dir");
    } catch (const Error & e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Portfolio, ReadsEverySection) {
    const auto p = parse_portfolio(kPortfolio, "p.yaml", "/dir");
    ASSERT_EQ(p.models.size(), 3u);
    EXPECT_EQ(p.models[0].path, "/dir/models/base.gguf");
    EXPECT_EQ(p.models[0].context, 512);
    EXPECT_TRUE(p.models[0].normalize);
    EXPECT_FALSE(p.models[1].normalize);
    EXPECT_EQ(p.models[1].path, "/abs/small.gguf");
    EXPECT_DOUBLE_EQ(p.models[1].cost_per_1k_tokens, 0.0002);
    EXPECT_EQ(p.models[2].remote_model, "llama-3-8b");
    ASSERT_EQ(p.routes.size(), 3u);
    EXPECT_EQ(p.routes[0].fallback, (std::vector<std::string>{"remote", "small"}));
    ASSERT_TRUE(p.routes[1].shadow);
    EXPECT_DOUBLE_EQ(p.routes[1].shadow->sample, 0.25);
    EXPECT_FALSE(p.routes[1].shadow->rollback_below);
    EXPECT_DOUBLE_EQ(p.routes[1].canary->percent, 10);
    EXPECT_EQ(p.routes[2].cascade->models.size(), 2u);
    EXPECT_TRUE(p.rules[0].ignore_case);
    EXPECT_EQ(p.rules[1].max_prompt_chars, 200u);
    EXPECT_EQ(p.default_route, "bulk");
}

TEST(Portfolio, RoundTripsThroughYaml) {
    const auto p = parse_portfolio(kPortfolio, "p.yaml", "/dir");
    const auto yaml = portfolio_to_yaml(p, "/dir", "written by a test\nsecond line");
    EXPECT_EQ(yaml.rfind("# written by a test\n# second line\n", 0), 0u) << yaml;
    EXPECT_NE(yaml.find("path: models/base.gguf"), std::string::npos) << "paths under the folder stay relative";
    const auto again = parse_portfolio(yaml, "again.yaml", "/dir");
    EXPECT_EQ(portfolio_to_yaml(again, "/dir"), portfolio_to_yaml(p, "/dir"));
}

// A measured cost is known to a few percent: written with four significant digits, not seventeen.
TEST(Portfolio, CostsAreWrittenToTheDigitsAMeasurementCarries) {
    auto p = parse_portfolio(kPortfolio, "p.yaml", "/dir");
    p.models[0].cost_per_1k_tokens = 1.3339532627865963e-05;
    const auto yaml = portfolio_to_yaml(p, "/dir");
    EXPECT_NE(yaml.find("cost_per_1k_tokens: 1.334e-05\n"), std::string::npos) << yaml;
    EXPECT_DOUBLE_EQ(parse_portfolio(yaml, "again.yaml", "/dir").models[0].cost_per_1k_tokens, 1.334e-05);
}

TEST(Portfolio, ModelsOnlyMeansOneRoutePerModel) {
    const auto p =
        parse_portfolio("models:\n  - {name: a, path: a.gguf}\n  - {name: b, path: b.gguf}\n", "p.yaml", "/dir");
    ASSERT_EQ(p.routes.size(), 2u);
    EXPECT_EQ(p.routes[1].model, "b");
    EXPECT_EQ(p.default_route, "a");
}

TEST(Portfolio, ErrorsNameLineAndKey) {
    EXPECT_EQ(error_of("models:\n  - name: a\n    path: a.gguf\n    contxt: 5\n"),
              "p.yaml:4: models[0].contxt: unknown key (expected one of: name, path, endpoint, "
              "remote_model, api_key_env, context, parallel, threads, gpu_layers, kv, rpc, "
              "normalize, cost_per_1k_tokens, note, replicas, health, load, ttl_s)");
    EXPECT_EQ(error_of("models:\n  - name: a\n    path: a.gguf\nroutes:\n  - name: r\n    model: b\n"),
              "p.yaml:5: routes: route 'r' names the model 'b', which 'models' does not define");
    EXPECT_EQ(error_of("models:\n  - name: a\n    path: a.gguf\n    context: lots\n"),
              "p.yaml:4: models[0].context: expected a whole number, found 'lots'");
    EXPECT_EQ(
        error_of("models:\n  - name: a\n"),
        "p.yaml:2: models[0]: give exactly one of 'path' (a GGUF file) and 'endpoint' (an OpenAI-compatible URL), or 'replicas'");
    EXPECT_EQ(error_of("models: [\n"), "p.yaml:2: not valid YAML: end of sequence flow not found");
    EXPECT_EQ(error_of("- a\n"), "p.yaml: expected a YAML mapping at the top level, found a list");
    EXPECT_NE(error_of("models:\n  - {name: a, path: a.gguf}\nrules:\n  - {route: a, regex: \"(\"}\n")
                  .find("p.yaml:4: rules[0].regex: not a valid RE2 regular expression"),
              std::string::npos);
}

TEST(Portfolio, ReplicasReadAndRoundTrip) {
    const auto p = parse_portfolio(
        "models:\n  - name: big\n    path: big.gguf\n    replicas:\n      - {endpoint: 'http://10.0.0.5:8080/v1'}\n"
        "      - {endpoint: 'http://10.0.0.6:8080/v1', weight: 2}\n    health: {interval_ms: 250}\n",
        "p.yaml", "/srv");
    ASSERT_EQ(p.models[0].replicas.size(), 2u);
    EXPECT_EQ(p.models[0].replicas[1].weight, 2);
    EXPECT_EQ(p.models[0].health.interval_ms, 250);
    EXPECT_EQ(p.models[0].health.path, "/health");
    EXPECT_EQ(p.models[0].path, "/srv/big.gguf");  // the in-process engine joins the replicas
    EXPECT_EQ(parse_portfolio(portfolio_to_yaml(p, {}), "again", "/srv").models, p.models);
    EXPECT_EQ(
        error_of("models:\n  - {name: a, endpoint: 'http://x/v1', replicas: [{endpoint: 'http://y/v1'}]}\n"),
        "p.yaml:2: models[0].endpoint: a model with replicas lists every server under 'replicas' (and 'path' adds the in-process engine)");
    EXPECT_EQ(error_of("models:\n  - {name: a, replicas: [{endpoint: 'http://y/v1', weight: 0}]}\n"),
              "p.yaml:2: models[0].replicas[0].weight: must be positive");
}

TEST(Portfolio, RpcWorkersHoldAnInProcessModel) {
    const auto p =
        parse_portfolio("models:\n  - {name: big, path: big.gguf, rpc: ['rpc://10.0.0.5:50052', '10.0.0.6:50052']}\n",
                        "p.yaml", "/srv");
    EXPECT_EQ(p.models[0].rpc, (std::vector<std::string>{"10.0.0.5:50052", "10.0.0.6:50052"}));
    EXPECT_EQ(parse_portfolio(portfolio_to_yaml(p, {}), "again", "/srv").models, p.models);
    EXPECT_EQ(error_of("models:\n  - {name: a, endpoint: 'http://x/v1', rpc: ['rpc://h:1']}\n"),
              "p.yaml:2: models[0].rpc: RPC workers hold an in-process model's layers: give 'path' (a GGUF file)");
    EXPECT_EQ(
        error_of("models:\n  - {name: a, path: a.gguf, rpc: ['rpc://h']}\n"),
        "p.yaml:2: models[0].rpc: 'rpc://h' is not an RPC worker endpoint: expected rpc://HOST:PORT (an rpc-server's address)");
}

TEST(Portfolio, SaveIsAtomicAndLoadsBack) {
    switchyard::test::ScratchDir dir;
    const auto p = parse_portfolio(kPortfolio, "p.yaml", dir.path());
    save_portfolio(dir.file("portfolio.yaml"), p);
    const auto back = load_portfolio(dir.file("portfolio.yaml"));
    EXPECT_EQ(back.models[0].path, dir.path() / "models/base.gguf");
    EXPECT_EQ(back.routes.size(), 3u);
    EXPECT_THROW(load_portfolio(dir.file("missing.yaml")), Error);
}
