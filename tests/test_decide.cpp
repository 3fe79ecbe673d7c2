// The decision rules on constructed measurements: each rule's verdict and numbers, and the choice per class.
#include "decide/cost_rules.h"
#include "decide/decision.h"
#include "decide/plan_file.h"
#include "decide/search.h"
#include "support/error.h"
#include "test_support.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

using namespace switchyard::decide;
using switchyard::eval::PairedComparison;

namespace {

// The comparison compare_outcomes() makes of two real result lists: n items both scored, the
// original right on `base_right` of them; `r2w` of those the other model gets wrong, and `w2r` of
// the rest it gets right. `other_unscored` more items only the original could score (right on all).
PairedComparison comparison(std::size_t n, std::size_t base_right, std::size_t r2w, std::size_t w2r,
                            std::size_t other_unscored = 0) {
    switchyard::eval::SuiteResult base, other;
    base.suite.content_hash = other.suite.content_hash = "suite";
    for (std::size_t i = 0; i < n + other_unscored; ++i) {
        switchyard::eval::ItemOutcome a{.line = i + 1}, b{.line = i + 1};
        if (i >= n) {
            a.correct = true;
            b.unencodable = true;
        } else if (i < base_right) {
            a.correct = true;
            b.correct = i >= r2w;
        } else {
            b.correct = i - base_right < w2r;
        }
        base.outcomes.push_back(a);
        other.outcomes.push_back(b);
    }
    return switchyard::eval::compare_outcomes(base, other);
}

// A candidate's score as the planner makes it: its accuracy on the items it scored, and the pairing.
SuiteScore scored(const std::string & suite, bool critical, const PairedComparison & vs) {
    const std::size_t right = vs.both_right + vs.wrong_to_right.size();
    return SuiteScore{.suite = suite,
                      .critical = critical,
                      .n = vs.n,
                      .correct = right,
                      .excluded = vs.other_excluded,
                      .accuracy = vs.n ? static_cast<double>(right) / vs.n : 0.0,
                      .vs_original = vs};
}

// The original's own score: `right` of `n`.
SuiteScore original_scored(const std::string & suite, bool critical, std::size_t n, std::size_t right) {
    return SuiteScore{
        .suite = suite, .critical = critical, .n = n, .correct = right, .accuracy = static_cast<double>(right) / n};
}

Candidate candidate(const std::string & name, CandidateKind kind, std::uint64_t bytes, std::vector<SuiteScore> suites) {
    return Candidate{.name = name,
                     .kind = kind,
                     .capabilities = {"text"},
                     .context_length = 2048,
                     .file_bytes = bytes,
                     .same_vocabulary = kind != CandidateKind::alternative,
                     .ladder = kind == CandidateKind::variant ? "quantize" : "",
                     .severity = -static_cast<double>(bytes),
                     .suites = std::move(suites)};
}

// A local candidate's cost as the speed pass gives it: time per query `ratio` times the
// reference's, with a 95% interval of ±`half` (log scale), priced at $1e-6 per query of the reference.
CostScore timed(double ratio, double half = 0.03, const std::string & reference = "orig") {
    const double h = std::log1p(half);
    CostScore c{.reference = reference,
                .ratio = ratio,
                .ratio_lo = ratio * std::exp(-h),
                .ratio_hi = ratio * std::exp(h),
                .rounds = 8};
    c.cost_per_query = 1e-6 * ratio;
    c.cost_lo = c.cost_per_query * std::exp(-h);
    c.cost_hi = c.cost_per_query * std::exp(h);
    c.cost_per_1m_tokens = c.cost_per_query * 1e6 / 192;
    return c;
}

const std::vector<TaskRef> kTasks = {{.suite = "facts", .task_class = "critical", .critical = true},
                                     {.suite = "chat", .task_class = "general"}};

// The class's verdict from measured candidates, with the context the search fixes for it (its
// families counted as the planner counts them).
ClassDecision decide_class(const Policy & policy, const std::string & cls, std::vector<Candidate> candidates,
                           std::vector<Assessment> * out = nullptr, const std::vector<TaskRef> & tasks = kTasks) {
    const auto context = class_context(candidates, tasks, cls);
    std::vector<const Candidate *> pointers;
    std::vector<Assessment> assessments;
    for (const auto & c : candidates) {
        pointers.push_back(&c);
        assessments.push_back(assess(policy, c, cls, tasks, context));
    }
    if (out) *out = assessments;
    return choose(policy, cls, pointers, assessments, context);
}

Policy absolute(double max_drop) {
    Policy policy;
    policy.drop_relative = false;
    policy.max_drop = max_drop;
    return policy;
}

// A plan's error, as a user reads it; "accepted" when it parses.
std::string plan_error(const std::string & yaml) {
    try {
        parse_plan(yaml, "plan.yaml", "/p");
    } catch (const switchyard::Error & e) {
        return e.what();
    }
    return "accepted";
}

}  // namespace

