// The decision rules on constructed measurements: each rule's verdict and numbers, and the choice per class.
#include "decide/decision.h"
#include "decide/plan.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace switchyard::decide;
using switchyard::eval::PairedComparison;

namespace {

// A comparison on n items whose drop (relative and absolute alike) is `drop` within [lo, hi].
PairedComparison comparison(std::size_t n, double drop, double lo, double hi, double p, std::size_t r2w = 0, std::size_t w2r = 0) {
    PairedComparison c;
    c.n = n;
    c.mcnemar_p = p;
    c.drop_absolute = {drop, {lo, hi}};
    c.drop_relative = {drop, {lo, hi}};
    c.right_to_wrong.assign(r2w, 1);
    c.wrong_to_right.assign(w2r, 2);
    return c;
}

SuiteScore scored(const std::string & suite, double accuracy, bool critical, std::optional<PairedComparison> vs = std::nullopt) {
    return SuiteScore{.suite = suite, .critical = critical, .n = 1000, .accuracy = accuracy, .ci95 = {accuracy - 0.02, accuracy + 0.02}, .vs_original = vs};
}

Candidate candidate(const std::string & name, CandidateKind kind, std::uint64_t bytes, std::vector<SuiteScore> suites) {
    return Candidate{.name = name, .kind = kind, .capabilities = {"text"}, .context_length = 2048, .file_bytes = bytes, .same_vocabulary = kind != CandidateKind::alternative,
                     .suites = std::move(suites)};
}

const std::vector<TaskRef> kTasks = {{.suite = "facts", .task_class = "critical", .critical = true}, {.suite = "chat", .task_class = "general"}};

ClassDecision decide_class(const Policy & policy, const std::string & cls, const std::vector<Candidate> & candidates, std::vector<Assessment> * out = nullptr) {
    std::vector<const Candidate *> pointers;
    std::vector<Assessment> assessments;
    const bool has_original = candidates.front().kind == CandidateKind::original;
    for (const auto & c : candidates) {
        pointers.push_back(&c);
        assessments.push_back(assess(policy, c, cls, kTasks, has_original));
    }
    if (out) *out = assessments;
    return choose(policy, cls, pointers, assessments);
}

}  // namespace

TEST(Rules, FloorOnCriticalTasks) {
    const Policy policy;
    const auto pass = rule_floor(policy, scored("facts", 0.85, true));
    EXPECT_EQ(pass.outcome, Outcome::pass);
    EXPECT_EQ(pass.rule, "R2-floor");
    const auto fail = rule_floor(policy, scored("facts", 0.79, true));
    EXPECT_EQ(fail.outcome, Outcome::fail);
    EXPECT_EQ(fail.message, "accuracy 79.0% [77.0, 81.0] on `facts` (critical, n=1000) < floor 80.0%");
}

TEST(Rules, DropCountsOnlyWhenThePairedTestSupportsIt) {
    const Policy policy;  // max_drop 10% relative, alpha 0.05
    const auto within = rule_drop(policy, scored("facts", 0.8, true, comparison(1000, 0.02, -0.01, 0.05, 0.2)));
    EXPECT_EQ(within.outcome, Outcome::pass);
    const auto too_much = rule_drop(policy, scored("facts", 0.7, true, comparison(1000, 0.124, 0.079, 0.168, 0.003, 130, 6)));
    EXPECT_EQ(too_much.outcome, Outcome::fail);
    EXPECT_EQ(too_much.message,
              "drop 12.4% [7.9, 16.8] on `facts` (critical) (n=1000, 130 right->wrong, 6 wrong->right), p=0.003 > max_drop 10.0% -> too compressed");
    // Large point drop, but the test does not support it: not enough items to say.
    const auto unsure = rule_drop(policy, scored("facts", 0.7, true, comparison(100, 0.15, -0.05, 0.35, 0.09)));
    EXPECT_EQ(unsure.outcome, Outcome::insufficient);
    EXPECT_EQ(unsure.items_needed, 1600u);  // half-width 0.20 down to the margin 0.05: 100 x 16
    // Small point drop whose interval still reaches past the limit.
    const auto straddles = rule_drop(policy, scored("facts", 0.8, true, comparison(100, 0.05, -0.05, 0.15, 0.3)));
    EXPECT_EQ(straddles.outcome, Outcome::insufficient);
    EXPECT_EQ(straddles.items_needed, 400u);
    EXPECT_NE(straddles.message.find("about 400 items would settle it"), std::string::npos) << straddles.message;
}

