#include "report/digest.h"

#include "decide/cost_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace switchyard::report {

using decide::Action;
using decide::Assessment;
using decide::Candidate;
using decide::CandidateKind;
using decide::Outcome;
using decide::PlanResult;

std::size_t display_length(const std::string & utf8) {
    return static_cast<std::size_t>(
        std::count_if(utf8.begin(), utf8.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string money_per_1m(double cost_per_1k_tokens) { return decide::dollars(1000 * cost_per_1k_tokens); }

std::string cost_text(const decide::CostScore & cost, bool with_interval) {
    if (!cost.cost_known()) return "unknown";
    return decide::dollars(cost.cost_per_1m_tokens) + (with_interval ? decide::cost_bounds_text(cost) : "");
}

std::string bytes_text(std::uint64_t bytes) {
    const double kib = bytes / 1024.0, mib = kib / 1024.0, gib = mib / 1024.0;
    if (gib >= 1) return fmt::format("{:.2f} GiB", gib);
    if (mib >= 100) return fmt::format("{:.0f} MiB", mib);
    if (mib >= 1) return fmt::format("{:.2f} MiB", mib);
    return fmt::format("{:.0f} KiB", kib);
}

std::string energy_per_1k(const decide::CostScore & cost) {
    const double joules = 1000 * cost.joules_per_token;
    const std::string how = cost.energy_source.rfind("measured", 0) == 0 ? "measured" : "modelled";
    if (joules >= 3600) return fmt::format("{:.3g} Wh ({})", joules / 3600, how);
    return fmt::format("{:.3g} J ({})", joules, how);
}

std::string share_of(std::uint64_t bytes, std::uint64_t original_bytes) {
    if (original_bytes == 0) return "";
    return fmt::format("{:.0f}% of the original's size", 100.0 * bytes / original_bytes);
}

std::string signed_percent(double share) {
    const auto text = fmt::format("{:.1f}%", 100 * std::abs(share));
    return (share < 0 && text != "0.0%" ? "−" : "+") + text;
}

namespace {

const Candidate * find(const PlanResult & r, const std::string & name) {
    for (const auto & c : r.candidates)
        if (c.name == name) return &c;
    return nullptr;
}

const Assessment * assessment(const PlanResult & r, const std::string & name, const std::string & cls) {
    for (const auto & a : r.assessments)
        if (a.candidate == name && a.task_class == cls) return &a;
    return nullptr;
}

bool passes(const Assessment * a) { return a != nullptr && a->outcome == Outcome::pass && a->complete; }

const decide::RuleVerdict * problem(const Assessment & a) {
    const auto * v = a.first(Outcome::fail);
    return v != nullptr ? v : a.first(Outcome::insufficient);
}

std::string drop_shown(const PlanResult & r, double drop) {
    return r.plan.policy.drop_relative ? fmt::format("{:.1f}%", 100 * drop) : fmt::format("{:.1f} points", 100 * drop);
}

// A verdict's problem in a few words: R3 by its drop and interval, the other rules by their message.
std::string short_problem(const PlanResult & r, const decide::RuleVerdict & v) {
    if (!v.drop) return v.id() + ": " + v.message;
    const auto & d = *v.drop;
    const auto limit = drop_shown(r, r.plan.policy.max_drop);
    return fmt::format("{}: drop {} [{:.1f}, {:.1f}] on `{}` {}", v.id(), drop_shown(r, d.drop), 100 * d.ci.lo,
                       100 * d.ci.hi, d.suite, v.outcome == Outcome::fail ? "exceeds " + limit : "straddles " + limit);
}

std::vector<const Candidate *> passing(const PlanResult & r, const std::string & cls) {
    std::vector<const Candidate *> out;
    for (const auto & c : r.candidates)
        if (passes(assessment(r, c.name, cls))) out.push_back(&c);
    return out;
}

// The one number behind R7 and the step that decided: the chosen's cost when cost alone decided;
// else (a tie on cost, or no price) what step 2 ranked by: bits per weight, or size.
std::string cheapest_why(const PlanResult & r, const std::string & cls, const Candidate & chosen) {
    const auto all = passing(r, cls);
    const auto pick = decide::cheapest(r.plan.policy, all);
    const auto * original = original_of(r);
    if (all.size() == 1)
        return "the only one that passes" +
            (chosen.cost && chosen.cost->cost_known() ? ": " + cost_text(*chosen.cost) + " per 1M tokens" : "");
    if (pick.by_cost && chosen.cost)
        return fmt::format("cheapest of {} that pass: {} per 1M tokens", all.size(), cost_text(*chosen.cost, true));
    std::string size = bytes_text(chosen.file_bytes);
    if (original != nullptr && original != &chosen) size += ", " + share_of(chosen.file_bytes, original->file_bytes);
    const std::string tie = pick.tie ? fmt::format("tie on cost among {} of {}; ", pick.within_cost, all.size()) : "";
    const std::string of = pick.tie ? "them" : fmt::format("{} that pass", all.size());
    const bool by_bits = pick.runner_up != nullptr && decide::tie_break(*pick.runner_up, chosen).rfind("bits", 0) == 0;
    if (by_bits)
        return fmt::format("{}fewest bits per weight of {}: {:.3g} vs {:.3g} ({}), {}", tie, of, chosen.bits_per_weight,
                           pick.runner_up->bits_per_weight, pick.runner_up->name, size);
    const bool by_cache =
        pick.runner_up != nullptr && decide::tie_break(*pick.runner_up, chosen).rfind("file and KV cache", 0) == 0;
    if (by_cache && chosen.cost)
        return fmt::format("{}smallest file and KV cache of {}: {} with a {} cache ({} at the deployment's context)",
                           tie, of, bytes_text(chosen.file_bytes + chosen.cost->kv_cache_bytes),
                           chosen.kv_cache.label(), bytes_text(chosen.cost->kv_cache_bytes));
    return fmt::format("{}smallest of {}: {}", tie, of, size);
}

// "1.80× decode, acceptance 72%, 1.52× per query [1.45, 1.60]": a drafted original's speed-up,
// the query's from its time ratio to the original undrafted.
std::string draft_figures(const decide::CostScore & cost) {
    std::string out = decide::describe_draft(*cost.draft);
    if (cost.ratio > 0 && cost.ratio_lo > 0 && cost.ratio_hi > 0)
        out += fmt::format(", {:.2f}× per query [{:.2f}, {:.2f}]", 1 / cost.ratio, 1 / cost.ratio_hi, 1 / cost.ratio_lo);
    return out;
}

// What ruled the original or compression out, for a verdict not settled by R7.
std::string ruled_out_why(const PlanResult & r, const decide::ClassDecision & d) {
    const auto * original = original_of(r);
    if (original != nullptr) {
        const auto * a = assessment(r, original->name, d.task_class);
        if (a != nullptr && a->outcome != Outcome::pass && problem(*a) != nullptr)
            return original->name + ": " + short_problem(r, *problem(*a));
    }
    for (const auto & c : r.candidates) {
        if (c.kind != CandidateKind::variant) continue;
        const auto * a = assessment(r, c.name, d.task_class);
        if (a != nullptr && !passes(a) && problem(*a) != nullptr)
            return "no compression passes; the " + c.ladder + " ladder stops at " + c.name + ": " +
                short_problem(r, *problem(*a));
    }
    return d.rule;
}

// A drafted original's one number is its speed-up; then what ruled the original alone out (a budget,
// usually), or R7's reason when it simply won on cost.
std::string drafted_why(const PlanResult & r, const decide::ClassDecision & d, const Candidate & chosen) {
    return draft_figures(*chosen.cost) + "; " +
        (d.rule == "R7-cheapest" ? cheapest_why(r, d.task_class, chosen) : ruled_out_why(r, d));
}

// Cuts at a code point boundary so that the line fits; the whole story is in the evidence beneath.
std::string fit(std::string line) {
    if (display_length(line) <= kVerdictMaxChars) return line;
    std::size_t points = 0, i = 0;
    for (; i < line.size(); ++i)
        if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80 && ++points == kVerdictMaxChars) break;
    return line.substr(0, i) + "…";
}

std::string verdict_of(const PlanResult & r, const decide::ClassDecision & d) {
    std::string line =
        d.task_class + ": " + action_text(d) + (d.backup.empty() ? "" : " (backup: " + d.backup + ")") + " — ";
    const auto * chosen = find(r, d.chosen);
    if (d.flagged) {
        const auto * a = chosen ? assessment(r, chosen->name, d.task_class) : nullptr;
        line +=
            "nothing passes every rule, needs a look" + (a && problem(*a) ? "; " + short_problem(r, *problem(*a)) : "");
    } else if (chosen != nullptr && chosen->cost && chosen->cost->draft) {
        line += drafted_why(r, d, *chosen);
    } else if ((d.rule == "R7-cheapest" || d.rule == "R5-no-original") && chosen != nullptr) {
        line += cheapest_why(r, d.task_class, *chosen);
    } else {
        line += ruled_out_why(r, d);
    }
    return fit(line);
}

std::vector<std::string> evidence_of(const PlanResult & r, const decide::ClassDecision & d) {
    std::vector<std::string> out;
    const auto * chosen = find(r, d.chosen);
    if (chosen == nullptr) return out;
    const auto * a = assessment(r, chosen->name, d.task_class);
    for (const auto & t : r.tasks) {
        if (t.task_class != d.task_class) continue;
        const auto * s = chosen->suite(t.suite);
        std::string line = fmt::format("`{}`{}: ", t.suite, t.critical ? " (critical)" : "");
        if (s == nullptr) {
            out.push_back(line + "not measured");
            continue;
        }
        line +=
            fmt::format("{:.1f}% [{:.1f}, {:.1f}], n={}", 100 * s->accuracy, 100 * s->ci95.lo, 100 * s->ci95.hi, s->n);
        // Read sequentially: how much of the suite was read.
        if (s->items() < s->items_available()) line += fmt::format(" of {}", s->items_available());
        if (s->vs_original) {
            const auto & c = *s->vs_original;
            line += fmt::format(" (original {:.1f}%)", 100 * c.base_accuracy());
            if (a != nullptr)
                for (const auto & v : a->verdicts)
                    if (v.drop && v.drop->suite == t.suite)
                        line += fmt::format("; drop {} [{:.1f}, {:.1f}] (each bound one-sided at {:.3g})",
                                            drop_shown(r, v.drop->drop), 100 * v.drop->ci.lo, 100 * v.drop->ci.hi,
                                            v.drop->alpha);
            line +=
                fmt::format("; flips {} right→wrong, {} wrong→right", c.right_to_wrong.size(), c.wrong_to_right.size());
        } else if (chosen->kind == CandidateKind::original) {
            line += " (the original: the reference)";
        } else if (chosen->kind == CandidateKind::drafted) {
            line += " (the original's own scores: drafted, it gives the original's answers)";
        }
        out.push_back(line);
    }
    return out;
}

// Why R7 put `c` after the chosen one, in the report's units: outside the cost band with both
// costs, or inside it (a tie) and after it on bits per weight, size or name.
std::string r7_against(const PlanResult & r, const std::string & cls, const Candidate & c, const Candidate * chosen) {
    if (chosen == nullptr) return "not chosen";
    const bool priced = r.plan.policy.deployment.price_per_hour > 0;
    const auto step2 = [&] {
        const auto why = decide::tie_break(c, *chosen);
        if (why.rfind("bits", 0) == 0)
            return fmt::format("more bits per weight: {:.3g} vs {:.3g}", c.bits_per_weight, chosen->bits_per_weight);
        if (why.rfind("size", 0) == 0)
            return fmt::format("larger: {} vs {}", bytes_text(c.file_bytes), bytes_text(chosen->file_bytes));
        if (why.rfind("name", 0) == 0) return "after " + chosen->name + " by name";
        return why;
    };
    if (priced && c.cost && !c.cost->cost_known())
        return "cost unknown (" + (c.cost->unknown.empty() ? std::string("not measured") : c.cost->unknown) +
            "): it cannot win on cost";
    if (priced && c.cost && chosen->cost && c.cost->cost_known() && chosen->cost->cost_known()) {
        // Against the cheapest that passes: the band R7 drew.
        auto all = passing(r, cls);
        if (std::find(all.begin(), all.end(), &c) == all.end()) all.push_back(&c);
        const auto pick = decide::cheapest(r.plan.policy, all);
        const Candidate * low = pick.cheapest != nullptr ? pick.cheapest : chosen;
        const auto vs_low = decide::compare_costs(*c.cost, *low->cost);
        if (vs_low.order == decide::CostOrder::costlier)
            return fmt::format("costlier: {} vs {} per 1M tokens for {}, {}, outside the {:.0f}% band",
                               cost_text(*c.cost), cost_text(*low->cost), low->name, vs_low.text(),
                               100 * (decide::kCostBand - 1));
        return fmt::format("tie on cost with {} ({} vs {} per 1M tokens, {}), then {}", chosen->name,
                           cost_text(*c.cost), cost_text(*chosen->cost),
                           decide::compare_costs(*c.cost, *chosen->cost).text(), step2());
    }
    return step2();
}

std::vector<std::string> not_chosen_of(const PlanResult & r, const decide::ClassDecision & d) {
    std::vector<std::string> out;
    const auto * chosen = find(r, d.chosen);
    for (const auto & c : r.candidates) {
        if (c.name == d.chosen) continue;
        std::string why;
        const auto * a = assessment(r, c.name, d.task_class);
        if (!c.skipped.empty()) {
            why = c.skipped;
        } else if (passes(a)) {
            why = "passes, " + r7_against(r, d.task_class, c, chosen);
            if (d.backup == c.name) why += " (the backup)";
        } else if (a != nullptr && problem(*a) != nullptr) {
            why = short_problem(r, *problem(*a));
        } else if (const auto it = c.not_run.find(d.task_class); it != c.not_run.end()) {
            // R7's skips are restated in the report's units; every other reason as the search gave it.
            if (chosen != nullptr && c.cost && chosen->cost &&
                decide::cheapest(r.plan.policy, {chosen, &c}).chosen == chosen &&
                it->second.find("R7") != std::string::npos)
                why = "not run: R7 would not choose it even if it passed (" + r7_against(r, d.task_class, c, chosen) +
                    ")";
            else
                why = "not run: " + it->second;
        } else {
            why = "not measured for this class";
        }
        // A drafted original's one number, whatever ruled it out: what its draft did for speed.
        if (c.cost && c.cost->draft && c.cost->cost_known()) why += " (drafted: " + draft_figures(*c.cost) + ")";
        out.push_back(c.name + ": " + why);
    }
    return out;
}

}  // namespace

std::string action_text(const decide::ClassDecision & d) {
    switch (d.action) {
        // A drafted original's backup is the original itself (decide::choose).
        case Action::keep: return d.draft.empty() ? "keep " + d.chosen : "keep " + d.backup + ", drafted by " + d.draft;
        case Action::compress: return "compress → " + d.chosen;
        case Action::switch_model: return "switch → " + d.chosen;
    }
    return d.chosen;
}

std::vector<ClassDigest> digest(const PlanResult & r) {
    std::vector<ClassDigest> out;
    for (const auto & d : r.decisions)
        out.push_back({.task_class = d.task_class,
                       .verdict = verdict_of(r, d),
                       .flagged = d.flagged,
                       .evidence = evidence_of(r, d),
                       .not_chosen = not_chosen_of(r, d)});
    return out;
}

std::vector<SignalCheck> signal_checks(const PlanResult & r) {
    std::vector<SignalCheck> out;
    for (const auto & c : r.candidates) {
        if (c.kind != CandidateKind::variant || !c.drift) continue;
        for (const auto & cls : r.classes) {
            SignalCheck s{
                .candidate = c.name, .task_class = cls, .ppl_change = c.drift->ppl_ratio - 1, .kld = c.drift->kld_mean};
            s.ppl_passes = s.ppl_change <= kPerplexityPass;
            s.kld_passes = s.kld <= r.plan.policy.screen_max_kld;
            const auto * a = assessment(r, c.name, cls);
            bool measured = false;
            if (a != nullptr)
                for (const auto & v : a->verdicts) {
                    if (v.rule != "R2-floor" && v.rule != "R3-drop") continue;
                    measured = true;
                    // The worst outcome of the task rules: fail over insufficient over pass.
                    if (!s.tasks || v.outcome == Outcome::fail ||
                        (v.outcome == Outcome::insufficient && *s.tasks == Outcome::pass))
                        s.tasks = v.outcome;
                    if (v.drop && (s.worst_suite.empty() || v.drop->drop > s.worst_drop)) {
                        s.worst_suite = v.drop->suite;
                        s.worst_drop = v.drop->drop;
                        s.worst_critical = c.suite(v.drop->suite) != nullptr && c.suite(v.drop->suite)->critical;
                    }
                }
            if (!measured) s.tasks.reset();
            if (s.tasks && !s.worst_suite.empty()) {
                const auto where = fmt::format("{} on `{}`{}", signed_percent(-s.worst_drop), s.worst_suite,
                                               s.worst_critical ? " (critical)" : "");
                const auto ppl = fmt::format("{}: perplexity {}", c.name, signed_percent(s.ppl_change));
                if (s.ppl_passes && *s.tasks == Outcome::fail)
                    s.flag = fmt::format("{}, but {}: perplexity alone would have shipped it", ppl, where);
                else if (!s.ppl_passes && *s.tasks == Outcome::pass)
                    s.flag = fmt::format(
                        "{}, yet it passes every task of `{}` (worst {}): perplexity alone would have rejected it", ppl,
                        cls, where);
                else if (s.kld_passes && *s.tasks == Outcome::fail)
                    s.flag =
                        fmt::format("{}: KLD {:.3g} passed the screen, but {}: the screen alone would have shipped it",
                                    c.name, s.kld, where);
            }
            out.push_back(s);
        }
    }
    return out;
}

const decide::Candidate * original_of(const decide::PlanResult & r) {
    for (const auto & c : r.candidates)
        if (c.kind == decide::CandidateKind::original) return &c;
    return nullptr;
}

}  // namespace switchyard::report
