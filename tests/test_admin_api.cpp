// The gateway's pure edges: the admin and feedback bodies, the shadow bounds they share with the
// portfolio file, the query string, and the fallback policy driven by attempts of the test's own.
#include "model/portfolio.h"
#include "serve/admin_api.h"
#include "serve/fallback.h"
#include "serve/http_server.h"
#include "support/error.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace switchyard;
using namespace switchyard::serve;

namespace {

RolloutRequest rollout_ok(const std::string & body) {
    auto r = parse_rollout(body);
    if (const auto * e = std::get_if<ApiError>(&r)) ADD_FAILURE() << body << ": " << e->message;
    return std::get<RolloutRequest>(r);
}

ApiError rollout_bad(const std::string & body) {
    auto r = parse_rollout(body);
    if (std::holds_alternative<RolloutRequest>(r)) ADD_FAILURE() << body << " was accepted";
    return std::get<ApiError>(r);
}

ApiError feedback_bad(const std::string & body) {
    auto r = parse_feedback(body);
    if (std::holds_alternative<FeedbackRequest>(r)) ADD_FAILURE() << body << " was accepted";
    return std::get<ApiError>(r);
}

std::string portfolio_error(const std::string & shadow) {
    try {
        model::parse_portfolio(
            "models:\n  - {name: a, path: a.gguf}\n  - {name: b, path: b.gguf}\nroutes:\n  - name: r\n    model: a\n    shadow: " +
                shadow + "\n",
            "p.yaml", "/dir");
    } catch (const Error & e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(AdminApi, RolloutDefaultsToTheDocumentedThresholds) {
    const auto r = rollout_ok(R"({"plan": "plan-out", "class": "qa"})");
    EXPECT_EQ(r.plan, "plan-out");
    EXPECT_EQ(r.task_class, "qa");
    EXPECT_EQ(r.route, "qa");  // the class's own route unless one is named
    EXPECT_EQ(r.thresholds.sample, 1.0);
    EXPECT_EQ(r.thresholds.promote_at, 0.9);
    EXPECT_EQ(r.thresholds.rollback_below, 0.5);
    EXPECT_EQ(r.thresholds.min_samples, 100);
    EXPECT_TRUE(r.thresholds.model.empty());
}

TEST(AdminApi, RolloutTakesEverySetting) {
    const auto r = rollout_ok(
        R"({"plan": "/p", "class": "qa", "route": "support", "sample": 0.25, "promote_at": 1, "rollback_below": 0, "min_samples": 1000000})");
    EXPECT_EQ(r.route, "support");
    EXPECT_EQ(r.thresholds.sample, 0.25);
    EXPECT_EQ(r.thresholds.promote_at, 1.0);
    EXPECT_EQ(r.thresholds.rollback_below, 0.0);
    EXPECT_EQ(r.thresholds.min_samples, 1000000);
}

TEST(AdminApi, RolloutErrorsNameTheField) {
    const std::string shape = "the body must be a JSON object: {\"plan\": FOLDER, \"class\": NAME}";
    EXPECT_EQ(rollout_bad("").message, shape);
    EXPECT_EQ(rollout_bad("{\"plan\": ").message, shape);
    EXPECT_EQ(rollout_bad("[1]").message, shape);
    const auto missing = rollout_bad(R"({"class": "qa"})");
    EXPECT_EQ(missing.status, 400);
    EXPECT_EQ(missing.param, "plan");
    EXPECT_EQ(missing.message, "'plan' is required: the folder `switchyard plan -o` wrote");
    EXPECT_EQ(rollout_bad(R"({"plan": "p"})").message,
              "'class' is required: the class of traffic whose recommendation to roll out");
    EXPECT_EQ(rollout_bad(R"({"plan": "", "class": "qa"})").message, "'plan' must be a non-empty string");
    EXPECT_EQ(rollout_bad(R"({"plan": "p", "class": 3})").message, "'class' must be a non-empty string");
    EXPECT_EQ(rollout_bad(R"({"plan": "p", "class": "qa", "route": null})").param, "route");
    // Type and range are one rule: a value that is no share is told the bounds.
    for (const char * sample : {"1.5", "-0.1", "\"half\"", "null", "true"}) {
        const auto e = rollout_bad(std::string(R"({"plan": "p", "class": "qa", "sample": )") + sample + "}");
        EXPECT_EQ(e.message, "'sample' must lie between 0 and 1") << sample;
        EXPECT_EQ(e.param, "sample");
    }
    EXPECT_EQ(rollout_bad(R"({"plan": "p", "class": "qa", "promote_at": 2})").param, "promote_at");
    EXPECT_EQ(rollout_bad(R"({"plan": "p", "class": "qa", "rollback_below": -1})").param, "rollback_below");
    for (const char * n : {"0", "-5", "1000001", "2.5", "\"10\"", "18446744073709551615"}) {
        const auto e = rollout_bad(std::string(R"({"plan": "p", "class": "qa", "min_samples": )") + n + "}");
        EXPECT_EQ(e.message, "'min_samples' must be a whole number from 1 to 1000000") << n;
        EXPECT_EQ(e.param, "min_samples");
    }
}

TEST(AdminApi, PortfolioFileKeepsShadowsToTheSameBounds) {
    EXPECT_EQ(portfolio_error("{model: b, min_samples: 0}"),
              "p.yaml:7: routes[0].shadow.min_samples: must be a whole number from 1 to 1000000");
    EXPECT_EQ(portfolio_error("{model: b, min_samples: -3}"),
              "p.yaml:7: routes[0].shadow.min_samples: must be a whole number from 1 to 1000000");
    // Beyond an int: rejected, not wrapped into range.
    EXPECT_EQ(portfolio_error("{model: b, min_samples: 4294967396}"),
              "p.yaml:7: routes[0].shadow.min_samples: must be a whole number from 1 to 1000000");
    EXPECT_EQ(portfolio_error("{model: b, sample: 1.5}"),
              "p.yaml:7: routes[0].shadow.sample: must lie between 0 and 1");
    EXPECT_EQ(portfolio_error("{model: b, rollback_below: -0.5}"),
              "p.yaml:7: routes[0].shadow.rollback_below: must lie between 0 and 1");
    EXPECT_EQ(portfolio_error("{model: b, min_samples: 1, promote_at: 1, rollback_below: 0}"), "");
    EXPECT_EQ(model::shadow_min_samples_error(1000000), std::nullopt);
    EXPECT_EQ(model::shadow_share_error(0.5), std::nullopt);
}

TEST(AdminApi, Feedback) {
    const auto r =
        std::get<FeedbackRequest>(parse_feedback(R"({"id": "chatcmpl-1", "correct": false, "expected": "Paris"})"));
    EXPECT_EQ(r.id, "chatcmpl-1");
    EXPECT_FALSE(r.correct);
    EXPECT_EQ(r.expected, "Paris");
    EXPECT_EQ(std::get<FeedbackRequest>(parse_feedback(R"({"id": "x", "correct": true})")).expected, std::nullopt);
    EXPECT_EQ(feedback_bad("not json").message, "'id' (a response id) is required");
    EXPECT_EQ(feedback_bad(R"({"id": 7, "correct": true})").param, "id");
    const auto correct = feedback_bad(R"({"id": "x", "correct": "yes"})");
    EXPECT_EQ(correct.message, "'correct' must be true or false");
    EXPECT_EQ(correct.param, "correct");
    EXPECT_EQ(feedback_bad(R"({"id": "x", "correct": true, "expected": null})").message, "'expected' must be a string");
}

TEST(AdminApi, QueryParameters) {
    http::Request req;
    req.query = "route=a%20b&model=x+y&bad=%zz%4&route=second&empty=&upper=%4A%4a";
    EXPECT_EQ(req.query_param("route"), "a b");  // the first one
    EXPECT_EQ(req.query_param("model"), "x y");
    EXPECT_EQ(req.query_param("bad"), "%zz%4");  // not an escape: kept as sent
    EXPECT_EQ(req.query_param("upper"), "JJ");
    EXPECT_EQ(req.query_param("empty"), "");
    EXPECT_EQ(req.query_param("rout"), "");
    EXPECT_EQ(req.query_param("missing"), "");
    req.query = "";
    EXPECT_EQ(req.query_param("route"), "");
}

namespace {

Stream::Event failure(Failure f, std::string message = "broke") {
    Stream::Event e{.kind = Stream::Event::Kind::failed};
    e.failure = f;
    e.message = std::move(message);
    return e;
}

const nlohmann::json & route_counts(const nlohmann::json & metrics, const std::string & route) {
    return metrics["routes"][route];
}

}  // namespace

TEST(Fallback, FailuresMoveOnAndRestTheModel) {
    Metrics metrics;
    Cooldown cooldown(std::chrono::seconds(60));
    std::vector<std::string> tried;
    const auto error =
        answer_in_order({"a", "b", "c"}, "r", &cooldown, metrics, [&](const std::string & m, bool last) -> Attempt {
            tried.push_back(m);
            if (m == "a") return failure(Failure::failed);
            if (m == "b") return failure(Failure::overloaded);
            EXPECT_TRUE(last);
            return Answered{};
        });
    EXPECT_EQ(error, std::nullopt);
    EXPECT_EQ(tried, (std::vector<std::string>{"a", "b", "c"}));
    const auto j = metrics.to_json();
    EXPECT_EQ(route_counts(j, "r")["fallbacks"], 2);
    EXPECT_EQ(route_counts(j, "r")["errors"], 0);
    EXPECT_EQ(j["models"]["a"]["errors"], 1);
    const auto now = Cooldown::Clock::now();
    EXPECT_TRUE(cooldown.resting("a", now));
    EXPECT_FALSE(cooldown.resting("b", now));  // only busy: no rest
    // The next request leaves the resting model out while another is awake.
    tried.clear();
    (void)answer_in_order({"a", "c"}, "r", &cooldown, metrics, [&](const std::string & m, bool) -> Attempt {
        tried.push_back(m);
        return Answered{};
    });
    EXPECT_EQ(tried, (std::vector<std::string>{"c"}));
}

TEST(Fallback, EveryModelFailingGivesTheLastFailure) {
    Metrics metrics;
    const auto error = answer_in_order({"a", "b"}, "r", nullptr, metrics, [&](const std::string & m, bool) -> Attempt {
        return failure(m == "a" ? Failure::failed : Failure::timeout, "took too long");
    });
    ASSERT_TRUE(error);
    EXPECT_EQ(error->status, 504);
    EXPECT_EQ(error->message, "b: took too long");
    EXPECT_EQ(route_counts(metrics.to_json(), "r")["errors"], 1);
    const auto none =
        answer_in_order({}, "r", nullptr, metrics, [](const std::string &, bool) -> Attempt { return Answered{}; });
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 503);
    EXPECT_EQ(none->code, "unavailable");
}

TEST(Fallback, RejectionsAndClientsGoneStopAtOnce) {
    Metrics metrics;
    int attempts = 0;
    auto rejected = failure(Failure::rejected, "prompt too long");
    rejected.status = 413;
    const auto error = answer_in_order({"a", "b"}, "r", nullptr, metrics, [&](const std::string &, bool) -> Attempt {
        ++attempts;
        return rejected;
    });
    EXPECT_EQ(attempts, 1);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->status, 413);
    EXPECT_EQ(error->message, "prompt too long");
    const auto own = answer_in_order({"a", "b"}, "r", nullptr, metrics, [&](const std::string &, bool) -> Attempt {
        return bad_request("'n' is 9", "n");
    });
    ASSERT_TRUE(own);
    EXPECT_EQ(own->param, "n");
    const auto gone = answer_in_order({"a", "b"}, "r", nullptr, metrics, [&](const std::string &, bool) -> Attempt {
        return failure(Failure::client_gone);
    });
    EXPECT_EQ(gone, std::nullopt);
    const auto j = metrics.to_json();
    EXPECT_EQ(j["client_disconnects"], 1);
    EXPECT_FALSE(j["routes"].contains("r"));  // nothing counted against the route or its models
    EXPECT_TRUE(j["models"].empty());
}

TEST(Fallback, AnEscalationIsNoFallback) {
    Metrics metrics;
    std::vector<bool> lasts;
    (void)answer_in_order({"small", "mid", "big"}, "c", nullptr, metrics,
                          [&](const std::string & m, bool last) -> Attempt {
                              lasts.push_back(last);
                              if (m == "small") return Escalated{};
                              if (m == "mid") return failure(Failure::failed);
                              return Answered{};
                          });
    EXPECT_EQ(lasts, (std::vector<bool>{false, false, true}));
    const auto j = metrics.to_json();
    EXPECT_EQ(route_counts(j, "c")["escalations"], 1);
    EXPECT_EQ(route_counts(j, "c")["fallbacks"], 1);  // mid failed, big asked
}