TEST(Rules, DropInPointsWhenAbsolute) {
    Policy policy;
    policy.drop_relative = false;
    policy.max_drop = 0.05;
    auto c = comparison(1000, 0.0, 0.0, 0.0, 0.01);
    c.drop_absolute = {0.06, {0.04, 0.08}};
    c.drop_relative = {0.02, {0.01, 0.03}};
    const auto v = rule_drop(policy, scored("facts", 0.7, false, c));
    EXPECT_EQ(v.outcome, Outcome::fail);
    EXPECT_NE(v.message.find("drop 6.0 points [4.0, 8.0]"), std::string::npos) << v.message;
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
    const CostScore cost{.peak_rss_bytes = 64u << 20, .p95_latency_ms = 40, .cost_per_1k_tokens = 0.002};
    EXPECT_EQ(rule_budgets(policy, cost).message, "no budget set");
    policy.budgets.memory_bytes = 32u << 20;
    policy.budgets.p95_latency_ms = 50;
    const auto over = rule_budgets(policy, cost);
    EXPECT_EQ(over.outcome, Outcome::fail);
    EXPECT_EQ(over.message, "peak memory 64.0 MiB > 32.0 MiB -> over budget");
    policy.budgets.memory_bytes = 128u << 20;
    EXPECT_EQ(rule_budgets(policy, cost).outcome, Outcome::pass);
}

TEST(Rules, AgreementAndScreen) {
    Policy policy;
    EXPECT_EQ(rule_agreement(policy, std::nullopt).outcome, Outcome::pass);
    policy.min_agreement = 0.9;
    EXPECT_EQ(rule_agreement(policy, std::nullopt).outcome, Outcome::fail);
    EXPECT_EQ(rule_agreement(policy, DriftScore{.top1_agreement = 0.95}).outcome, Outcome::pass);
    EXPECT_EQ(rule_agreement(policy, DriftScore{.top1_agreement = 0.85}).message, "top-1 agreement with the original 85.0% < 90.0%");
    EXPECT_EQ(rule_screen(policy, DriftScore{.kld_mean = 0.05}).outcome, Outcome::pass);
    EXPECT_EQ(rule_screen(policy, DriftScore{.kld_mean = 1.5}).outcome, Outcome::fail);
}

TEST(Rules, ItemsNeeded) {
    EXPECT_EQ(items_needed(100, 0.1, 0.05), 400u);
    EXPECT_EQ(items_needed(250, 0.03, 0.03), 250u);
    EXPECT_EQ(items_needed(100, 0.1, 0.0), 0u);
}

TEST(Choice, CheapestPassingVariantWithTheOriginalAsBackup) {
    const Policy policy;
    const std::vector<Candidate> c = {
        candidate("orig", CandidateKind::original, 4000, {scored("facts", 0.90, true)}),
        candidate("q8", CandidateKind::variant, 1100, {scored("facts", 0.90, true, comparison(1000, 0.0, -0.01, 0.01, 1.0))}),
        candidate("q4", CandidateKind::variant, 600, {scored("facts", 0.88, true, comparison(1000, 0.02, 0.0, 0.04, 0.04))}),
        candidate("q2", CandidateKind::variant, 400, {scored("facts", 0.60, true, comparison(1000, 0.33, 0.29, 0.37, 1e-9))}),
    };
    std::vector<Assessment> assessments;
    const auto d = decide_class(policy, "critical", c, &assessments);
    EXPECT_EQ(d.action, Action::compress);
    EXPECT_EQ(d.chosen, "q4");
    EXPECT_EQ(d.backup, "orig");
    EXPECT_EQ(d.rule, "R7-cheapest");
    EXPECT_FALSE(d.flagged);
    EXPECT_EQ(assessments[3].outcome, Outcome::fail);
    EXPECT_EQ(assessments[3].first(Outcome::fail)->rule, "R2-floor");
}

