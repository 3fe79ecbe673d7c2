// The search and the decision through the planner's own path (search_and_decide) on scripted
// measurements: a fake measurement layer answers only what the search asks for, so each test
// sees what the planner would measure, skip and decide. Then the guarantee, by simulation.
#include "decide/search.h"
#include "decide/simulation.h"
#include "decide/plan_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <random>

using namespace switchyard::decide;
namespace eval = switchyard::eval;

namespace {

// What a candidate scores on a suite: of the original's items, `lost` it gets wrong that the
// original got right, `gained` right that the original got wrong, `unscored` (of the original's
// right ones) it cannot score at all.
struct Script {
    std::size_t lost = 0;
    std::size_t gained = 0;
    std::size_t unscored = 0;
};

// The original's outcomes are fixed per suite (items, right); each candidate's come from its script.
class FakeScores : public MeasurementSource {
public:
    std::map<std::string, std::pair<std::size_t, std::size_t>> originals;  // suite -> items, right
    std::map<std::string, std::map<std::string, Script>> scripts;  // candidate -> suite -> script
    std::map<std::string, CostScore> costs;
    std::vector<std::string> evaluated;  // "candidate/class", in the order asked
    std::vector<TaskRef> tasks;

    std::size_t items_read = 0;  // over every look: the largest prefix asked for each model and suite

    // The scripted outcomes, read in a fixed shuffled order (as the planner reads a suite), so any
    // prefix is a fair sample of the script.
    SuiteScore score(const Candidate & c, const TaskRef & t, std::size_t items) override {
        if (std::find(evaluated.begin(), evaluated.end(), c.name + "/" + t.task_class) == evaluated.end())
            evaluated.push_back(c.name + "/" + t.task_class);
        auto & read = read_[c.name + "/" + t.suite];
        items_read += items - std::min(items, read);
        read = std::max(read, items);
        const auto base = prefix(original(t.suite), items);
        if (c.kind == CandidateKind::original) return suite_score(t.suite, t.critical, base, nullptr);
        return suite_score(t.suite, t.critical, prefix(other(original(t.suite), scripts[c.name][t.suite]), items),
                           &base);
    }

    void measure_cost(Candidate & c) override {
        if (costs.count(c.name)) c.cost = costs.at(c.name);
    }

    bool was_evaluated(const std::string & name, const std::string & cls) const {
        return std::find(evaluated.begin(), evaluated.end(), name + "/" + cls) != evaluated.end();
    }

private:
    std::map<std::string, std::size_t> read_;

