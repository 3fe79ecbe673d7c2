// The report on constructed measurements: the verdict line with the number that decided it, the
// evidence beneath it, perplexity against the tasks with the disagreement said in words, and units.
#include "decide/decision.h"
#include "decide/search.h"
#include "report/digest.h"
#include "report/report.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace switchyard;
using decide::Candidate;
using decide::CandidateKind;

namespace {

// n items both scored, the original right on `base_right`; the other model flips `r2w` of those to
// wrong and `w2r` of the rest to right (source lines numbered from 1).
eval::PairedComparison paired(std::size_t n, std::size_t base_right, std::size_t r2w, std::size_t w2r) {
    eval::PairedComparison c{.n = n, .both_right = base_right - r2w};
    for (std::size_t i = 0; i < r2w; ++i) c.right_to_wrong.push_back(i + 1);
    for (std::size_t i = 0; i < w2r; ++i) c.wrong_to_right.push_back(base_right + i + 1);
    return c;
}

decide::SuiteScore facts(std::size_t base_right, std::optional<eval::PairedComparison> vs) {
    const double accuracy = vs ? vs->other_accuracy() : base_right / 1000.0;
    return {.suite = "facts",
            .critical = true,
            .n = 1000,
            .correct = static_cast<std::size_t>(std::lround(accuracy * 1000)),
            .accuracy = accuracy,
            .ci95 = {accuracy - 0.025, accuracy + 0.025},
            .vs_original = vs};
}

Candidate model(const std::string & name, CandidateKind kind, std::uint64_t bytes, decide::SuiteScore score,
                std::optional<double> ppl_ratio) {
    Candidate c{.name = name,
                .kind = kind,
                .capabilities = {"text"},
                .context_length = 2048,
                .file_bytes = bytes,
                .suites = {std::move(score)}};
    if (ppl_ratio)
        c.drift = decide::DriftScore{.kld_mean = 0.05, .kld_p99 = 0.4, .top1_agreement = 0.9, .ppl_ratio = *ppl_ratio};
    return c;
}

// One critical class: Q4_0 barely moves perplexity and loses a fifth of `facts`; Q3_K_M moves it
// 8% and loses nothing; `small`, a quarter of the original's size, loses nothing either.
decide::PlanResult constructed_plan() {
    decide::PlanResult r;
    r.plan.source = "plan.yaml";
    r.plan.policy.accuracy_floor = 0.5;  // R3 alone judges the drop
    r.tasks = {{.suite = "facts", .task_class = "critical", .critical = true}};
    r.classes = {"critical"};
    r.candidates = {
        model("base", CandidateKind::original, 4u << 20, facts(900, std::nullopt), std::nullopt),
        model("Q4_0", CandidateKind::variant, 1u << 20, facts(900, paired(1000, 900, 190, 10)), 1.014),
        model("Q3_K_M", CandidateKind::variant, 3u << 19, facts(900, paired(1000, 900, 8, 12)), 1.08),
        model("small", CandidateKind::alternative, 1u << 20, facts(900, paired(1000, 900, 10, 10)), std::nullopt)};
    std::vector<const Candidate *> pointers;
    const auto context = decide::class_context(r.candidates, r.tasks, "critical");
    for (const auto & c : r.candidates) {
        pointers.push_back(&c);
        r.assessments.push_back(decide::assess(r.plan.policy, c, "critical", r.tasks, context));
    }
    r.decisions = {decide::choose(r.plan.policy, "critical", pointers, r.assessments, context)};
    return r;
}

}  // namespace