TEST(Rules, FloorIsJudgedWithOneSidedBounds) {
    const Policy policy;
    const auto pass = rule_floor(policy, original_scored("facts", true, 1000, 850), 0.05);
    EXPECT_EQ(pass.outcome, Outcome::pass) << pass.message;
    EXPECT_EQ(pass.rule, "R2-floor");
    // 79% of 1000 is under the floor, but not measurably: undecided, not a failure.
    const auto close = rule_floor(policy, original_scored("facts", true, 1000, 790), 0.05);
    EXPECT_EQ(close.outcome, Outcome::insufficient) << close.message;
    EXPECT_EQ(close.id(), "R2-insufficient");
    EXPECT_EQ(
        close.message,
        "accuracy 79.0% [76.8, 81.1] on `facts` (critical) (n=1000; each bound one-sided at 0.05) straddles the floor 80.0%; about 4425 items would settle it");
    const auto fail = rule_floor(policy, original_scored("facts", true, 1000, 750), 0.05);
    EXPECT_EQ(fail.outcome, Outcome::fail) << fail.message;
    EXPECT_EQ(fail.id(), "R2-floor");
}

// Nothing scored is "not measurable", not an accuracy of 0% below the floor; items a model could
// not score count as wrong, so a model that reads only the easy items does not pass on them.
TEST(Rules, UnscoredItemsCountAgainstTheFloor) {
    const Policy policy;
    const auto v = rule_floor(policy, SuiteScore{.suite = "facts", .critical = true, .n = 0, .excluded = 40}, 0.05);
    EXPECT_EQ(v.outcome, Outcome::insufficient);
    EXPECT_EQ(
        v.message,
        "`facts` is not measurable: none of its 40 items could be scored (unencodable or too long for the context)");
    // 95 of the 100 it could read, but 300 items it could not: 95 / 400.
    const auto some = rule_floor(
        policy,
        SuiteScore{.suite = "facts", .critical = true, .n = 100, .correct = 95, .excluded = 300, .accuracy = 0.95},
        0.05);
    EXPECT_EQ(some.outcome, Outcome::fail) << some.message;
    EXPECT_NE(some.message.find("accuracy 23.8% ["), std::string::npos) << some.message;
    EXPECT_NE(some.message.find("(n=400, 300 it could not score counted wrong;"), std::string::npos) << some.message;
}

TEST(Rules, DropPassesWhenTheDataRejectADropAtTheLimit) {
    const auto policy = absolute(0.10);
    // 30 flips down, 10 up on 1000: drop 2.0 points.
    const auto within = rule_drop(policy, scored("facts", true, comparison(1000, 800, 30, 10)), 0.05);
    EXPECT_EQ(within.outcome, Outcome::pass);
    EXPECT_EQ(
        within.message,
        "drop 2.0 points [0.9, 3.2] on `facts` (critical) (each bound one-sided at 0.05; n=1000 paired, 30 right->wrong, "
        "10 wrong->right, McNemar p=0.00222): the drop is below max_drop 10.0 points");
    // The same numbers, for the report's evidence list.
    ASSERT_TRUE(within.drop);
    EXPECT_EQ(within.drop->suite, "facts");
    EXPECT_DOUBLE_EQ(within.drop->drop, 0.02);
    EXPECT_EQ(within.drop->alpha, 0.05);
    EXPECT_EQ(within.drop->n, 1000u);
    // Far beyond: the data reject a drop at or under the limit.
    const auto too_much = rule_drop(policy, scored("facts", true, comparison(1000, 800, 210, 10)), 0.05);
    EXPECT_EQ(too_much.outcome, Outcome::fail);
    EXPECT_EQ(too_much.id(), "R3-drop");
    EXPECT_NE(too_much.message.find("drop 20.0 points ["), std::string::npos) << too_much.message;
    EXPECT_NE(too_much.message.find("the drop is above max_drop 10.0 points -> too compressed"), std::string::npos)
        << too_much.message;
}

// A point drop over the limit with McNemar rejecting "no drop" is not a drop over the limit.
TEST(Rules, DropIsTestedAgainstTheLimitNotAgainstZero) {
    const auto policy = absolute(0.10);
    const auto c = comparison(200, 160, 30, 4);
    ASSERT_LT(c.mcnemar_p, 0.05);
    const auto v = rule_drop(policy, scored("facts", true, c), 0.05);
    EXPECT_EQ(v.outcome, Outcome::insufficient) << v.message;
    EXPECT_EQ(v.id(), "R3-insufficient");
    EXPECT_NE(v.message.find("drop 13.0 points ["), std::string::npos) << v.message;
    EXPECT_NE(v.message.find("the interval straddles max_drop 10.0 points; about"), std::string::npos) << v.message;
    EXPECT_GT(v.items_needed, 200u);
}

// The level is the candidate's share of alpha: a smaller share needs stronger evidence.
TEST(Rules, TheLevelDecides) {
    const auto c = comparison(1000, 800, 40, 10);  // drop 3.0 points
    const auto policy = absolute(0.05);
    EXPECT_EQ(rule_drop(policy, scored("chat", false, c), 0.05).outcome, Outcome::pass);
    const auto strict = rule_drop(policy, scored("chat", false, c), 0.0001);
    EXPECT_EQ(strict.outcome, Outcome::insufficient) << strict.message;
    EXPECT_NE(strict.message.find("(each bound one-sided at 0.0001;"), std::string::npos) << strict.message;
}