    static eval::SuiteResult prefix(const eval::SuiteResult & whole, std::size_t items) {
        std::vector<std::size_t> order(whole.outcomes.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::mt19937_64 rng(7);
        for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
        eval::SuiteResult r;
        r.suite.content_hash = whole.suite.content_hash;
        for (std::size_t k = 0; k < std::min(items, order.size()); ++k) {
            const auto & o = whole.outcomes[order[k]];
            r.outcomes.push_back(o);
            r.correct += o.scored() && o.correct;
            r.scored += o.scored();
            r.too_long += o.too_long;
        }
        return r;
    }

    eval::SuiteResult original(const std::string & suite) const {
        const auto [items, right] = originals.at(suite);
        eval::SuiteResult r;
        r.suite.content_hash = suite;
        for (std::size_t i = 0; i < items; ++i) r.outcomes.push_back({.line = i + 1, .correct = i < right});
        r.scored = items;
        r.correct = right;
        return r;
    }

    static eval::SuiteResult other(const eval::SuiteResult & base, const Script & s) {
        eval::SuiteResult r = base;
        r.correct = 0;
        std::size_t lost = 0, gained = 0, unscored = 0;
        for (auto & o : r.outcomes) {
            if (o.correct && unscored < s.unscored) {
                o = {.line = o.line, .too_long = true};
                ++unscored;
            } else if (o.correct && lost < s.lost) {
                o.correct = false;
                ++lost;
            } else if (!o.correct && gained < s.gained) {
                o.correct = true;
                ++gained;
            }
            r.correct += o.correct;
        }
        r.scored = base.outcomes.size() - unscored;
        r.unencodable = 0;
        r.too_long = unscored;
        return r;
    }
};

Candidate model(const std::string & name, CandidateKind kind, std::uint64_t bytes, double bits = 16,
                const std::string & ladder = "", double severity = 0) {
    return Candidate{.name = name,
                     .kind = kind,
                     .capabilities = {"text"},
                     .context_length = 2048,
                     .file_bytes = bytes,
                     .bits_per_weight = bits,
                     .same_vocabulary = kind != CandidateKind::alternative,
                     .ladder = ladder,
                     .severity = severity};
}

Candidate quant(const std::string & name, std::uint64_t bytes, double bits) {
    return model(name, CandidateKind::variant, bytes, bits, "quantize+imatrix", -bits);
}

struct Run {
    Decisions decided;
    std::vector<Candidate> candidates;
    const ClassDecision & decision(const std::string & cls) const {
        for (const auto & d : decided.decisions)
            if (d.task_class == cls) return d;
        throw std::runtime_error("no decision for " + cls);
    }
    const Candidate & candidate(const std::string & name) const {
        for (const auto & c : candidates)
            if (c.name == name) return c;
        throw std::runtime_error("no candidate " + name);
    }
};

// Runs the search and prints each class's verdict (the scenario matrix in docs/plan.md quotes them).
Run run(const Policy & policy, std::vector<Candidate> candidates, FakeScores & scores) {
    std::vector<std::string> classes;
    for (const auto & t : scores.tasks)
        if (std::find(classes.begin(), classes.end(), t.task_class) == classes.end()) classes.push_back(t.task_class);
    for (auto & t : scores.tasks) t.items = scores.originals.at(t.suite).first;
    Run r{.candidates = std::move(candidates)};
    r.decided = search_and_decide(policy, r.candidates, scores.tasks, classes, scores,
                                  {.costs_matter = policy.budgets.any() || policy.deployment.price_per_hour > 0});
    for (const auto & d : r.decided.decisions)
        std::cout << fmt::format("[ verdict  ] {}: {} {} ({}{}): {}\n", d.task_class, to_string(d.action), d.chosen,
                                 d.rule, d.flagged ? ", flagged" : "", d.reason);
    return r;
}

}  // namespace

// Finding 1: ladders are per method. A 60%-pruned Q8_0 keeps 8.5 bits per weight but is no milder
// than a Q6_K: its failure must not cut the Q6_K, which is measured and chosen.
TEST(Search, LaddersArePerMethodSoAPrunedVariantCannotHideAQuantization) {
    FakeScores scores;
    scores.tasks = {{.suite = "blimp-a", .task_class = "general"}, {.suite = "blimp-b", .task_class = "general"}};
    scores.originals = {{"blimp-a", {1000, 800}}, {"blimp-b", {1000, 850}}};
    scores.scripts["magnitude-60pct+Q8_0"] = {{"blimp-a", {.lost = 300}}, {"blimp-b", {.lost = 300}}};
    scores.scripts["Q6_K+imatrix"] = {{"blimp-a", {.lost = 10, .gained = 6}}, {"blimp-b", {.lost = 4, .gained = 5}}};
    const Policy policy;
    auto pruned = model("magnitude-60pct+Q8_0", CandidateKind::variant, 1000, 8.5,
                        "prune:magnitude/unstructured+Q8_0+imatrix", 0.6);
    const auto r = run(
        policy, {model("babyllama", CandidateKind::original, 4000), pruned, quant("Q6_K+imatrix", 800, 6.56)}, scores);
    EXPECT_TRUE(scores.was_evaluated("Q6_K+imatrix", "general"));
    const auto & d = r.decision("general");
    EXPECT_EQ(d.action, Action::compress) << d.reason;
    EXPECT_EQ(d.chosen, "Q6_K+imatrix");
    // Two families: each ladder of one at alpha / 2.
    EXPECT_NE(d.guarantee.find("2 families (0.025 each)"), std::string::npos) << d.guarantee;
    // Without the pruned variant the answer is the same: adding a candidate did not make it wrong.
    FakeScores alone = scores;
    alone.evaluated.clear();
    EXPECT_EQ(run(policy, {model("babyllama", CandidateKind::original, 4000), quant("Q6_K+imatrix", 800, 6.56)}, alone)
                  .decision("general")
                  .chosen,
              "Q6_K+imatrix");
}

// A ladder is tested in fixed sequence: mild to aggressive, every rung at the family's level, up
// to the first that does not pass. A rung beyond an undecided one is not measured (nothing can be
// claimed of it), and the verdict says so rather than "drops too much".
TEST(Search, ALadderStopsAtItsFirstRungThatDoesNotPass) {
    FakeScores scores;
    scores.tasks = {{.suite = "chat", .task_class = "general"}};
    scores.originals = {{"chat", {400, 320}}};
    scores.scripts["Q8_0"] = {{"chat", {.lost = 2, .gained = 2}}};
    scores.scripts["Q5_K_M"] = {{"chat", {.lost = 30, .gained = 4}}};  // 8.1%: straddles 10% on 400 items
    scores.scripts["Q4_0"] = {{"chat", {.lost = 3, .gained = 3}}};  // would pass, but nothing may claim it
    const Policy policy;
    const auto r = run(policy,
                       {model("orig", CandidateKind::original, 4000), quant("Q8_0", 1100, 8.5),
                        quant("Q5_K_M", 700, 5.7), quant("Q4_0", 600, 4.5)},
                       scores);
    EXPECT_TRUE(scores.was_evaluated("Q8_0", "general"));
    EXPECT_TRUE(scores.was_evaluated("Q5_K_M", "general"));
    EXPECT_FALSE(scores.was_evaluated("Q4_0", "general"));
    EXPECT_NE(r.candidate("Q4_0").not_run.at("general").find("the milder Q5_K_M did not pass here"), std::string::npos);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.chosen, "Q8_0") << d.reason;
    EXPECT_EQ(d.action, Action::compress);
}