TEST(Report, VerdictLineSaysWhatToDoAndTheNumberThatDecided) {
    const auto r = constructed_plan();
    const auto classes = report::digest(r);
    ASSERT_EQ(classes.size(), 1u);
    // No price: R7 ranks the three that pass by size.
    EXPECT_EQ(
        classes[0].verdict,
        "critical: switch → small (backup: base) — smallest of 3 that pass: 1.00 MiB, 25% of the original's size");
    EXPECT_LE(report::display_length(classes[0].verdict), report::kVerdictMaxChars);
    // The evidence: the chosen model's accuracy, its drop with the interval R3 used, and the flips.
    ASSERT_EQ(classes[0].evidence.size(), 1u);
    EXPECT_EQ(
        classes[0].evidence[0].rfind("`facts` (critical): 90.0% [87.5, 92.5], n=1000 (original 90.0%); drop 0.0% [", 0),
        0u)
        << classes[0].evidence[0];
    EXPECT_NE(classes[0].evidence[0].find("] (each bound one-sided at 0.025); flips 10 right→wrong, 10 wrong→right"),
              std::string::npos)
        << classes[0].evidence[0];
    // Every other candidate with its one reason.
    ASSERT_EQ(classes[0].not_chosen.size(), 3u);
    EXPECT_EQ(classes[0].not_chosen[0], "base: passes, larger: 4.00 MiB vs 1.00 MiB (the backup)");
    EXPECT_EQ(classes[0].not_chosen[1].rfind("Q4_0: R3-drop: drop 20.0% [", 0), 0u) << classes[0].not_chosen[1];
    EXPECT_NE(classes[0].not_chosen[1].find("] on `facts` exceeds 10.0%"), std::string::npos)
        << classes[0].not_chosen[1];
    EXPECT_EQ(classes[0].not_chosen[2], "Q3_K_M: passes, larger: 1.50 MiB vs 1.00 MiB");
}

TEST(Report, SaysWherePerplexityAloneWouldHaveDecidedOtherwise) {
    const auto r = constructed_plan();
    const auto checks = report::signal_checks(r);
    ASSERT_EQ(checks.size(), 2u) << "one per variant and class; the alternative has another vocabulary";
    EXPECT_EQ(checks[0].flag,
              "Q4_0: perplexity +1.4%, but −20.0% on `facts` (critical): perplexity alone would have shipped it");
    EXPECT_EQ(
        checks[1].flag,
        "Q3_K_M: perplexity +8.0%, yet it passes every task of `critical` (worst +0.4% on `facts` (critical)): perplexity alone would have rejected it");

    // The terminal, Markdown and HTML say the same, verdicts first and the disagreements at once.
    const auto text = report::summary_text(r);
    EXPECT_EQ(
        text.rfind(
            report::digest(r)[0].verdict + "\nperplexity vs tasks: 2 disagreements\n  ! " + checks[0].flag + "\n", 0),
        0u)
        << text;
    const auto md = report::report_markdown(r);
    EXPECT_NE(md.find("- **" + checks[1].flag + "**"), std::string::npos) << md;
    EXPECT_NE(
        md.find(
            "rises at most 5% over the original's on the screen's text; KLD alone, one with a mean KLD within the screen's 1.00 nats"),
        std::string::npos);
    const auto html = report::report_html(r);
    EXPECT_NE(
        html.find(
            "<p class=\"flag\" data-check=\"flag\">Q4_0: perplexity +1.4%, but −20.0% on <code>facts</code> (critical): perplexity alone would have shipped it"),
        std::string::npos);
    EXPECT_NE(html.find("Perplexity change against task drop"), std::string::npos);
    EXPECT_NE(html.find("class=\"limit h\""), std::string::npos) << "the policy's limit is drawn";
}

TEST(Report, NumbersInTheUnitsPeopleUse) {
    EXPECT_EQ(report::money_per_1m(1.41e-05), "$0.0141");
    EXPECT_EQ(report::money_per_1m(0.002), "$2.00");
    EXPECT_EQ(report::money_per_1m(0.5), "$500");
    EXPECT_EQ(report::bytes_text(596032), "582 KiB");
    EXPECT_EQ(report::bytes_text(3806464), "3.63 MiB");
    EXPECT_EQ(report::bytes_text(3ull << 30), "3.00 GiB");
    EXPECT_EQ(report::share_of(1 << 20, 4 << 20), "25% of the original's size");
    EXPECT_EQ(report::energy_per_1k({.joules_per_token = 0.023, .energy_source = "modelled (CPU-seconds x 15 W)"}),
              "23 J (modelled)");
    EXPECT_EQ(report::energy_per_1k({.joules_per_token = 7.2, .energy_source = "measured (RAPL package energy)"}),
              "2 Wh (measured)");
    EXPECT_EQ(report::signed_percent(-0.115), "−11.5%");
}