TEST(Choice, TooCompressedEverywhereSwitchesToThePassingSmallModel) {
    const Policy policy;
    const std::vector<Candidate> c = {
        candidate("orig", CandidateKind::original, 4000, {scored("facts", 0.90, true)}),
        candidate("q4", CandidateKind::variant, 600, {scored("facts", 0.78, true, comparison(1000, 0.13, 0.09, 0.17, 0.001))}),
        candidate("small", CandidateKind::alternative, 300, {scored("facts", 0.86, true, comparison(1000, 0.04, 0.01, 0.07, 0.01))}),
    };
    const auto d = decide_class(policy, "critical", c);
    EXPECT_EQ(d.action, Action::switch_model);
    EXPECT_EQ(d.chosen, "small");
    EXPECT_EQ(d.backup, "orig");
    EXPECT_EQ(d.rule, "R2-floor");  // q4's first failure (the floor), which ruled compression out
}

TEST(Choice, MissingCapabilitySwitches) {
    const Policy policy;
    const std::vector<TaskRef> tasks = {{.suite = "code", .task_class = "coding", .critical = false, .needs = "code"}};
    auto orig = candidate("orig", CandidateKind::original, 4000, {scored("code", 0.9, false)});
    auto coder = candidate("coder", CandidateKind::alternative, 5000, {scored("code", 0.92, false, comparison(1000, -0.02, -0.04, 0.0, 0.1))});
    coder.capabilities.push_back("code");
    EXPECT_FALSE(capable(orig, "coding", tasks));
    EXPECT_TRUE(capable(coder, "coding", tasks));
    const std::vector<Assessment> a = {assess(policy, orig, "coding", tasks, false), assess(policy, coder, "coding", tasks, false)};
    const auto d = choose(policy, "coding", {&orig, &coder}, a);
    EXPECT_EQ(d.action, Action::switch_model);
    EXPECT_EQ(d.chosen, "coder");
    EXPECT_EQ(d.rule, "R1-capability");
}

TEST(Choice, BudgetsUnmetSwitch) {
    Policy policy;
    policy.budgets.memory_bytes = 100;
    auto orig = candidate("orig", CandidateKind::original, 4000, {scored("chat", 0.9, false)});
    auto q8 = candidate("q8", CandidateKind::variant, 1100, {scored("chat", 0.9, false, comparison(1000, 0.0, -0.01, 0.01, 1.0))});
    auto small = candidate("small", CandidateKind::alternative, 300, {scored("chat", 0.88, false, comparison(1000, 0.02, 0.0, 0.05, 0.2))});
    orig.cost = CostScore{.peak_rss_bytes = 400};
    q8.cost = CostScore{.peak_rss_bytes = 200};
    small.cost = CostScore{.peak_rss_bytes = 90};
    const auto d = decide_class(policy, "general", {orig, q8, small});
    EXPECT_EQ(d.action, Action::switch_model);
    EXPECT_EQ(d.chosen, "small");
    EXPECT_EQ(d.rule, "R4-budget");
}

TEST(Choice, NoOriginalStartsFromTheSmallModel) {
    const Policy policy;
    const std::vector<Candidate> c = {
        candidate("small", CandidateKind::alternative, 300, {scored("facts", 0.85, true)}),
        candidate("medium", CandidateKind::alternative, 900, {scored("facts", 0.91, true)}),
    };
    const auto d = decide_class(policy, "critical", c);
    EXPECT_EQ(d.action, Action::switch_model);
    EXPECT_EQ(d.chosen, "small");
    EXPECT_EQ(d.backup, "medium");
    EXPECT_EQ(d.rule, "R5-no-original");
}

TEST(Choice, NothingPassesKeepsTheOriginalAndFlagsIt) {
    const Policy policy;
    const std::vector<Candidate> c = {
        candidate("orig", CandidateKind::original, 4000, {scored("facts", 0.70, true)}),
        candidate("q4", CandidateKind::variant, 600, {scored("facts", 0.69, true, comparison(1000, 0.01, -0.01, 0.03, 0.5))}),
    };
    const auto d = decide_class(policy, "critical", c);
    EXPECT_EQ(d.action, Action::keep);
    EXPECT_EQ(d.chosen, "orig");
    EXPECT_TRUE(d.flagged);
    EXPECT_NE(d.reason.find("R2-floor"), std::string::npos) << d.reason;
}