// The scenario the product exists for: the original passes, every compression drops too much, the
// small model passes and is chosen (R3 ruled compression out).
TEST(Search, EveryCompressionDroppingTooMuchSwitchesToThePassingSmallModel) {
    FakeScores scores;
    scores.tasks = {{.suite = "chat", .task_class = "general"}};
    scores.originals = {{"chat", {1000, 900}}};
    scores.scripts["q8"] = {{"chat", {.lost = 220, .gained = 20}}};
    scores.scripts["q4"] = {{"chat", {.lost = 300, .gained = 20}}};
    scores.scripts["small"] = {{"chat", {.lost = 30, .gained = 20}}};
    const Policy policy;
    const auto r = run(policy,
                       {model("orig", CandidateKind::original, 4000), quant("q8", 1100, 8.5), quant("q4", 600, 4.5),
                        model("small", CandidateKind::alternative, 300)},
                       scores);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.action, Action::switch_model);
    EXPECT_EQ(d.chosen, "small");
    EXPECT_EQ(d.backup, "orig");
    EXPECT_EQ(d.rule, "R3-drop");
    EXPECT_FALSE(d.flagged);
    // q8's 22% drop is shown over the limit on a prefix of the suite (sequential tests).
    EXPECT_NE(d.reason.find("no compression passes (q8: R3-drop: drop 2"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("the drop is above max_drop 10.0% -> too compressed"), std::string::npos) << d.reason;
    EXPECT_FALSE(scores.was_evaluated("q4", "general")) << "the ladder stops at q8";
    EXPECT_NE(
        d.guarantee.find(
            "the chance that small in fact drops more than 10.0% versus the original on some suite of `general` is at most 0.05"),
        std::string::npos)
        << d.guarantee;
}

// Finding 8: the level is alpha over the families (ladders and alternatives), not over suites x
// candidates: five suites and eight candidates in one ladder are two families, each at 0.025.
TEST(Search, SuitesNeedNoCorrectionCandidatesAreCountedByFamily) {
    FakeScores scores;
    for (int s = 0; s < 5; ++s) {
        scores.tasks.push_back({.suite = fmt::format("s{}", s), .task_class = "general"});
        scores.originals[fmt::format("s{}", s)] = {500, 400};
    }
    std::vector<Candidate> candidates = {model("orig", CandidateKind::original, 10000)};
    for (int i = 0; i < 7; ++i) {
        candidates.push_back(quant(fmt::format("q{}", i), 5000 - 500 * static_cast<std::uint64_t>(i), 8.0 - i));
        for (int s = 0; s < 5; ++s)
            scores.scripts[fmt::format("q{}", i)][fmt::format("s{}", s)] = {.lost = 6, .gained = 3};
    }
    candidates.push_back(model("small", CandidateKind::alternative, 100));
    for (int s = 0; s < 5; ++s) scores.scripts["small"][fmt::format("s{}", s)] = {.lost = 200};
    const Policy policy;
    const auto r = run(policy, candidates, scores);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.chosen, "q6") << d.reason;
    EXPECT_NE(d.guarantee.find("2 families (0.025 each)"), std::string::npos) << d.guarantee;
    // Each suite's looks share the family's 0.025 (group-sequential spending): a bound is taken at
    // its look's nominal level, at most 0.025; one look at the end is 0.025 itself.
    for (const auto & a : r.decided.assessments)
        for (const auto & v : a.verdicts)
            if (v.drop) {
                EXPECT_LE(v.drop->alpha, 0.025);
                if (v.looks == 1) {
                    EXPECT_EQ(v.drop->alpha, 0.025);
                }
            }
}

// Finding 2: where the original cannot serve (R1), every suite is judged against the floor with
// its interval: a model at 60% is not handed the class for carrying a declared label.
TEST(Search, AClassTheOriginalCannotServeJudgesEverySuiteAgainstTheFloor) {
    FakeScores scores;
    scores.tasks = {{.suite = "code", .task_class = "coding", .needs = "code"}};
    scores.originals = {{"code", {1000, 900}}};
    scores.scripts["coder"] = {{"code", {.lost = 300}}};  // 60%
    auto coder = model("coder", CandidateKind::alternative, 5000);
    coder.capabilities.push_back("code");
    Policy policy;
    policy.sequential = false;  // every item read, so the figures are the script's own
    auto r = run(policy, {model("orig", CandidateKind::original, 4000), coder}, scores);
    auto d = r.decision("coding");
    EXPECT_TRUE(d.flagged) << d.reason;
    EXPECT_EQ(d.rule, "none-passes");
    EXPECT_NE(d.reason.find("R2-floor: accuracy 60.0%"), std::string::npos) << d.reason;
    // At 85% it passes the floor; the original, ruled out by the label alone, measurably beats
    // it, and the verdict says so.
    scores.scripts["coder"] = {{"code", {.lost = 50}}};
    scores.evaluated.clear();
    r = run(policy, {model("orig", CandidateKind::original, 4000), coder}, scores);
    d = r.decision("coding");
    EXPECT_EQ(d.action, Action::switch_model);
    EXPECT_EQ(d.chosen, "coder");
    EXPECT_EQ(d.rule, "R1-capability");
    EXPECT_NE(
        d.reason.find(
            "note: the original, ruled out only by a capability the class declares (R1), scores measurably higher on `code`: 90.0% vs 85.0%"),
        std::string::npos)
        << d.reason;
    EXPECT_NE(d.guarantee.find("scores under the floor 80.0%"), std::string::npos) << d.guarantee;
}