// No flips on 5 items is no evidence of "no drop"; the same agreement on 400 items is.
TEST(Rules, NoFlipsOnFewItemsCannotPass) {
    const Policy policy;
    const auto five = rule_drop(policy, scored("facts", true, comparison(5, 5, 0, 0)), 0.05);
    EXPECT_EQ(five.outcome, Outcome::insufficient) << five.message;
    EXPECT_NE(five.message.find("drop 0.0% ["), std::string::npos) << five.message;
    EXPECT_GT(five.drop->ci.hi, 0.3) << five.message;
    EXPECT_EQ(rule_drop(policy, scored("facts", true, comparison(400, 400, 0, 0)), 0.05).outcome, Outcome::pass);
}

// The relative limit is tested as (1 - max_drop) p_original - p_candidate, so the original's own
// uncertainty counts: the same flips over a weaker original are a larger, less certain drop.
TEST(Rules, RelativeDropCountsTheOriginalsError) {
    const Policy policy;  // relative, 10%
    // 24 of the original's 400 right answers lost, 4 gained: 20 / 400 = 5.0% of its accuracy.
    const auto v = rule_drop(policy, scored("chat", false, comparison(1000, 400, 24, 4)), 0.05);
    EXPECT_EQ(v.outcome, Outcome::pass) << v.message;
    EXPECT_NE(v.message.find("drop 5.0% ["), std::string::npos) << v.message;
    // The same 20 net flips over 200 right answers: 10%, exactly the limit: never a pass.
    const auto edge = rule_drop(policy, scored("chat", false, comparison(1000, 200, 24, 4)), 0.05);
    EXPECT_EQ(edge.outcome, Outcome::insufficient) << edge.message;
}

// An item the original scored and the candidate could not is wrong for the candidate.
TEST(Rules, ItemsTheCandidateCouldNotScoreCountAsWrong) {
    const auto c = comparison(100, 50, 0, 0, 40);  // the other model could not score 40 items the original got right
    EXPECT_EQ(c.n, 100u);
    EXPECT_EQ(c.other_excluded, 40u);
    EXPECT_EQ(c.other_excluded_base_right, 40u);
    const auto counts = paired_counts(c);
    EXPECT_EQ(counts.n(), 140u);
    EXPECT_EQ(counts.right_to_wrong, 40u);
    const auto v = rule_drop(absolute(0.10), scored("chat", false, c), 0.05);
    EXPECT_EQ(v.outcome, Outcome::fail) << v.message;  // 40 of 140 lost: 28.6 points, not "no drop on 100"
    EXPECT_NE(v.message.find("n=140 paired, 40 this model could not score counted wrong"), std::string::npos)
        << v.message;
    EXPECT_EQ(v.drop->unscored, 40u);
}
TEST(Rules, Capabilities) {
    EXPECT_EQ(rule_capability("s", "", {"text"}, 128).outcome, Outcome::pass);
    EXPECT_EQ(rule_capability("s", "vision", {"text"}, 128).outcome, Outcome::fail);
    EXPECT_EQ(rule_capability("s", "vision", {"text", "vision"}, 128).outcome, Outcome::pass);
    const auto ctx = rule_capability("s", "context:4096", {"text"}, 2048);
    EXPECT_EQ(ctx.outcome, Outcome::fail);
    EXPECT_EQ(ctx.message, "`s` needs a context of 4096 tokens; the model has 2048");
}

TEST(Rules, Budgets) {
    Policy policy;
    CostScore cost = timed(1.0);
    cost.peak_rss_bytes = 64u << 20;
    cost.p95_latency_ms = 40;
    EXPECT_EQ(rule_budgets(policy, cost).message, "no budget set");
    policy.budgets.memory_bytes = 32u << 20;
    policy.budgets.p95_latency_ms = 50;
    const auto over = rule_budgets(policy, cost);
    EXPECT_EQ(over.outcome, Outcome::fail);
    EXPECT_EQ(over.message, "peak memory 64.0 MiB > 32.0 MiB -> over budget");
    policy.budgets.memory_bytes = 128u << 20;
    EXPECT_EQ(rule_budgets(policy, cost).outcome, Outcome::pass);
    // A cost budget in dollars per 1M tokens: $1e-6 per query of 192 tokens is $0.00521 per 1M.
    policy.budgets.cost_per_1k_tokens = 0.004e-3;
    EXPECT_EQ(rule_budgets(policy, cost).message, "cost $0.00521 > $0.00400 per 1M tokens -> over budget");
    policy.budgets.cost_per_1k_tokens = 0.006e-3;
    EXPECT_EQ(rule_budgets(policy, cost).outcome, Outcome::pass);
}

