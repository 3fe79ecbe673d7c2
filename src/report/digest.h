// What a person reads first, computed once for the Markdown, HTML and terminal renderings: per
// class one verdict line with the number that decided it, the evidence beneath it and the
// candidates not chosen; per variant its perplexity and KLD beside the task verdicts, with the
// cases where the cheap signal and the tasks disagree; numbers in the units people use.
#pragma once

#include "decide/planner.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::report {

// "Perplexity alone would pass" a variant whose perplexity on the screen's text rises by at most
// this share over the original's: the rule of thumb LLM-KICK tested (a 5% rise went with 30-40%
// lower accuracy on fact-heavy tasks). The KLD counterpart is the policy's own screen_max_kld.
inline constexpr double kPerplexityPass = 0.05;

// The verdict line is read in one glance: at most this many characters (code points).
inline constexpr std::size_t kVerdictMaxChars = 200;

struct ClassDigest {
    std::string task_class;
    std::string verdict;  // "general: compress → Q3_K_M+imatrix (backup: babyllama) — smallest that passes: …"
    bool flagged = false;  // nothing passed every rule
    std::vector<std::string> evidence;  // per suite of the class: accuracy, drop with interval, flips
    std::vector<std::string>
        not_chosen;  // "Q4_0+imatrix: R3-drop: drop 7.2% [2.5, 11.9] on `…` straddles max_drop 10.0%"
};
std::vector<ClassDigest> digest(const decide::PlanResult & result);

// "keep babyllama", "compress → Q4_0", "switch → stories260K".
std::string action_text(const decide::ClassDecision & decision);

// One variant judged for one class by the cheap signals and by the tasks.
struct SignalCheck {
    std::string candidate;
    std::string task_class;
    double ppl_change = 0;  // perplexity over the original's, minus 1
    double kld = 0;  // mean, nats per token
    bool ppl_passes = false;
    bool kld_passes = false;
    std::optional<decide::Outcome> tasks;  // R2 and R3 together (the worst); absent: not measured
    std::string worst_suite;  // the class's suite with the largest drop
    bool worst_critical = false;
    double worst_drop = 0;
    std::string flag;  // the disagreement in words; empty when signal and tasks agree or tasks were not run
};
std::vector<SignalCheck> signal_checks(const decide::PlanResult & result);

// Units people use.
std::string money_per_1m(double cost_per_1k_tokens);  // "$0.0132"
// A candidate's cost per 1M tokens (counted in the reference model's tokens), "$0.0132", or
// "unknown" (never "$0"); with_interval adds its 95% interval: "$0.0132 [0.0128, 0.0136]".
std::string cost_text(const decide::CostScore & cost, bool with_interval = false);
std::string bytes_text(std::uint64_t bytes);  // "570 KiB", "3.63 MiB", "1.20 GiB"
std::string energy_per_1k(const decide::CostScore & cost);  // "23.0 J (modelled)"
std::string share_of(std::uint64_t bytes, std::uint64_t original_bytes);  // "16% of the original's size"
std::string signed_percent(double share);  // "+1.4%", "−11.5%"

std::size_t display_length(const std::string & utf8);  // code points

// The plan's original model among its candidates; null when the plan has none (R5).
const decide::Candidate * original_of(const decide::PlanResult & result);

}  // namespace switchyard::report