// Finding 2 (R5): no original: the alternatives are judged against the floor on every suite,
// critical or not; a suite with nothing scored is not measurable.
TEST(Search, WithoutAnOriginalEverySuiteMeetsTheFloor) {
    FakeScores scores;
    scores.tasks = {{.suite = "chat", .task_class = "general"}};
    // With no original, the fake's "original" outcomes are what each alternative's script changes.
    scores.originals = {{"chat", {500, 500}}};
    scores.scripts["small"] = {{"chat", {.lost = 250}}};  // 50%
    scores.scripts["medium"] = {{"chat", {.lost = 60}}};  // 88%
    const Policy policy;
    auto r =
        run(policy, {model("small", CandidateKind::alternative, 300), model("medium", CandidateKind::alternative, 900)},
            scores);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.chosen, "medium") << d.reason;
    EXPECT_EQ(d.rule, "R5-no-original");
    scores.scripts["medium"] = {{"chat", {.unscored = 500}}};
    scores.evaluated.clear();
    r = run(policy, {model("small", CandidateKind::alternative, 300), model("medium", CandidateKind::alternative, 900)},
            scores);
    EXPECT_TRUE(r.decision("general").flagged);
    bool not_measurable = false;
    for (const auto & a : r.decided.assessments)
        for (const auto & v : a.verdicts)
            not_measurable = not_measurable || v.message.find("is not measurable") != std::string::npos;
    EXPECT_TRUE(not_measurable);
}

// Finding 3: items a candidate could not score are wrong for it: a short-context model that reads
// only the easy 40% does not pass on them.
TEST(Search, ACandidateThatCannotReadTheHardItemsDoesNotPassOnTheEasyOnes) {
    FakeScores scores;
    scores.tasks = {{.suite = "long", .task_class = "general"}};
    scores.originals = {{"long", {500, 450}}};
    scores.scripts["short-context"] = {{"long", {.unscored = 300}}};
    Policy policy;
    policy.sequential = false;  // every item read, so the figures are the script's own
    const auto r = run(
        policy, {model("orig", CandidateKind::original, 4000), model("short-context", CandidateKind::alternative, 300)},
        scores);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.chosen, "orig");
    const auto & c = r.candidate("short-context");
    ASSERT_NE(c.suite("long"), nullptr);
    EXPECT_EQ(c.suite("long")->excluded, 300u);
    bool counted = false;
    for (const auto & a : r.decided.assessments)
        if (a.candidate == "short-context")
            for (const auto & v : a.verdicts)
                counted = counted || (v.drop && v.drop->unscored == 300 && v.outcome == Outcome::fail);
    EXPECT_TRUE(counted);
}

// Finding 8: a verdict that rests on insufficient evidence says so in its rule id and is flagged.
TEST(Search, AVerdictOnInsufficientEvidenceIsFlaggedWithItsOwnId) {
    FakeScores scores;
    scores.tasks = {{.suite = "chat", .task_class = "general"}};
    scores.originals = {{"chat", {100, 90}}};
    scores.scripts["q4"] = {{"chat", {.lost = 8, .gained = 2}}};
    const Policy policy;
    const auto r = run(policy, {model("orig", CandidateKind::original, 4000), quant("q4", 600, 4.5)}, scores);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.action, Action::keep);
    EXPECT_EQ(d.rule, "R3-insufficient");
    EXPECT_TRUE(d.flagged);
    EXPECT_NE(d.reason.find("no compression passes (q4: R3-insufficient: drop 6.7% ["), std::string::npos) << d.reason;
    // A small model that passes is chosen; the verdict still rests on the undecided compression
    // (more items might have kept babyllama's family), so it is flagged, but its claim stands.
    scores.scripts["small"] = {{"chat", {.lost = 1, .gained = 1}}};
    scores.originals = {{"chat", {400, 360}}};
    scores.scripts["q4"] = {{"chat", {.lost = 32, .gained = 8}}};
    const auto switched = run(policy,
                              {model("orig", CandidateKind::original, 4000), quant("q4", 600, 4.5),
                               model("small", CandidateKind::alternative, 300)},
                              scores);
    const auto & s = switched.decision("general");
    EXPECT_EQ(s.chosen, "small") << s.reason;
    EXPECT_EQ(s.rule, "R3-insufficient");
    EXPECT_TRUE(s.flagged);
    EXPECT_NE(s.guarantee.find("the chance that small in fact drops more than 10.0%"), std::string::npos)
        << s.guarantee;
}