// Unknown is never 0: a cost that could not be measured (a model that stops, an endpoint that
// declares none) passes no cost budget and never wins on cost.
TEST(Rules, UnknownCostFailsCostBudgetsAndNeverWinsOnCost) {
    Policy policy;
    policy.deployment.price_per_hour = 1;
    policy.budgets.cost_per_1k_tokens = 1.0;  // any known cost here meets it
    const CostScore failed{.reference = "orig",
                           .unknown = "speed: m.gguf produced no text before the end of any query"};
    EXPECT_FALSE(failed.cost_known());
    EXPECT_FALSE(CostScore{}.cost_known()) << "a cost of 0 is not a known cost";
    const auto v = rule_budgets(policy, failed);
    EXPECT_EQ(v.outcome, Outcome::fail);
    EXPECT_NE(v.message.find("cost unknown (speed: m.gguf produced no text"), std::string::npos) << v.message;
    EXPECT_EQ(compare_costs(failed, timed(1.0)).order, CostOrder::unknown);
    EXPECT_EQ(compare_costs(timed(1.0), failed).order, CostOrder::unknown);

    policy.budgets = {};
    auto paid = candidate("paid", CandidateKind::variant, 4u << 20, {});
    auto broken = candidate("broken", CandidateKind::variant, 1u << 20, {});
    auto served = candidate("served", CandidateKind::alternative, 0, {});
    served.served.endpoint = "http://x/v1";
    paid.bits_per_weight = 8.5;
    broken.bits_per_weight = 2.6;  // would win every tie-break
    paid.cost = timed(3.0);
    broken.cost = failed;
    served.cost = CostScore{.remote = true, .unknown = "the endpoint declares no cost_per_1k_tokens"};
    for (const auto & order : {std::vector<const Candidate *>{&paid, &broken, &served}, {&served, &broken, &paid}}) {
        const auto pick = cheapest(policy, order);
        EXPECT_EQ(pick.chosen->name, "paid");
        EXPECT_TRUE(pick.by_cost);
        EXPECT_NE(pick.decided_by.find("2 with an unknown cost cannot win on cost"), std::string::npos)
            << pick.decided_by;
    }
    // Only unknown costs: step 2 decides, and says why.
    const auto none = cheapest(policy, {&broken, &served});
    EXPECT_EQ(none.chosen->name, "broken");
    EXPECT_FALSE(none.by_cost);
    EXPECT_EQ(none.decided_by,
              "no cost known; decided by step 2 of 2: served remotely (ranks after every local file) vs served");
    // The search never skips a cheaper model for an unknown cost, nor measures it to win on cost.
    EXPECT_EQ(
        cannot_change_choice(policy, {&paid}, broken),
        "cost unknown (speed: m.gguf produced no text before the end of any query), so it cannot win on cost against paid, which passes: R7 would not "
        "choose it even if it passed");
}

TEST(Rules, AgreementAndScreen) {
    Policy policy;
    EXPECT_EQ(rule_agreement(policy, std::nullopt, 0.05).outcome, Outcome::pass);
    policy.min_agreement = 0.9;
    EXPECT_EQ(rule_agreement(policy, std::nullopt, 0.05).outcome, Outcome::fail);
    EXPECT_EQ(rule_agreement(policy, DriftScore{.top1_agreement = 0.95, .positions = 1000}, 0.05).outcome,
              Outcome::pass);
    EXPECT_EQ(
        rule_agreement(policy, DriftScore{.top1_agreement = 0.85, .positions = 1000}, 0.05).message,
        "top-1 agreement with the original 85.0% [83.0, 86.8] over 1000 positions of the screen (each bound one-sided at 0.05) upper bound < 90.0%");
    // Close to the threshold on few positions: undecided, with its own id.
    const auto close = rule_agreement(policy, DriftScore{.top1_agreement = 0.91, .positions = 100}, 0.05);
    EXPECT_EQ(close.id(), "R6-insufficient");
    // A score recorded without its positions cannot be judged.
    EXPECT_EQ(rule_agreement(policy, DriftScore{.top1_agreement = 0.95}, 0.05).outcome, Outcome::insufficient);
    EXPECT_EQ(rule_screen(policy, DriftScore{.kld_mean = 0.05}).outcome, Outcome::pass);
    EXPECT_EQ(rule_screen(policy, DriftScore{.kld_mean = 1.5}).outcome, Outcome::fail);
}

TEST(Rules, ItemsNeeded) {
    EXPECT_EQ(items_needed(100, 0.1, 0.05), 400u);
    EXPECT_EQ(items_needed(250, 0.03, 0.03), 250u);
    EXPECT_EQ(items_needed(100, 0.1, 0.0), 0u);
}

// compare_costs on constructed numbers: "costlier" only when the ratio's whole interval lies above
// 1.10, "cheaper" only below 1/1.10, a tie otherwise; two candidates timed against the same
// reference compare by their ratios (half-widths in quadrature), others by cost per query.
TEST(Costs, CompareCostsIsATieInsideTheBand) {
    const auto a = timed(1.04), b = timed(1.0);
    auto c = compare_costs(a, b);
    EXPECT_EQ(c.order, CostOrder::tie);
    EXPECT_NEAR(c.ratio, 1.04, 1e-9);
    const double h = std::hypot(std::log1p(0.03), std::log1p(0.03));
    EXPECT_NEAR(c.lo, 1.04 * std::exp(-h), 1e-9);
    EXPECT_NEAR(c.hi, 1.04 * std::exp(h), 1e-9);
    EXPECT_EQ(c.text(), "ratio 1.04 [1.00, 1.08]");
    // A point estimate 15% above is still a tie while its interval reaches under 1.10 ...
    EXPECT_EQ(compare_costs(timed(1.15, 0.05), timed(1.0, 0.05)).order, CostOrder::tie);
    // ... and costlier once the whole interval is above it; symmetric below.
    EXPECT_EQ(compare_costs(timed(1.25), timed(1.0)).order, CostOrder::costlier);
    EXPECT_EQ(compare_costs(timed(1.0), timed(1.25)).order, CostOrder::cheaper);
    EXPECT_EQ(compare_costs(timed(0.5, 0.03), timed(1.0, 0)).order, CostOrder::cheaper);
    // The reference itself: ratio 1, no width of its own.
    EXPECT_EQ(compare_costs(timed(1.12, 0.01), timed(1.0, 0)).order, CostOrder::costlier);
    EXPECT_EQ(compare_costs(timed(1.12, 0.03), timed(1.0, 0)).order, CostOrder::tie);
    // Against another reference (or a served model): by cost per query and its interval.
    const CostScore declared{.remote = true,
                             .cost_per_query = 2e-6,
                             .cost_lo = 2e-6,
                             .cost_hi = 2e-6,
                             .cost_per_1m_tokens = 2e-6 * 1e6 / 192};
    EXPECT_EQ(compare_costs(declared, timed(1.0)).order, CostOrder::costlier);
    EXPECT_NEAR(compare_costs(declared, timed(1.0)).ratio, 2.0, 1e-9);
    EXPECT_EQ(compare_costs(timed(1.0, 0.03, "x"), timed(1.05, 0.03, "y")).order, CostOrder::tie);
}

