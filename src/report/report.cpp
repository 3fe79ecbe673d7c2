#include "report/report.h"

#include "report/svg_chart.h"
#include "support/atomic_file.h"
#include "support/version.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace switchyard::report {

using decide::Action;
using decide::Candidate;
using decide::CandidateKind;
using decide::PlanResult;
using nlohmann::json;

namespace {

std::string mib(std::uint64_t bytes) { return fmt::format("{:.2f}", bytes / (1024.0 * 1024.0)); }

std::string pct(double share) { return fmt::format("{:.1f}%", 100 * share); }

std::string verdict_line(const decide::ClassDecision & d) {
    switch (d.action) {
    case Action::keep: return "keep " + d.chosen;
    case Action::compress: return "compress → " + d.chosen;
    case Action::switch_model: return "switch → " + d.chosen;
    }
    return d.chosen;
}

bool is_chosen(const PlanResult & r, const std::string & name) {
    return std::any_of(r.decisions.begin(), r.decisions.end(), [&](const auto & d) { return d.chosen == name; });
}

std::string group_of(const PlanResult & r, const Candidate & c) {
    if (is_chosen(r, c.name)) return "chosen";
    if (c.kind == CandidateKind::original) return "original";
    return c.kind == CandidateKind::alternative ? "alternative" : "variant";
}

std::string drop_text(const decide::SuiteScore & s, bool relative) {
    if (!s.vs_original) return "";
    const auto & d = relative ? s.vs_original->drop_relative : s.vs_original->drop_absolute;
    return fmt::format("{:+.1f}{} [{:.1f}, {:.1f}] (bootstrap 95%), p={:.3g}", 100 * d.mean_drop, relative ? "%" : " pts", 100 * d.ci.lo, 100 * d.ci.hi, s.vs_original->mcnemar_p);
}

std::string lines_list(const std::vector<std::size_t> & lines) {
    std::string out;
    for (std::size_t i = 0; i < lines.size() && i < 12; ++i) out += (i ? ", " : "") + std::to_string(lines[i]);
    if (lines.size() > 12) out += fmt::format(", … ({} in all)", lines.size());
    return out;
}

// The suites of the first class with a critical task (else the first class), measured on every
// candidate plotted: accuracy is comparable only on the same items.
std::vector<std::string> chart_suites(const PlanResult & r) {
    std::string cls = r.classes.empty() ? "" : r.classes.front();
    for (const auto & t : r.tasks)
        if (t.critical) {
            cls = t.task_class;
            break;
        }
    std::vector<std::string> out;
    for (const auto & t : r.tasks)
        if (t.task_class == cls) out.push_back(t.suite);
    return out;
}

std::optional<double> mean_accuracy(const Candidate & c, const std::vector<std::string> & suites) {
    double sum = 0;
    for (const auto & s : suites) {
        const auto * score = c.suite(s);
        if (score == nullptr) return std::nullopt;
        sum += score->accuracy;
    }
    return suites.empty() ? std::nullopt : std::optional<double>(sum / suites.size());
}

std::vector<std::string> charts(const PlanResult & r) {
    std::vector<std::string> out;
    const auto suites = chart_suites(r);
    ScatterChart acc{.title = "Accuracy against size", .x_label = "file size (MiB, log scale)", .x_log = true};
    std::string names;
    for (const auto & s : suites) names += (names.empty() ? "" : ", ") + s;
    acc.y_label = suites.size() == 1 ? "accuracy on " + names : "mean accuracy on " + names;
    for (const auto & c : r.candidates)
        if (const auto a = mean_accuracy(c, suites)) acc.points.push_back({c.file_bytes / 1048576.0, *a, c.name, group_of(r, c)});
    // Pareto front: no other point is both smaller and more accurate.
    auto sorted = acc.points;
    std::sort(sorted.begin(), sorted.end(), [](const Point & a, const Point & b) { return a.x < b.x; });
    double best = -1;
    for (const auto & p : sorted)
        if (p.y > best) {
            acc.front.push_back(p);
            best = p.y;
        }
    if (!acc.points.empty()) out.push_back(render(acc));

    ScatterChart kld{.title = "KL-divergence from the original against bits per weight", .x_label = "bits per weight", .y_label = "mean KLD (nats per token)"};
    for (const auto & c : r.candidates)
        if (c.drift) kld.points.push_back({c.bits_per_weight, c.drift->kld_mean, c.name, group_of(r, c)});
    if (!kld.points.empty()) out.push_back(render(kld));

    BarChart latency{.title = "p95 latency of one query", .unit = "ms"};
    BarChart cost{.title = "Cost per 1k generated tokens", .unit = "at the plan's price per hour"};
    BarChart energy{.title = "Energy per generated token", .unit = "mJ"};
    for (const auto & c : r.candidates)
        if (c.cost) {
            energy.unit = "mJ, " + c.cost->energy_source;
            break;
        }
    for (const auto & c : r.candidates) {
        if (!c.cost) continue;
        latency.bars.push_back({c.name, c.cost->p95_latency_ms, group_of(r, c), fmt::format("{:.1f} ms", c.cost->p95_latency_ms)});
        cost.bars.push_back({c.name, c.cost->cost_per_1k_tokens, group_of(r, c), fmt::format("{:.3g}", c.cost->cost_per_1k_tokens)});
        energy.bars.push_back({c.name, 1000 * c.cost->joules_per_token, group_of(r, c), fmt::format("{:.3g} mJ", 1000 * c.cost->joules_per_token)});
    }
    if (!latency.bars.empty()) {
        out.push_back(render(latency));
        if (r.plan.policy.deployment.price_per_hour > 0) out.push_back(render(cost));
        out.push_back(render(energy));
    }
    return out;
}

json candidate_json(const Candidate & c) {
    json j = {{"name", c.name}, {"kind", decide::to_string(c.kind)}, {"path", c.path.string()}, {"description", c.description},
              {"file_bytes", c.file_bytes}, {"bits_per_weight", c.bits_per_weight}, {"parameters", c.parameters}, {"capabilities", c.capabilities},
              {"context_length", c.context_length}, {"suites", c.suites}};
    if (!c.skipped.empty()) j["skipped"] = c.skipped;
    if (!c.not_run.empty()) j["not_run"] = c.not_run;
    if (c.remote()) j["endpoint"] = {{"url", c.served.endpoint}, {"model", c.served.remote_model}};
    if (c.drift) j["drift"] = *c.drift;
    if (c.cost) j["cost"] = *c.cost;
    return j;
}

// Why a candidate was not (fully) measured, per class, or "measured".
std::string status_of(const Candidate & c) {
    if (!c.skipped.empty()) return c.skipped;
    std::string out = c.suites.empty() ? "not measured" : "measured";
    for (const auto & [cls, why] : c.not_run) out += "; for " + cls + " not: " + why;
    return out;
}

const char * kStyle = R"(body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.verdict{font-size:1.15em;padding:.7em 1em;background:#eef6ee;border-left:5px solid #2e7d32;margin:.4em 0}
.verdict.flagged{background:#fdeeee;border-color:#b71c1c}.pass{color:#2e7d32}.fail{color:#b71c1c}.insufficient{color:#b35900}
.chart{width:100%;max-width:660px;display:block;margin:1em 0}.chart .title{font-weight:600;font-size:14px}.chart .tick{font-size:11px;fill:#444}
.chart .label{font-size:12px}.chart .point{font-size:10px;fill:#333}.chart .axis{stroke:#888}.chart .front{fill:none;stroke:#2e7d32;stroke-dasharray:4 3}
code{background:#f5f5f5;padding:0 3px}.muted{color:#777})";

std::string html_escape(const std::string & s) { return escape_xml(s); }

}  // namespace

json decision_json(const PlanResult & r) {
    const auto & p = r.plan.policy;
    json j = {{"switchyard", kVersion}, {"plan", r.plan.source.string()}};
    j["policy"] = {{"accuracy_floor", p.accuracy_floor}, {"max_drop", p.max_drop}, {"drop", p.drop_relative ? "relative" : "absolute"}, {"alpha", p.alpha},
                   {"screen_max_kld", p.screen_max_kld}, {"price_per_hour", p.deployment.price_per_hour}, {"device", p.deployment.device}};
    if (p.min_agreement) j["policy"]["min_agreement"] = *p.min_agreement;
    if (p.budgets.memory_bytes) j["policy"]["budgets"]["memory_bytes"] = *p.budgets.memory_bytes;
    if (p.budgets.p95_latency_ms) j["policy"]["budgets"]["p95_latency_ms"] = *p.budgets.p95_latency_ms;
    if (p.budgets.cost_per_1k_tokens) j["policy"]["budgets"]["cost_per_1k_tokens"] = *p.budgets.cost_per_1k_tokens;
    j["tasks"] = json::array();
    for (const auto & t : r.tasks) j["tasks"].push_back({{"suite", t.suite}, {"class", t.task_class}, {"critical", t.critical}, {"requires", t.needs}});
    j["candidates"] = json::array();
    for (const auto & c : r.candidates) j["candidates"].push_back(candidate_json(c));
    j["assessments"] = json::array();
    for (const auto & a : r.assessments) {
        json aj = {{"candidate", a.candidate}, {"class", a.task_class}, {"outcome", decide::to_string(a.outcome)}, {"complete", a.complete}, {"verdicts", json::array()}};
        for (const auto & v : a.verdicts) {
            json vj = {{"rule", v.rule}, {"outcome", decide::to_string(v.outcome)}, {"message", v.message}};
            if (v.items_needed > 0) vj["items_needed"] = v.items_needed;
            aj["verdicts"].push_back(vj);
        }
        j["assessments"].push_back(aj);
    }
    j["recommendation"] = json::array();
    for (const auto & d : r.decisions)
        j["recommendation"].push_back({{"class", d.task_class}, {"action", decide::to_string(d.action)}, {"model", d.chosen}, {"backup", d.backup},
                                       {"rule", d.rule}, {"reason", d.reason}, {"flagged", d.flagged}});
    j["warnings"] = r.plan.warnings;
    const auto & s = r.stats;
    j["search"] = {{"candidates", s.candidates}, {"suite_runs", s.suite_runs}, {"suite_runs_reused", s.suite_runs_reused},
                   {"suite_runs_possible", s.suite_runs_possible}, {"drift_runs", s.drift_runs}, {"drift_reused", s.drift_reused},
                   {"speed_runs", s.speed_runs}, {"speed_reused", s.speed_reused}, {"variants_built", s.variants_built},
                   {"variants_reused", s.variants_reused}, {"seconds", s.seconds}, {"steps", r.steps}};
    return j;
}

namespace {

// What the search ran against what it could have run.
std::string search_summary(const PlanResult & r) {
    const auto & s = r.stats;
    return fmt::format("search: {} candidates; {} suite runs of {} possible ({} reused from the results store), {} drift and {} speed measurements ({} and {} reused); {:.1f} s",
                       s.candidates, s.suite_runs + s.suite_runs_reused, s.suite_runs_possible, s.suite_runs_reused, s.drift_runs + s.drift_reused,
                       s.speed_runs + s.speed_reused, s.drift_reused, s.speed_reused, s.seconds);
}

}  // namespace

std::string summary_text(const PlanResult & r) {
    std::string out;
    for (const auto & w : r.plan.warnings) out += "warning: " + w + "\n";
    for (const auto & d : r.decisions) {
        out += fmt::format("{:<12} {}{}{}\n", d.task_class + ":", verdict_line(d), d.backup.empty() ? "" : " (backup: " + d.backup + ")", d.flagged ? "  [needs a look]" : "");
        out += fmt::format("{:<12} {}: {}\n", "", d.rule, d.reason);
    }
    return out + search_summary(r) + "\n";
}

std::string report_markdown(const PlanResult & r) {
    const bool relative = r.plan.policy.drop_relative;
    std::string md = "# switchyard plan: " + r.plan.source.filename().string() + "\n\n## Decision\n\n| class | verdict | backup | rule | why |\n|---|---|---|---|---|\n";
    for (const auto & d : r.decisions)
        md += fmt::format("| {} | **{}**{} | {} | {} | {} |\n", d.task_class, verdict_line(d), d.flagged ? " (needs a look)" : "", d.backup.empty() ? "—" : d.backup, d.rule, d.reason);
    for (const auto & w : r.plan.warnings) md += "\n> warning: " + w + "\n";
    md += "\n## Candidates\n\n| candidate | kind | how | size (MiB) | bits/weight | mean KLD | top-1 agreement | p95 latency (ms) | cost / 1k tokens | status |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto & c : r.candidates)
        md += fmt::format("| {} | {} | {} | {} | {:.2f} | {} | {} | {} | {} | {} |\n", c.name, decide::to_string(c.kind), c.description, mib(c.file_bytes), c.bits_per_weight,
                          c.drift ? fmt::format("{:.4f}", c.drift->kld_mean) : "—", c.drift ? pct(c.drift->top1_agreement) : "—",
                          c.cost ? fmt::format("{:.1f}", c.cost->p95_latency_ms) : "—", c.cost ? fmt::format("{:.3g}", c.cost->cost_per_1k_tokens) : "—",
                          status_of(c));
    md += "\n## Tasks\n";
    for (const auto & t : r.tasks) {
        md += fmt::format("\n### {}{} (class {}{})\n\n| candidate | n scored (excluded) | accuracy [95% CI] | drop vs original{} | flips right→wrong / wrong→right |\n|---|---|---|---|---|\n",
                          t.suite, t.critical ? " — critical" : "", t.task_class, t.needs.empty() ? "" : ", requires " + t.needs, relative ? " (relative)" : " (points)");
        for (const auto & c : r.candidates) {
            const auto * s = c.suite(t.suite);
            if (s == nullptr) continue;
            md += fmt::format("| {} | {} ({}) | {} [{:.1f}, {:.1f}] | {} | {} |\n", c.name, s->n, s->excluded, pct(s->accuracy), 100 * s->ci95.lo, 100 * s->ci95.hi,
                              s->vs_original ? drop_text(*s, relative) : "—",
                              s->vs_original ? fmt::format("{} / {}", s->vs_original->right_to_wrong.size(), s->vs_original->wrong_to_right.size()) : "—");
        }
    }
    md += "\n## Verdicts by rule\n";
    for (const auto & cls : r.classes) {
        md += "\n### " + cls + "\n\n";
        for (const auto & a : r.assessments) {
            if (a.task_class != cls) continue;
            md += fmt::format("- **{}**: {}\n", a.candidate, decide::to_string(a.outcome));
            for (const auto & v : a.verdicts) md += fmt::format("  - {} {}: {}\n", v.rule, decide::to_string(v.outcome), v.message);
        }
    }
    md += "\n## Search\n\n" + search_summary(r) + "\n\n";
    for (const auto & step : r.steps) md += "- " + step + "\n";
    md += "\nThe portfolio for `switchyard serve` is in `portfolio.yaml`; every number above is in `decision.json`.\n";
    return md;
}

std::string report_html(const PlanResult & r) {
    const bool relative = r.plan.policy.drop_relative;
    const auto e = html_escape;
    std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">";
    h += "<title>switchyard plan: " + e(r.plan.source.filename().string()) + "</title><style>" + kStyle + "</style></head><body>\n";
    h += "<h1>switchyard plan: " + e(r.plan.source.filename().string()) + "</h1>\n<section id=\"verdict\">";
    for (const auto & d : r.decisions)
        h += fmt::format("<div class=\"verdict{}\"><b>{}</b>: {}{}<br><span class=\"muted\">{}: {}</span></div>\n", d.flagged ? " flagged" : "", e(d.task_class),
                         e(verdict_line(d)), d.backup.empty() ? "" : " <span class=\"muted\">(backup: " + e(d.backup) + ")</span>", e(d.rule), e(d.reason));
    for (const auto & w : r.plan.warnings) h += "<p class=\"insufficient\">warning: " + e(w) + "</p>\n";
    h += "</section>\n<h2>Charts</h2>\n";
    for (const auto & svg : charts(r)) h += svg + "\n";
    h += "<h2>Candidates</h2>\n<table><tr><th>candidate</th><th>kind</th><th>how</th><th>size (MiB)</th><th>bits/weight</th><th>mean KLD</th><th>top-1 agreement</th>"
         "<th>p95 latency (ms)</th><th>cost / 1k tokens</th><th>status</th></tr>\n";
    for (const auto & c : r.candidates)
        h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2f}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", e(c.name),
                         decide::to_string(c.kind), e(c.description), mib(c.file_bytes), c.bits_per_weight, c.drift ? fmt::format("{:.4f}", c.drift->kld_mean) : "—",
                         c.drift ? pct(c.drift->top1_agreement) : "—", c.cost ? fmt::format("{:.1f}", c.cost->p95_latency_ms) : "—",
                         c.cost ? fmt::format("{:.3g}", c.cost->cost_per_1k_tokens) : "—", e(status_of(c)));
    h += "</table>\n<h2>Tasks</h2>\n";
    for (const auto & t : r.tasks) {
        h += fmt::format("<h3>{}{} <span class=\"muted\">(class {})</span></h3>\n<table><tr><th>candidate</th><th>n scored (excluded)</th><th>accuracy [95% CI]</th><th>drop vs original{}</th>"
                         "<th>flipped items (source lines)</th></tr>\n",
                         e(t.suite), t.critical ? " — critical" : "", e(t.task_class), relative ? " (relative)" : " (points)");
        for (const auto & c : r.candidates) {
            const auto * s = c.suite(t.suite);
            if (s == nullptr) continue;
            std::string flips = "—";
            if (s->vs_original)
                flips = fmt::format("right→wrong {}: {}<br>wrong→right {}: {}", s->vs_original->right_to_wrong.size(), lines_list(s->vs_original->right_to_wrong),
                                    s->vs_original->wrong_to_right.size(), lines_list(s->vs_original->wrong_to_right));
            h += fmt::format("<tr><td>{}</td><td>{} ({})</td><td>{} [{:.1f}, {:.1f}]</td><td>{}</td><td>{}</td></tr>\n", e(c.name), s->n, s->excluded, pct(s->accuracy), 100 * s->ci95.lo,
                             100 * s->ci95.hi, s->vs_original ? e(drop_text(*s, relative)) : "—", flips);
        }
        h += "</table>\n";
    }
    h += "<h2>Verdicts by rule</h2>\n";
    for (const auto & cls : r.classes) {
        h += "<h3>" + e(cls) + "</h3><ul>\n";
        for (const auto & a : r.assessments) {
            if (a.task_class != cls) continue;
            const std::string outcome = decide::to_string(a.outcome);
            h += fmt::format("<li><b>{}</b>: <span class=\"{}\">{}</span><ul>", e(a.candidate), a.outcome == decide::Outcome::insufficient ? "insufficient" : outcome, outcome);
            for (const auto & v : a.verdicts)
                h += fmt::format("<li>{} <span class=\"{}\">{}</span>: {}</li>", e(v.rule), v.outcome == decide::Outcome::insufficient ? "insufficient" : decide::to_string(v.outcome),
                                 decide::to_string(v.outcome), e(v.message));
            h += "</ul></li>\n";
        }
        h += "</ul>\n";
    }
    h += "<h2>Search</h2>\n<p>" + e(search_summary(r)) + "</p><ol>\n";
    for (const auto & step : r.steps) h += "<li>" + e(step) + "</li>\n";
    h += "</ol>\n<p class=\"muted\">switchyard " + std::string(kVersion) + ". The portfolio for <code>switchyard serve</code> is in <code>portfolio.yaml</code>; every number is in <code>decision.json</code>.</p>\n</body></html>\n";
    return h;
}

void write_outputs(const PlanResult & r, const std::filesystem::path & out_dir) {
    std::filesystem::create_directories(out_dir);
    write_file_atomically(out_dir / "decision.json", decision_json(r).dump(2) + "\n");
    write_file_atomically(out_dir / "report.md", report_markdown(r));
    write_file_atomically(out_dir / "report.html", report_html(r));
    std::string header = "Written by `switchyard plan " + r.plan.source.string() + "`; run it with `switchyard serve --portfolio THIS_FILE`.";
    for (const auto & d : r.decisions) header += "\n" + d.task_class + ": " + verdict_line(d) + (d.backup.empty() ? "" : " (backup: " + d.backup + ")");
    model::save_portfolio(out_dir / "portfolio.yaml", r.portfolio, header);
}

}  // namespace switchyard::report