// The original under the floor on a critical suite (measurably): switch to a model that clears it.
TEST(Search, AnOriginalUnderTheFloorSwitches) {
    FakeScores scores;
    scores.tasks = {{.suite = "facts", .task_class = "critical", .critical = true}};
    scores.originals = {{"facts", {1000, 700}}};
    scores.scripts["q4"] = {{"facts", {.lost = 20, .gained = 10}}};
    scores.scripts["small"] = {{"facts", {.lost = 20, .gained = 220}}};
    Policy policy;
    policy.sequential = false;  // every item read, so the figures are the script's own
    const auto r = run(policy,
                       {model("orig", CandidateKind::original, 4000), quant("q4", 600, 4.5),
                        model("small", CandidateKind::alternative, 300)},
                       scores);
    const auto & d = r.decision("critical");
    EXPECT_EQ(d.action, Action::switch_model) << d.reason;
    EXPECT_EQ(d.chosen, "small");
    EXPECT_EQ(d.rule, "R2-floor");
    EXPECT_NE(d.reason.find("the original: R2-floor: accuracy 70.0%"), std::string::npos) << d.reason;
}

// Budgets: the original and its compression pass on accuracy but not in memory; the small model fits.
TEST(Search, ABudgetNoCompressionMeetsSwitches) {
    FakeScores scores;
    scores.tasks = {{.suite = "chat", .task_class = "general"}};
    scores.originals = {{"chat", {1000, 900}}};
    scores.scripts["q8"] = {{"chat", {.lost = 5, .gained = 5}}};
    scores.scripts["small"] = {{"chat", {.lost = 15, .gained = 5}}};
    scores.costs = {{"orig", CostScore{.peak_rss_bytes = 400u << 20}},
                    {"q8", CostScore{.peak_rss_bytes = 200u << 20}},
                    {"small", CostScore{.peak_rss_bytes = 90u << 20}}};
    Policy policy;
    policy.budgets.memory_bytes = 100u << 20;
    const auto r = run(policy,
                       {model("orig", CandidateKind::original, 4000), quant("q8", 1100, 8.5),
                        model("small", CandidateKind::alternative, 300)},
                       scores);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.action, Action::switch_model) << d.reason;
    EXPECT_EQ(d.chosen, "small");
    EXPECT_EQ(d.rule, "R4-budget");
    EXPECT_NE(d.reason.find("the original: R4-budget: peak memory 400.0 MiB > 100.0 MiB -> over budget"),
              std::string::npos)
        << d.reason;
}

// Nothing passes: the original stays, flagged for a person.
TEST(Search, NothingPassingKeepsTheOriginalFlagged) {
    FakeScores scores;
    scores.tasks = {{.suite = "facts", .task_class = "critical", .critical = true}};
    scores.originals = {{"facts", {1000, 600}}};
    scores.scripts["q4"] = {{"facts", {.lost = 20, .gained = 10}}};
    const Policy policy;
    const auto r = run(policy, {model("orig", CandidateKind::original, 4000), quant("q4", 600, 4.5)}, scores);
    const auto & d = r.decision("critical");
    EXPECT_EQ(d.action, Action::keep);
    EXPECT_TRUE(d.flagged);
    EXPECT_EQ(d.rule, "none-passes");
    EXPECT_EQ(d.guarantee, "none: no candidate passed every rule");
}

// Consistency: with min_agreement, R6 judges compressions by their agreement with the original;
// an alternative (another vocabulary) cannot be judged by it, so consistency prefers compression.
TEST(Search, ConsistencyPrefersCompression) {
    FakeScores scores;
    scores.tasks = {{.suite = "chat", .task_class = "general"}};
    scores.originals = {{"chat", {1000, 900}}};
    scores.scripts["q4"] = {{"chat", {.lost = 20, .gained = 10}}};
    scores.scripts["small"] = {{"chat", {.lost = 10, .gained = 10}}};
    Policy policy;
    policy.min_agreement = 0.9;
    auto q4 = quant("q4", 600, 4.5);
    q4.drift = DriftScore{.kld_mean = 0.05, .top1_agreement = 0.95, .positions = 2000};
    const auto r =
        run(policy, {model("orig", CandidateKind::original, 4000), q4, model("small", CandidateKind::alternative, 300)},
            scores);
    const auto & d = r.decision("general");
    EXPECT_EQ(d.action, Action::compress) << d.reason;
    EXPECT_EQ(d.chosen, "q4");
}

// Finding 7: min_agreement needs a text to measure agreement on; without one the plan is refused.
TEST(PlanFile, MinAgreementWithoutAScreenTextIsRefused) {
    try {
        parse_plan("base: b.gguf\ntasks:\n  - spec: t.jsonl\npolicy:\n  min_agreement: 0.9\n", "plan.yaml", "/tmp");
        FAIL() << "accepted";
    } catch (const switchyard::Error & e) {
        EXPECT_EQ(
            std::string(e.what()),
            "plan.yaml:5: policy.min_agreement: top-1 agreement is measured on the screen's text: give 'screen' (or 'calibration', whose text the screen reuses)");
    }
    EXPECT_NO_THROW(parse_plan(
        "base: b.gguf\ntasks:\n  - spec: t.jsonl\nscreen:\n  files: [s.txt]\npolicy:\n  min_agreement: 0.9\n",
        "plan.yaml", "/tmp"));
}