// R7 in two steps: (1) not measurably costlier than the cheapest; (2) of those, the fewest bits
// per weight, then the smallest file, then the name; in every order of the input the same answer,
// and the reason names the step.
TEST(Choice, CheapestIsTwoWellDefinedSteps) {
    Policy policy;
    policy.deployment.price_per_hour = 1;
    std::vector<Candidate> c = {
        candidate("a", CandidateKind::variant, 3u << 20, {}),
        candidate("b", CandidateKind::variant, 2u << 20, {}),
        candidate("c", CandidateKind::variant, 1u << 20, {}),
        candidate("d", CandidateKind::alternative, 1u << 19, {}),
    };
    c[0].bits_per_weight = 4.5;
    c[1].bits_per_weight = 4.5;
    c[2].bits_per_weight = 8.5;
    c[3].bits_per_weight = 32;
    c[0].cost = timed(1.00);
    c[1].cost = timed(1.06);  // a tie with a: same bits, smaller file
    c[2].cost = timed(0.98);  // the cheapest point, but more bits per weight
    c[3].cost = timed(1.60);  // measurably costlier than the cheapest: out
    std::vector<const Candidate *> order = {&c[0], &c[1], &c[2], &c[3]};
    std::sort(order.begin(), order.end());
    do {
        const auto pick = cheapest(policy, order);
        EXPECT_EQ(pick.chosen->name, "b");
        EXPECT_EQ(pick.cheapest->name, "c");
        EXPECT_EQ(pick.within_cost, 3u);
        EXPECT_FALSE(pick.by_cost);
        EXPECT_TRUE(pick.tie);
        EXPECT_EQ(
            pick.decided_by,
            "tie on cost among 3 of 4 (within 10% of the cheapest, c: b vs c ratio 1.08 [1.04, 1.13]), broken by size 3.00 MiB vs 2.00 MiB vs a");
    } while (std::next_permutation(order.begin(), order.end()));
    // Bits per weight before size: a 4.5-bit file beats a smaller 8.5-bit one in a tie.
    const auto bits = cheapest(policy, {&c[2], &c[0]});
    EXPECT_EQ(bits.chosen->name, "a");
    EXPECT_EQ(
        bits.decided_by,
        "tie on cost among 2 of 2 (within 10% of the cheapest, c: a vs c ratio 1.02 [0.98, 1.06]), broken by bits per weight 8.5 vs 4.5 vs c");
    // Through choose(), in every order of the candidates: the same answer, and the reason says "tie".
    for (const auto & first : {0, 1, 2, 3}) {
        std::vector<Candidate> rotated = {
            candidate("orig", CandidateKind::original, 8u << 20, {original_scored("chat", false, 1000, 900)})};
        rotated.front().bits_per_weight = 32;
        rotated.front().cost = timed(1.0, 0);
        for (int i = 0; i < 4; ++i) {
            auto v = c[static_cast<std::size_t>((first + i) % 4)];
            v.suites = {scored("chat", false, comparison(1000, 900, 5, 5))};
            rotated.push_back(v);
        }
        const auto d = decide_class(policy, "general", rotated);
        EXPECT_EQ(d.chosen, "b");
        EXPECT_NE(d.reason.find("R7 among 5 passing: tie on cost among 4 of 5"), std::string::npos) << d.reason;
    }
    // Only one inside the band: cost decided, with the next one's cost and ratio.
    c[0].cost = timed(1.5);
    c[1].cost = timed(1.3);
    const auto pick = cheapest(policy, {&c[0], &c[1], &c[2], &c[3]});
    EXPECT_TRUE(pick.by_cost);
    EXPECT_EQ(pick.chosen->name, "c");
    EXPECT_EQ(
        pick.decided_by,
        "cost decided: $0.00510 per 1M tokens, measurably cheaper than the other 3 (the next, b: $0.00677 per 1M tokens, ratio 1.33 [1.27, 1.38])");
    // Without a price, costs are not compared at all.
    policy.deployment.price_per_hour = 0;
    EXPECT_EQ(cheapest(policy, {&c[0], &c[1], &c[2], &c[3]}).chosen->name, "b");
    EXPECT_EQ(cheapest(policy, {&c[0], &c[1], &c[2], &c[3]}).decided_by,
              "no price_per_hour: costs are not compared; decided by step 2 of 4: size 3.00 MiB vs 2.00 MiB vs a");
}