TEST(Choice, ConsistencyPrefersCompression) {
    Policy policy;
    policy.min_agreement = 0.9;
    auto q4 = candidate("q4", CandidateKind::variant, 600, {scored("chat", 0.88, false, comparison(1000, 0.02, 0.0, 0.05, 0.2))});
    q4.drift = DriftScore{.kld_mean = 0.05, .top1_agreement = 0.95};
    const std::vector<Candidate> c = {
        candidate("orig", CandidateKind::original, 4000, {scored("chat", 0.9, false)}),
        q4,
        candidate("small", CandidateKind::alternative, 300, {scored("chat", 0.89, false, comparison(1000, 0.01, 0.0, 0.03, 0.5))}),
    };
    const auto d = decide_class(policy, "general", c);
    EXPECT_EQ(d.action, Action::compress);
    EXPECT_EQ(d.chosen, "q4");
}

TEST(Choice, InsufficientEvidenceIsNotAPass) {
    const Policy policy;
    std::vector<Assessment> a;
    const std::vector<Candidate> c = {
        candidate("orig", CandidateKind::original, 4000, {scored("chat", 0.9, false)}),
        candidate("q4", CandidateKind::variant, 600, {scored("chat", 0.85, false, comparison(50, 0.06, -0.04, 0.16, 0.3))}),
    };
    const auto d = decide_class(policy, "general", c, &a);
    EXPECT_EQ(d.action, Action::keep);
    EXPECT_EQ(a[1].outcome, Outcome::insufficient);
    EXPECT_EQ(a[1].first(Outcome::insufficient)->items_needed, 313u);  // 50 x (0.10 / 0.04)^2
}

TEST(Choice, CostCloserThanTenPercentIsANoiseTieBrokenBySize) {
    Policy policy;
    policy.deployment.price_per_hour = 1;
    auto a = candidate("a", CandidateKind::variant, 1000, {});
    auto b = candidate("b", CandidateKind::variant, 600, {});
    a.cost = CostScore{.cost_per_1k_tokens = 0.0100};
    b.cost = CostScore{.cost_per_1k_tokens = 0.0105};
    EXPECT_TRUE(cheaper(policy, b, a));
    b.cost->cost_per_1k_tokens = 0.02;
    EXPECT_TRUE(cheaper(policy, a, b));
}

TEST(PlanFile, ReadsDefaultsAndExpandsTheEnvironment) {
    setenv("SY_TEST_MODELS", "/models", 1);
    const auto plan = parse_plan("base: ${SY_TEST_MODELS}/big.gguf\nalternatives:\n  - ${SY_TEST_UNSET:-small}/s.gguf\nvariants: auto\n"
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

TEST(PlanFile, ErrorsNameTheKeyAndLine) {
    auto error_of = [](const std::string & yaml) {
        try {
            parse_plan(yaml, "plan.yaml", "/p");
        } catch (const switchyard::Error & e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(error_of("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  max_drop: 1.5\n"), "plan.yaml:5: policy.max_drop: must lie between 0 and 1");
    EXPECT_EQ(error_of("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  budgets:\n    memory: lots\n"),
              "plan.yaml:6: policy.budgets.memory: expected a size such as 512M or 2G, found 'lots'");
    EXPECT_EQ(error_of("base: a.gguf\ntasks:\n  - spec: t.jsonl\n    requires: telepathy\n"),
              "plan.yaml:4: tasks[0].requires: expected vision, audio, code or context:N, found 'telepathy'");
    EXPECT_EQ(error_of("base: a.gguf\n"), "plan.yaml:1: missing key 'tasks' (at least one task suite: the decision rests on them)");
    EXPECT_EQ(error_of("base: ${SY_TEST_UNSET}/a.gguf\ntasks:\n  - spec: t.jsonl\n"),
              "plan.yaml:1: base: the environment variable SY_TEST_UNSET is not set (write ${SY_TEST_UNSET:-DEFAULT} to give a default)");
    EXPECT_EQ(error_of("base: a.gguf\nvariants: [{type: Q4_0, prune: {sparsity: 2}}]\ntasks:\n  - spec: t.jsonl\n"),
              "plan.yaml:2: variants[0].prune.sparsity: must lie in [0, 1)");
    EXPECT_EQ(error_of("base: a.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  budgets:\n    p95_latency: soon\n"),
              "plan.yaml:6: policy.budgets.p95_latency: expected a time such as 50ms or 1.5s, found 'soon'");
}