// The guarantee, by simulation: at the limit (the worst case for a one-sided test) and beyond it,
// the share of runs that recommend a candidate dropping max_drop or more stays within alpha (plus
// three Monte-Carlo standard errors); below the limit the same search does recommend. The full
// grid is bench/guarantee.sh's; its table is in docs/plan.md.
TEST(Guarantee, FalseRecommendationsStayWithinAlpha) {
    const Policy policy;  // relative, 10%, alpha 0.05
    for (const std::size_t items : {100u, 400u, 1000u}) {
        for (const double recovered : {0.0, 0.3}) {
            const SimulationPoint at_limit{
                .true_drop = policy.max_drop, .items = items, .original_accuracy = 0.8, .recovered = recovered};
            const auto r = simulate(policy, at_limit, 600, 7 + items);
            EXPECT_LE(r.false_rate(), policy.alpha + 3 * r.standard_error(policy.alpha))
                << "items " << items << ", recovered " << recovered;
            auto beyond = at_limit;
            beyond.true_drop = 1.5 * policy.max_drop;
            EXPECT_LE(simulate(policy, beyond, 300, 11 + items).false_rate(), policy.alpha) << "items " << items;
        }
    }
    // Power: with no true drop and 1000 items, the search recommends a smaller model nearly always.
    const auto power = simulate(policy, {.true_drop = 0, .items = 1000, .original_accuracy = 0.8}, 200, 3);
    EXPECT_EQ(power.false_recommendations, 0u);
    EXPECT_GT(power.power(), 0.9);
}

// Sequential tests stop each suite at the first look that decides it, with the verdicts the full
// run gives: a clear pass and a clear failure settle early, a drop near the limit reads every item.
TEST(Sequential, StopsEachSuiteWhenDecidedWithTheFullRunsVerdicts) {
    const auto scenario = [](bool sequential) {
        FakeScores scores;
        scores.tasks = {{.suite = "cloze", .task_class = "general", .critical = true},
                        {.suite = "blimp", .task_class = "general"}};
        scores.originals = {{"cloze", {400, 360}}, {"blimp", {1000, 850}}};
        scores.scripts["Q8_0"] = {{"cloze", {.lost = 2, .gained = 2}}, {"blimp", {.lost = 5, .gained = 4}}};
        scores.scripts["Q4_0"] = {{"cloze", {.lost = 4, .gained = 3}}, {"blimp", {.lost = 230, .gained = 10}}};
        scores.scripts["near"] = {{"cloze", {.lost = 2, .gained = 2}}, {"blimp", {.lost = 110, .gained = 30}}};
        Policy policy;
        policy.sequential = sequential;
        auto r = run(policy,
                     {model("original", CandidateKind::original, 100000), quant("Q8_0", 50000, 8.5),
                      quant("Q4_0", 30000, 4.5), model("near", CandidateKind::variant, 20000, 4, "prune", 1)},
                     scores);
        return std::make_pair(std::move(r), scores.items_read);
    };
    const auto [full, full_items] = scenario(false);
    const auto [seq, seq_items] = scenario(true);
    EXPECT_EQ(seq.decision("general").chosen, full.decision("general").chosen);
    EXPECT_EQ(seq.decision("general").rule, full.decision("general").rule);
    ASSERT_EQ(seq.decided.assessments.size(), full.decided.assessments.size());
    for (std::size_t i = 0; i < seq.decided.assessments.size(); ++i) {
        EXPECT_EQ(seq.decided.assessments[i].candidate, full.decided.assessments[i].candidate);
        EXPECT_EQ(seq.decided.assessments[i].outcome, full.decided.assessments[i].outcome)
            << seq.decided.assessments[i].candidate;
    }
    EXPECT_EQ(full_items, 4u * 1400);
    // The drop near the limit reads all 1,400 of its items, and the original as far with it; the
    // clear pass and the clear failure read a few hundred.
    EXPECT_LT(seq_items, full_items * 3 / 5) << "sequential read " << seq_items << " of " << full_items;
    // Q8_0 is decided on both suites well before their ends; Q4_0 fails blimp early and stops there.
    EXPECT_LT(seq.candidate("Q8_0").suite("blimp")->items(), 500u);
    EXPECT_LT(seq.candidate("Q4_0").suite("blimp")->items(), 400u);
    EXPECT_NE(seq.candidate("Q4_0").stopped.at("blimp").find("decided"), std::string::npos)
        << seq.candidate("Q4_0").stopped.at("blimp");
    // The drop near the limit (11.8% against 10%) is not decided before the end.
    EXPECT_EQ(seq.candidate("near").suite("blimp")->items(), 1000u);
    EXPECT_NE(seq.candidate("near").stopped.at("blimp").find("every item"), std::string::npos);
    // A verdict read early says where it was read.
    bool early = false;
    for (const auto & a : seq.decided.assessments)
        for (const auto & v : a.verdicts) early = early || v.message.find(" of 1000 items (look ") != std::string::npos;
    EXPECT_TRUE(early);
}