// Timing noise does not change R7's answer: on the bundled example's candidates as the speed pass
// measured them (ratios to babyllama on the 2-core machine, -t 1: Q8_0 0.92, Q5_K_M 1.13, Q4_K_M
// 0.97, Q3_K_M 0.89, Q4_0 0.85, stories260K 0.38; intervals of ±3%, the target the rounds stop
// at), every measured speed moved by +5% or -5%, in all 2^n combinations, gives the same choice,
// with stories260K passing (critical) and without it (general, where it does not).
TEST(Choice, FivePercentOnEverySpeedNeverChangesTheChoice) {
    struct Row {
        const char * name;
        CandidateKind kind;
        double bpw, ratio;
        std::uint64_t bytes;
    };
    const std::vector<Row> measured = {{"babyllama", CandidateKind::original, 32, 1.0, 3700000},
                                       {"Q8_0", CandidateKind::variant, 8.53, 0.92, 1000000},
                                       {"Q5_K_M", CandidateKind::variant, 6.35, 1.13, 750000},
                                       {"Q4_K_M", CandidateKind::variant, 5.92, 0.97, 700000},
                                       {"Q3_K_M", CandidateKind::variant, 4.97, 0.89, 600000},
                                       {"Q4_0", CandidateKind::variant, 4.60, 0.85, 560000},
                                       {"stories260K", CandidateKind::alternative, 32, 0.38, 1100000}};
    std::vector<std::vector<Row>> sets = {measured, measured, {measured[0], measured[3]}};
    sets[1].pop_back();  // without the small model: the quantizations tie or not among themselves
    Policy policy;
    policy.deployment.price_per_hour = 0.10;
    for (const auto & rows : sets) {
        SCOPED_TRACE(rows.size());
        std::vector<Candidate> c;
        for (const auto & r : rows) {
            c.push_back(candidate(r.name, r.kind, r.bytes, {}));
            c.back().bits_per_weight = r.bpw;
        }
        std::string first;
        for (unsigned mask = 0; mask < (1u << rows.size()); ++mask) {
            std::vector<const Candidate *> all;
            for (std::size_t i = 0; i < rows.size(); ++i) {
                const double shift = (mask >> i) & 1 ? 1.05 : 0.95;
                // The reference's own time moves every ratio against it the other way.
                c[i].cost = i == 0 ? timed(1.0, 0) : timed(rows[i].ratio * shift / ((mask & 1) ? 1.05 : 0.95));
                all.push_back(&c[i]);
            }
            const auto pick = cheapest(policy, all);
            if (first.empty()) first = pick.chosen->name;
            EXPECT_EQ(pick.chosen->name, first) << "mask " << mask << ": " << pick.decided_by;
        }
        EXPECT_EQ(first, rows.size() == 7 ? "stories260K" : rows.size() == 6 ? "Q4_0" : "Q4_K_M");
    }
}

// The central scenario's search: an alternative that could win is measured even though the
// original passes; one that cannot is skipped with the exact reason, never "costlier" inside the noise.
TEST(Search, AnAlternativeIsSkippedOnlyWhenItCannotChangeTheChoice) {
    Policy policy;
    auto orig = candidate("orig", CandidateKind::original, 4u << 20, {});
    auto q5 = candidate("Q5_K_M", CandidateKind::variant, 1u << 20, {});
    auto small = candidate("small", CandidateKind::alternative, 1u << 19, {});
    auto big = candidate("big", CandidateKind::alternative, 2u << 20, {});
    EXPECT_EQ(cannot_change_choice(policy, {}, big), std::nullopt) << "nothing passes yet: everything could win";
    EXPECT_EQ(cannot_change_choice(policy, {&orig}, small), std::nullopt)
        << "the original passes, the small model could still be chosen";
    EXPECT_EQ(cannot_change_choice(policy, {&orig}, big), std::nullopt);
    EXPECT_EQ(cannot_change_choice(policy, {&orig, &q5}, small), std::nullopt);
    EXPECT_EQ(cannot_change_choice(policy, {&orig, &q5}, big),
              "larger than Q5_K_M, which passes (size 2.00 MiB vs 1.00 MiB): R7 would not choose it even if it passed");
    // With a price, a larger model can still win on cost; its speed is measured first.
    policy.deployment.price_per_hour = 1;
    q5.cost = timed(0.5);
    orig.cost = timed(1.0, 0);
    EXPECT_EQ(cannot_change_choice(policy, {&orig, &q5}, big), std::nullopt) << "cost not measured";
    big.cost = timed(0.3);
    EXPECT_EQ(cannot_change_choice(policy, {&orig, &q5}, big), std::nullopt) << "measurably cheaper to run";
    // 8% costlier is inside the noise: a tie, which step 2 settles (by size here).
    big.cost = timed(0.54);
    EXPECT_EQ(
        cannot_change_choice(policy, {&orig, &q5}, big),
        "larger than Q5_K_M, which passes (size 2.00 MiB vs 1.00 MiB; tie on cost: ratio 1.08 [1.04, 1.13]): R7 would not choose it even if it passed");
    // Out of the band, both costs named.
    big.cost = timed(0.75);
    EXPECT_EQ(
        cannot_change_choice(policy, {&orig, &q5}, big),
        "measurably costlier than Q5_K_M, which passes (the cheapest that passes: $0.00391 vs $0.00260 per 1M tokens, ratio 1.50 [1.44, 1.56]): R7 "
        "would not choose it even if it passed");
    // Over a budget: it cannot pass at all.
    policy.budgets.cost_per_1k_tokens = 0.003e-3;
    EXPECT_NE(cannot_change_choice(policy, {}, big)
                  ->find("over budget (R4-budget: cost $0.00391 > $0.00300 per 1M tokens -> over budget)"),
              std::string::npos);
}

TEST(PlanFile, ReadsDefaultsAndExpandsTheEnvironment) {
    setenv("SY_TEST_MODELS", "/models", 1);
    const auto plan = parse_plan(
        "base: ${SY_TEST_MODELS}/big.gguf\nalternatives:\n  - ${SY_TEST_UNSET:-small}/s.gguf\nvariants: auto\n"
        "tasks:\n  - spec: blimp:${SY_TEST_UNSET:-data}/b.jsonl\n    critical: true\n  - spec: t.jsonl\n",
        "plan.yaml", "/plans");
    ASSERT_TRUE(plan.base);
    EXPECT_EQ(plan.base->path, "/models/big.gguf");
    EXPECT_EQ(plan.base->name, "big");
    EXPECT_EQ(plan.alternatives.at(0).path, "/plans/small/s.gguf");
    EXPECT_EQ(plan.tasks.at(0).spec, "blimp:/plans/data/b.jsonl");
    EXPECT_EQ(plan.tasks.at(0).task_class, "critical");
    EXPECT_EQ(plan.tasks.at(1).task_class, "general");
    EXPECT_EQ(plan.variants.size(), 7u);
    EXPECT_EQ(variant_name(plan.variants.front()), "Q8_0+imatrix");
    EXPECT_DOUBLE_EQ(plan.policy.accuracy_floor, 0.80);
    EXPECT_DOUBLE_EQ(plan.policy.max_drop, 0.10);
    EXPECT_TRUE(plan.policy.drop_relative);
}

// Defect 5: a cost budget needs a price to compute costs from; a calibration outside 100-500 samples is flagged.
TEST(PlanFile, CostBudgetWithoutAPriceIsRefusedAndOddCalibrationWarned) {
    try {
        parse_plan("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  budgets:\n    cost_per_1k_tokens: 0.002\n",
                   "plan.yaml", "/p");
        ADD_FAILURE() << "a cost budget without a price was accepted";
    } catch (const switchyard::Error & e) {
        EXPECT_STREQ(
            e.what(),
            "plan.yaml:6: policy.budgets.cost_per_1k_tokens: a cost budget needs policy.deployment.price_per_hour (the hardware's price, which "
            "costs are computed from)");
    }
    EXPECT_NO_THROW(parse_plan(
        "base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  budgets: {cost_per_1k_tokens: 0.002}\n  deployment: {price_per_hour: 0.1}\n",
        "plan.yaml", "/p"));
    const auto few = parse_plan(
        "base: a.gguf\ncalibration:\n  files: [c.txt]\n  samples: 20\ntasks:\n  - spec: t.jsonl\n", "plan.yaml", "/p");
    ASSERT_EQ(few.warnings.size(), 1u);
    EXPECT_EQ(
        few.warnings[0],
        "plan.yaml:4: calibration.samples: 20 samples is outside 100-500, the range an importance matrix is meant to be computed from; "
        "fewer calibrate it on too little text, more cost time for little gain");
    EXPECT_TRUE(parse_plan("base: a.gguf\ncalibration:\n  files: [c.txt]\n  samples: 200\ntasks:\n  - spec: t.jsonl\n",
                           "plan.yaml", "/p")
                    .warnings.empty());
}

// Unknown is never 0: where candidates are priced, an endpoint must declare its cost; and speed is
// only measured on this machine's CPU, so another device is refused rather than ignored.
TEST(PlanFile, EndpointWithoutACostAndDevicesNotMeasuredAreRefused) {
    const std::string served =
        "base: a.gguf\nalternatives:\n  - name: hosted\n    endpoint: http://h/v1\ntasks:\n  - spec: t.jsonl\n";
    EXPECT_FALSE(parse_plan(served, "plan.yaml", "/p").alternatives.at(0).cost_per_1k_tokens)
        << "no price: the cost is not needed";
    EXPECT_EQ(
        plan_error(served + "policy:\n  deployment: {price_per_hour: 0.1}\n"),
        "plan.yaml:3: alternatives[0].cost_per_1k_tokens: missing: hosted is served by an endpoint whose hardware is not measured here, and the plan "
        "prices candidates (policy.deployment.price_per_hour); declare what it costs per 1k tokens");
    EXPECT_NE(
        plan_error(served + "policy:\n  budgets: {cost_per_1k_tokens: 0.002}\n  deployment: {price_per_hour: 0.1}\n")
            .find("alternatives[0].cost_per_1k_tokens: missing"),
        std::string::npos);
    const auto declared = parse_plan(
        "base: a.gguf\nalternatives:\n  - {name: hosted, endpoint: \"http://h/v1\", cost_per_1k_tokens: 0.002}\ntasks:\n  - spec: t.jsonl\n"
        "policy:\n  deployment: {price_per_hour: 0.1}\n",
        "plan.yaml", "/p");
    EXPECT_DOUBLE_EQ(*declared.alternatives.at(0).cost_per_1k_tokens, 0.002);
    EXPECT_EQ(
        plan_error(
            "base: a.gguf\nalternatives:\n  - {name: h, endpoint: \"http://h/v1\", cost_per_1k_tokens: 0}\ntasks:\n  - spec: t.jsonl\n"),
        "plan.yaml:3: alternatives[0].cost_per_1k_tokens: must be positive (a cost of 0 would win every comparison)");
    EXPECT_EQ(
        plan_error("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  deployment:\n    device: gpu\n"),
        "plan.yaml:6: policy.deployment.device: only cpu is measured here (speed runs on this machine's CPU, so costs and latency for 'gpu' would not "
        "be measured ones); found 'gpu'");
    EXPECT_EQ(
        parse_plan("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  deployment: {device: cpu}\n", "plan.yaml", "/p")
            .policy.deployment.device,
        "cpu");
    EXPECT_EQ(plan_error("base: a.gguf\ntasks:\n  - spec: t.jsonl\nspeed: {generate_tokens: 1}\n"),
              "plan.yaml:4: speed.generate_tokens: must be at least 2 (a decode rate needs tokens after the first)");
}