// A rung that fails its critical suite is not scored on the class's other suites.
TEST(Sequential, AFailedCriticalSuiteStopsTheCandidatesOtherSuites) {
    FakeScores scores;
    scores.tasks = {{.suite = "blimp", .task_class = "general"},
                    {.suite = "cloze", .task_class = "general", .critical = true}};
    scores.originals = {{"cloze", {400, 360}}, {"blimp", {1000, 850}}};
    scores.scripts["Q2_K"] = {{"cloze", {.lost = 200}}, {"blimp", {.lost = 5}}};
    const Policy policy;
    const auto r = run(policy, {model("original", CandidateKind::original, 100000), quant("Q2_K", 30000, 2.6)}, scores);
    const auto & q = r.candidate("Q2_K");
    ASSERT_NE(q.suite("cloze"), nullptr);
    EXPECT_LE(q.suite("cloze")->items(), 200u);
    EXPECT_EQ(q.suite("blimp"), nullptr) << "critical suites go first; the failure ends the candidate's run";
    EXPECT_NE(q.stopped.at("blimp").find("not scored: R3-drop failed on `cloze`"), std::string::npos)
        << q.stopped.at("blimp");
    EXPECT_EQ(r.decision("general").chosen, "original");
}

// The dry run's expected stopping: a candidate with no true drop reads a fraction of a suite, one
// at the limit nearly all of it; with sequential tests off, all of it.
TEST(Sequential, ExpectedStoppingGrowsNearTheLimit) {
    Policy policy;
    const double clear = expected_share_read(policy, 1000, 0.025, 0.0, 0.8, 0.1);
    const double at_limit = expected_share_read(policy, 1000, 0.025, policy.max_drop, 0.8, 0.1);
    EXPECT_LT(clear, 0.5);
    EXPECT_GT(at_limit, 0.8);
    EXPECT_EQ(expected_share_read(policy, 1000, 0.025, 0.0, 0.8, 0.1), clear) << "the same everywhere";
    policy.sequential = false;
    EXPECT_EQ(expected_share_read(policy, 1000, 0.025, 0.0, 0.8, 0.1), 1.0);
}

namespace {

// The original drafted by `draft`: the original's size and bits, never scored (its suites are the original's).
Candidate drafted_original(const std::string & original, const std::string & draft, std::uint64_t bytes,
                           double bits) {
    auto c = model(original + "+draft=" + draft, CandidateKind::drafted, bytes, bits);
    c.draft = Draft{.name = draft, .file_bytes = bytes / 4};
    return c;
}

// A drafted original's speed pass: its latency, and its greedy answers against the original's.
CostScore drafted_cost(double p95_ms, int identical, int compared) {
    return CostScore{.p95_latency_ms = p95_ms,
                     .ratio = 0.6,
                     .ratio_lo = 0.55,
                     .ratio_hi = 0.65,
                     .draft = DraftScore{.drafted = 1000,
                                         .accepted = 720,
                                         .decode_speedup = 1.8,
                                         .answers_compared = compared,
                                         .answers_identical = identical,
                                         .first_difference = identical < compared ? "query 3 departs at token 17" : ""}};
}

// The team's case: a latency budget the original misses, a compression that keeps the latency
// but drops too much on the critical suite. The original drafted by that same compression gives
// the original's answers faster: keep, drafted, with the budget as the rule and the speed-up.
FakeScores latency_scenario(int identical, int compared) {
    FakeScores scores;
    scores.tasks = {{.suite = "facts", .task_class = "critical", .critical = true}};
    scores.originals = {{"facts", {1000, 900}}};
    scores.scripts["q8"] = {{"facts", {.lost = 200}}};
    scores.costs = {{"orig", CostScore{.p95_latency_ms = 150}},
                    {"q8", CostScore{.p95_latency_ms = 60}},
                    {"orig+draft=q8", drafted_cost(90, identical, compared)}};
    return scores;
}

// The original, its compression and the original drafted by it, under a p95 budget of 100 ms.
Run run_latency_scenario(FakeScores & scores) {
    Policy policy;
    policy.budgets.p95_latency_ms = 100;
    return run(policy,
               {model("orig", CandidateKind::original, 4000, 32), quant("q8", 1100, 8.5),
                drafted_original("orig", "q8", 4000, 32)},
               scores);
}

}  // namespace

TEST(Search, ALatencyBudgetNoCompressionMeetsKeepsTheOriginalDrafted) {
    auto scores = latency_scenario(24, 24);
    const auto r = run_latency_scenario(scores);
    const auto & d = r.decision("critical");
    EXPECT_EQ(d.action, Action::keep) << d.reason;
    EXPECT_EQ(d.chosen, "orig+draft=q8");
    EXPECT_EQ(d.draft, "q8");
    EXPECT_EQ(d.backup, "orig");
    EXPECT_EQ(d.rule, "R4-budget");
    EXPECT_FALSE(d.flagged);
    EXPECT_NE(d.reason.find("orig drafted by q8 (1.80× decode, acceptance 72%) passes"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("greedy answers identical on 24 of 24 queries"), std::string::npos) << d.reason;
    EXPECT_NE(d.reason.find("the original alone: R4-budget: p95 latency 150.0 ms > 100.0 ms"), std::string::npos)
        << d.reason;
    EXPECT_NE(d.guarantee.find("the original's answers are kept (drafted by q8"), std::string::npos) << d.guarantee;
    // Its suites are the original's: nothing was scored for it, and it spent no share of alpha.
    EXPECT_FALSE(scores.was_evaluated("orig+draft=q8", "critical"));
    EXPECT_EQ(r.candidate("orig+draft=q8").suite("facts")->accuracy, r.candidate("orig").suite("facts")->accuracy);
    auto candidates = r.candidates;
    EXPECT_EQ(class_context(candidates, scores.tasks, "critical").families, 1u);
}

// Speculative decoding keeps the original's tokens by construction, but a build whose batched
// verification rounds differently could change a near tie: a difference is a failure, never a pass.
TEST(Search, ADraftedOriginalWhoseAnswersDifferFailsWithTheDifference) {
    auto scores = latency_scenario(23, 24);
    const auto r = run_latency_scenario(scores);
    const auto & d = r.decision("critical");
    EXPECT_EQ(d.rule, "none-passes") << d.reason;
    EXPECT_TRUE(d.flagged);
    EXPECT_NE(
        d.reason.find(
            "orig+draft=q8: R3-drop: drafted by q8: 1 of 24 greedy answers differ from the original's (query 3 departs at token 17)"),
        std::string::npos)
        << d.reason;
}

// A draft changes speed and cost only: without a budget or a price there is nothing to judge it
// on, and where the original fails its accuracy rules a drafted original fails them too. Neither
// is timed.
TEST(Search, ADraftedOriginalIsMeasuredOnlyWhereSpeedOrCostIsJudged) {
    auto scores = latency_scenario(24, 24);
    const auto unjudged =
        run(Policy{}, {model("orig", CandidateKind::original, 4000, 32), drafted_original("orig", "q8", 4000, 32)},
            scores);
    const auto & c = unjudged.candidate("orig+draft=q8");
    EXPECT_FALSE(c.cost);
    EXPECT_EQ(c.not_run.at("critical"),
              "no budget and no price_per_hour: a draft changes only speed and cost, which this plan does not judge");
    EXPECT_EQ(unjudged.decision("critical").chosen, "orig");

    scores.originals = {{"facts", {1000, 600}}};  // under the floor of 80%
    Policy policy;
    policy.budgets.p95_latency_ms = 100;
    const auto floor =
        run(policy, {model("orig", CandidateKind::original, 4000, 32), drafted_original("orig", "q8", 4000, 32)},
            scores);
    EXPECT_FALSE(floor.candidate("orig+draft=q8").cost);
    EXPECT_EQ(floor.candidate("orig+draft=q8").not_run.at("critical"),
              "the original does not pass here (R2-floor), and a drafted original gives its answers");
}

// With a price, a drafted original competes on cost like any candidate: measurably cheaper than
// the original (1 / 0.6 faster per query), it is kept drafted by R7; in a tie a compression wins.
TEST(Search, APriceMakesTheFasterDraftedOriginalTheCheaperKeep) {
    FakeScores scores;
    scores.tasks = {{.suite = "facts", .task_class = "critical", .critical = true}};
    scores.originals = {{"facts", {1000, 900}}};
    auto priced = [](double ratio, double per_query) {
        return CostScore{.reference = "orig",
                         .ratio = ratio,
                         .ratio_lo = ratio * 0.97,
                         .ratio_hi = ratio * 1.03,
                         .cost_per_query = per_query,
                         .cost_lo = per_query * 0.97,
                         .cost_hi = per_query * 1.03};
    };
    scores.costs = {{"orig", priced(1, 1e-5)}, {"orig+draft=q8", priced(0.6, 0.6e-5)}};
    scores.costs.at("orig+draft=q8").draft = drafted_cost(90, 24, 24).draft;
    Policy policy;
    policy.deployment.price_per_hour = 0.1;
    const auto r =
        run(policy, {model("orig", CandidateKind::original, 4000, 32), drafted_original("orig", "q8", 4000, 32)},
            scores);
    const auto & d = r.decision("critical");
    EXPECT_EQ(d.chosen, "orig+draft=q8") << d.reason;
    EXPECT_EQ(d.rule, "R7-cheapest");
    EXPECT_NE(d.reason.find("cost decided"), std::string::npos) << d.reason;
    EXPECT_EQ(d.backup, "orig");

    // Slower: the original is kept, and its drafted self is no backup (the same weights).
    const auto draft = scores.costs.at("orig+draft=q8").draft;
    scores.costs.at("orig+draft=q8") = priced(2.5, 2.5e-5);
    scores.costs.at("orig+draft=q8").draft = draft;
    const auto slower =
        run(policy, {model("orig", CandidateKind::original, 4000, 32), drafted_original("orig", "q8", 4000, 32)},
            scores);
    EXPECT_EQ(slower.decision("critical").chosen, "orig");
    EXPECT_EQ(slower.decision("critical").backup, "");
}