TEST(PlanFile, ErrorsNameTheKeyAndLine) {
    EXPECT_EQ(plan_error("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  max_drop: 1.5\n"),
              "plan.yaml:5: policy.max_drop: must lie between 0 and 1");
    EXPECT_EQ(plan_error("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  budgets:\n    memory: lots\n"),
              "plan.yaml:6: policy.budgets.memory: expected a size such as 512M or 2G, found 'lots'");
    EXPECT_EQ(plan_error("base: a.gguf\ntasks:\n  - spec: t.jsonl\n    requires: telepathy\n"),
              "plan.yaml:4: tasks[0].requires: expected vision, audio, code or context:N, found 'telepathy'");
    EXPECT_EQ(plan_error("base: a.gguf\n"),
              "plan.yaml:1: missing key 'tasks' (at least one task suite: the decision rests on them)");
    EXPECT_EQ(
        plan_error("base: ${SY_TEST_UNSET}/a.gguf\ntasks:\n  - spec: t.jsonl\n"),
        "plan.yaml:1: base: the environment variable SY_TEST_UNSET is not set (write ${SY_TEST_UNSET:-DEFAULT} to give a default)");
    EXPECT_EQ(plan_error("base: a.gguf\nvariants: [{type: Q4_0, prune: {sparsity: 2}}]\ntasks:\n  - spec: t.jsonl\n"),
              "plan.yaml:2: variants[0].prune.sparsity: must lie in [0, 1)");
    EXPECT_EQ(plan_error("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  budgets:\n    p95_latency: soon\n"),
              "plan.yaml:6: policy.budgets.p95_latency: expected a time such as 50ms or 1.5s, found 'soon'");
}

TEST(PlanFile, DraftsAreAutoNoneOrAListOfCandidatesAndFiles) {
    const std::string head =
        "base: a.gguf\nalternatives: [{name: small, path: s.gguf}, {name: hosted, endpoint: \"http://h/v1\"}]\n"
        "variants: [{type: Q8_0, imatrix: false}]\ntasks:\n  - spec: t.jsonl\n";
    const auto automatic = parse_plan(head, "plan.yaml", "/p");
    EXPECT_TRUE(automatic.drafts.automatic);
    EXPECT_EQ(automatic.drafts.max_tokens, 8);
    EXPECT_FALSE(parse_plan(head + "drafts: none\n", "plan.yaml", "/p").drafts.automatic);
    EXPECT_TRUE(parse_plan(head + "drafts: none\n", "plan.yaml", "/p").drafts.models.empty());
    const auto listed = parse_plan(head + "drafts: [Q8_0, small, d/tiny.gguf]\ndraft_max: 4\n", "plan.yaml", "/p");
    EXPECT_FALSE(listed.drafts.automatic);
    EXPECT_EQ(listed.drafts.max_tokens, 4);
    ASSERT_EQ(listed.drafts.models.size(), 3u);
    EXPECT_EQ(listed.drafts.models[0].name, "Q8_0");
    EXPECT_TRUE(listed.drafts.models[0].path.empty());
    EXPECT_EQ(listed.drafts.models[1].name, "small");
    EXPECT_EQ(listed.drafts.models[2].name, "tiny");
    EXPECT_EQ(listed.drafts.models[2].path, "/p/d/tiny.gguf");
    EXPECT_EQ(plan_error(head + "drafts: [hosted]\n"),
              "plan.yaml:6: drafts: 'hosted' is served by an endpoint: a draft runs in process beside the base, so it must be a GGUF file");
    EXPECT_EQ(plan_error(head + "draft_max: 0\n"), "plan.yaml:6: draft_max: must lie between 1 and 64 (tokens drafted per step at most)");
    EXPECT_EQ(plan_error(head + "draft_max: 65\n"), "plan.yaml:6: draft_max: must lie between 1 and 64 (tokens drafted per step at most)");
    EXPECT_EQ(plan_error("alternatives: [s.gguf]\ntasks:\n  - spec: t.jsonl\ndrafts: [s]\n"),
              "plan.yaml:4: drafts: a draft speeds up the base as it runs here: give 'base' as a GGUF file");
}
