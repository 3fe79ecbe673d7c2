#include "report/report.h"

#include "report/digest.h"
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

std::string pct(double share) { return fmt::format("{:.1f}%", 100 * share); }

bool is_chosen(const PlanResult & r, const std::string & name) {
    return std::any_of(r.decisions.begin(), r.decisions.end(), [&](const auto & d) { return d.chosen == name; });
}

std::string group_of(const PlanResult & r, const Candidate & c) {
    if (is_chosen(r, c.name)) return "chosen";
    if (c.kind == CandidateKind::original) return "original";
    return decide::to_string(c.kind);
}

std::string drop_text(const decide::SuiteScore & s, bool relative) {
    if (!s.vs_original) return "";
    const auto & d = relative ? s.vs_original->drop_relative : s.vs_original->drop_absolute;
    return fmt::format("{:+.1f}{} [{:.1f}, {:.1f}] (bootstrap 95%), p={:.3g}", 100 * d.mean_drop,
                       relative ? "%" : " pts", 100 * d.ci.lo, 100 * d.ci.hi, s.vs_original->mcnemar_p);
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

std::string size_text(const PlanResult & r, const Candidate & c) {
    const auto * original = original_of(r);
    if (c.file_bytes == 0) return "—";
    // A drafted original is the original's file and its draft's, both loaded.
    if (c.draft) return bytes_text(c.file_bytes) + " + draft " + bytes_text(c.draft->file_bytes);
    if (original == nullptr || original == &c) return bytes_text(c.file_bytes);
    return bytes_text(c.file_bytes) + " (" + share_of(c.file_bytes, original->file_bytes) + ")";
}

std::string tasks_text(const SignalCheck & s) {
    if (!s.tasks) return "not run";
    const std::string outcome = *s.tasks == decide::Outcome::insufficient ? "undecided" : decide::to_string(*s.tasks);
    if (s.worst_suite.empty()) return outcome;
    return fmt::format("{} (worst {} on `{}`)", outcome, signed_percent(-s.worst_drop), s.worst_suite);
}

// A chart and the one line that says how to read it.
struct Figure {
    std::string svg;
    std::string caption;
};

std::vector<Figure> charts(const PlanResult & r) {
    std::vector<Figure> out;
    const auto & policy = r.plan.policy;
    ScatterChart signal{
        .title = "Perplexity change against task drop",
        .x_label = "perplexity change vs the original (%)",
        .y_label = std::string("worst drop on the class's tasks (") + (policy.drop_relative ? "%" : "points") + ")"};
    for (const auto & s : signal_checks(r))
        if (s.tasks && !s.worst_suite.empty())
            signal.points.push_back(
                {100 * s.ppl_change, 100 * s.worst_drop, s.candidate + " · " + s.task_class,
                 *s.tasks == decide::Outcome::insufficient ? "insufficient" : decide::to_string(*s.tasks)});
    signal.limits = {{.vertical = true,
                      .at = 100 * kPerplexityPass,
                      .label = fmt::format("perplexity +{:.0f}%", 100 * kPerplexityPass)},
                     {.vertical = false, .at = 100 * policy.max_drop, .label = "max_drop " + pct(policy.max_drop)}};
    if (!signal.points.empty())
        out.push_back(
            {render(signal),
             "One point per variant and class: left of the dashed line perplexity alone would ship it; above the red line its tasks drop past the "
             "policy's limit (green passes, orange undecided, red fails)."});

    const auto suites = chart_suites(r);
    ScatterChart acc{.title = "Accuracy against size", .x_label = "file size (MiB, log scale)", .x_log = true};
    std::string names;
    for (const auto & s : suites) names += (names.empty() ? "" : ", ") + s;
    acc.y_label = suites.size() == 1 ? "accuracy on " + names : "mean accuracy on " + names;
    for (const auto & c : r.candidates)
        if (const auto a = mean_accuracy(c, suites))
            acc.points.push_back({c.file_bytes / 1048576.0, *a, c.name, group_of(r, c)});
    // Pareto front: no other point is both smaller and more accurate.
    auto sorted = acc.points;
    std::sort(sorted.begin(), sorted.end(), [](const Point & a, const Point & b) { return a.x < b.x; });
    double best = -1;
    for (const auto & p : sorted)
        if (p.y > best) {
            acc.front.push_back(p);
            best = p.y;
        }
    if (!acc.points.empty())
        out.push_back(
            {render(acc),
             std::string(
                 "Up and left is better: the dashed line joins the models no other beats on both size and accuracy (green: chosen).") +
                 (r.plan.policy.sequential
                      ? " Each model's accuracy is on the items it read: a random prefix of each suite, as long as its verdict needed (Tasks)."
                      : "")});

    ScatterChart kld{.title = "KL-divergence from the original against bits per weight",
                     .x_label = "bits per weight",
                     .y_label = "mean KLD (nats per token)"};
    for (const auto & c : r.candidates)
        if (c.drift) kld.points.push_back({c.bits_per_weight, c.drift->kld_mean, c.name, group_of(r, c)});
    if (!kld.points.empty())
        out.push_back(
            {render(kld),
             "Lower is closer to the original's next-token distribution; fewer bits per weight usually costs more KLD."});

    BarChart latency{.title = "p95 latency of one query", .unit = "ms"};
    BarChart cost{.title = "Cost per 1M tokens of one query (the same text for every model)",
                  .unit = fmt::format("at ${:g} per hour", policy.deployment.price_per_hour)};
    BarChart energy{.title = "Energy per 1k generated tokens", .unit = "J"};
    for (const auto & c : r.candidates)
        if (c.cost) {
            energy.unit = "J, " + c.cost->energy_source;
            break;
        }
    for (const auto & c : r.candidates) {
        if (!c.cost) continue;
        latency.bars.push_back(
            {c.name, c.cost->p95_latency_ms, group_of(r, c), fmt::format("{:.1f} ms", c.cost->p95_latency_ms)});
        if (c.cost->cost_known())
            cost.bars.push_back({c.name, c.cost->cost_per_1m_tokens, group_of(r, c), cost_text(*c.cost, true)});
        energy.bars.push_back({c.name, 1000 * c.cost->joules_per_token, group_of(r, c), energy_per_1k(*c.cost)});
    }
    if (!latency.bars.empty()) {
        out.push_back(
            {render(latency),
             "Shorter is faster: one query of the plan's prompt and answer length, 95th percentile (green: chosen)."});
        if (policy.deployment.price_per_hour > 0 && !cost.bars.empty())
            out.push_back(
                {render(cost),
                 "Shorter is cheaper: the hardware's price per hour times the time one query takes (the plan's prompt and answer, the same text for every model), per 1M of the reference model's tokens; brackets: 95% interval. Within 10% of each other is a tie."});
        out.push_back(
            {render(energy),
             "Shorter uses less energy per 1k generated tokens; modelled values are CPU-seconds times watts per busy core."});
    }
    return out;
}

json candidate_json(const Candidate & c) {
    json j = {{"name", c.name},
              {"kind", decide::to_string(c.kind)},
              {"path", c.path.string()},
              {"description", c.description},
              {"file_bytes", c.file_bytes},
              {"bits_per_weight", c.bits_per_weight},
              {"parameters", c.parameters},
              {"capabilities", c.capabilities},
              {"context_length", c.context_length},
              {"suites", c.suites}};
    if (!c.ladder.empty()) j["ladder"] = {{"method", c.ladder}, {"severity", c.severity}};
    if (!c.kv_cache.is_default()) j["kv_cache"] = c.kv_cache.label();
    if (c.draft)
        j["draft"] = {{"name", c.draft->name},
                      {"path", c.draft->path.string()},
                      {"file_bytes", c.draft->file_bytes},
                      {"max_tokens", c.draft->max_tokens}};
    if (!c.skipped.empty()) j["skipped"] = c.skipped;
    if (!c.not_run.empty()) j["not_run"] = c.not_run;
    if (!c.stopped.empty()) j["stopped"] = c.stopped;
    if (c.remote()) j["endpoint"] = {{"url", c.served.endpoint}, {"model", c.served.remote_model}};
    if (c.drift) j["drift"] = *c.drift;
    if (c.cost) j["cost"] = *c.cost;
    return j;
}

// "300 of 1000 (2 not scorable)": the prefix of the suite's order the candidate was scored on.
std::string items_read(const decide::SuiteScore & s) {
    return fmt::format("{} of {}{}", s.items(), s.items_available(),
                       s.excluded > 0 ? fmt::format(" ({} not scorable)", s.excluded) : "");
}

std::string stopped_why(const Candidate & c, const std::string & suite) {
    const auto it = c.stopped.find(suite);
    return it == c.stopped.end() ? "—" : it->second;
}

// Whether a candidate was measured; per class the reason it was not is in that class's list of
// candidates not chosen, in the report's units.
std::string status_of(const Candidate & c) {
    if (!c.skipped.empty()) return c.skipped;
    std::string out = c.suites.empty() ? "not measured" : "measured";
    std::string classes;
    for (const auto & [cls, why] : c.not_run) classes += (classes.empty() ? "" : ", ") + cls;
    return classes.empty() ? out : out + "; not run for " + classes + " (see its class)";
}

// Wide screens: verdicts across the top, charts two or three abreast; narrow ones stack everything.
// Tables scroll inside their box so that their header row stays in view.
const char * kStyle =
    R"(body{font:15px/1.45 system-ui,sans-serif;max-width:1500px;margin:1em auto;padding:0 1em;color:#222;overflow-wrap:anywhere}
h1{font-size:1.35em;margin:.3em 0}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin:.8em 0 .3em;font-size:1em}
.verdict{font-size:1.1em;font-weight:600;padding:.5em .9em;background:#eef6ee;border-left:5px solid #2e7d32;margin:.4em 0}
.verdict.flagged{background:#fdeeee;border-color:#b71c1c}.flag{padding:.4em .9em;background:#fff4e5;border-left:5px solid #b35900;margin:.4em 0}
.flag.agree{background:#f3f3f3;border-color:#888}.pass{color:#2e7d32}.fail{color:#b71c1c}.insufficient{color:#b35900}
.classes{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:0 2em}.classes ul{padding-left:1.2em;margin:.2em 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,440px),1fr));gap:1em 2em}
figure{margin:0}figcaption{font-size:.88em;color:#555;margin-top:.2em}
.table{overflow:auto;max-height:75vh;margin:.6em 0;border:1px solid #ddd}
table{border-collapse:collapse;font-size:.92em;width:100%}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0;z-index:1}
.chart{width:100%;display:block}.chart .title{font-weight:600;font-size:14px}.chart .tick{font-size:11px;fill:#444}
.chart .label{font-size:12px}.chart .point{font-size:10px;fill:#333}.chart .axis{stroke:#888}.chart .front{fill:none;stroke:#2e7d32;stroke-dasharray:4 3}
.chart .limit.v{stroke:#555;stroke-dasharray:5 4}.chart .limit.h{stroke:#b71c1c}.chart .limit-label{font-size:11px;fill:#555}
code{background:#f5f5f5;padding:0 3px}.muted{color:#777})";

}  // namespace

json decision_json(const PlanResult & r) {
    const auto & p = r.plan.policy;
    json j = {{"switchyard", kVersion}, {"plan", r.plan.source.string()}};
    j["policy"] = {{"accuracy_floor", p.accuracy_floor},
                   {"max_drop", p.max_drop},
                   {"drop", p.drop_relative ? "relative" : "absolute"},
                   {"alpha", p.alpha},
                   {"screen_max_kld", p.screen_max_kld},
                   {"price_per_hour", p.deployment.price_per_hour},
                   {"device", p.deployment.device}};
    if (p.min_agreement) j["policy"]["min_agreement"] = *p.min_agreement;
    if (p.budgets.memory_bytes) j["policy"]["budgets"]["memory_bytes"] = *p.budgets.memory_bytes;
    if (p.budgets.p95_latency_ms) j["policy"]["budgets"]["p95_latency_ms"] = *p.budgets.p95_latency_ms;
    if (p.budgets.cost_per_1k_tokens) j["policy"]["budgets"]["cost_per_1k_tokens"] = *p.budgets.cost_per_1k_tokens;
    j["tasks"] = json::array();
    j["policy"]["sequential"] = p.sequential;
    for (const auto & t : r.tasks)
        j["tasks"].push_back({{"suite", t.suite},
                              {"class", t.task_class},
                              {"critical", t.critical},
                              {"requires", t.needs},
                              {"items", t.items},
                              {"order_seed", t.order_seed}});
    j["candidates"] = json::array();
    for (const auto & c : r.candidates) j["candidates"].push_back(candidate_json(c));
    j["assessments"] = json::array();
    for (const auto & a : r.assessments) {
        json aj = {{"candidate", a.candidate},
                   {"class", a.task_class},
                   {"outcome", decide::to_string(a.outcome)},
                   {"complete", a.complete},
                   {"verdicts", json::array()}};
        for (const auto & v : a.verdicts) {
            json vj = {
                {"rule", v.rule}, {"id", v.id()}, {"outcome", decide::to_string(v.outcome)}, {"message", v.message}};
            if (v.drop)
                vj["drop"] = {
                    {"suite", v.drop->suite}, {"drop", v.drop->drop}, {"bounds", {v.drop->ci.lo, v.drop->ci.hi}},
                    {"alpha", v.drop->alpha}, {"paired", v.drop->n},  {"unscored_counted_wrong", v.drop->unscored}};
            if (v.items_needed > 0) vj["items_needed"] = v.items_needed;
            if (v.items_available > 0)
                vj["read"] = {
                    {"items", v.items_read}, {"of", v.items_available}, {"look", v.look + 1}, {"looks", v.looks}};
            aj["verdicts"].push_back(vj);
        }
        j["assessments"].push_back(aj);
    }
    j["recommendation"] = json::array();
    const auto lines = digest(r);
    for (const auto & d : r.decisions) {
        const auto line = std::find_if(lines.begin(), lines.end(),
                                       [&](const ClassDigest & c) { return c.task_class == d.task_class; });
        j["recommendation"].push_back({{"class", d.task_class},
                                       {"action", decide::to_string(d.action)},
                                       {"model", d.chosen},
                                       {"backup", d.backup},
                                       {"rule", d.rule},
                                       {"verdict", line == lines.end() ? "" : line->verdict},
                                       {"reason", d.reason},
                                       {"flagged", d.flagged},
                                       {"guarantee", d.guarantee}});
        if (!d.draft.empty()) j["recommendation"].back()["draft"] = d.draft;
    }
    j["warnings"] = r.plan.warnings;
    const auto & s = r.stats;
    j["search"] = {{"candidates", s.candidates},
                   {"suite_runs", s.suite_runs},
                   {"suite_runs_reused", s.suite_runs_reused},
                   {"suite_runs_possible", s.suite_runs_possible},
                   {"drift_runs", s.drift_runs},
                   {"drift_reused", s.drift_reused},
                   {"speed_runs", s.speed_runs},
                   {"speed_reused", s.speed_reused},
                   {"variants_built", s.variants_built},
                   {"variants_reused", s.variants_reused},
                   {"items_read", s.items_read},
                   {"items_available", s.items_available},
                   {"items_scored", s.items_scored},
                   {"items_reused", s.items_reused},
                   {"seconds", s.seconds},
                   {"steps", r.steps}};
    if (!s.workers.empty()) {
        j["search"]["suite_runs_on_workers"] = s.suite_runs_on_workers;
        j["search"]["worker_runs_not_needed"] = s.worker_runs_not_needed;
        for (const auto & w : s.workers)
            j["search"]["workers"].push_back({{"endpoint", w.endpoint},
                                              {"jobs", w.jobs},
                                              {"lost", w.lost},
                                              {"busy_seconds", w.busy_seconds},
                                              {"up", w.up}});
    }
    return j;
}

namespace {

// What the search ran against what it could have run.
std::string search_summary(const PlanResult & r) {
    const auto & s = r.stats;
    std::string on_workers;
    if (!s.workers.empty())
        on_workers = fmt::format(" ({} on {} worker{}, {} more measured ahead and not needed)", s.suite_runs_on_workers,
                                 s.workers.size(), s.workers.size() == 1 ? "" : "s", s.worker_runs_not_needed);
    return fmt::format(
        "search: {} candidates; {} suite runs of {} possible ({} reused from the results store){}, reading {} of their {} items ({:.0f}%{}; {} scored now, {} "
        "read back); {} drift and {} speed measurements ({} and {} reused); {:.1f} s",
        s.candidates, s.suite_runs + s.suite_runs_reused, s.suite_runs_possible, s.suite_runs_reused, on_workers,
        s.items_read, s.items_available,
        s.items_available > 0 ? 100.0 * static_cast<double>(s.items_read) / static_cast<double>(s.items_available)
                              : 0.0,
        r.plan.policy.sequential ? ", sequential tests" : ", every item: sequential tests off", s.items_scored,
        s.items_reused, s.drift_runs + s.drift_reused, s.speed_runs + s.speed_reused, s.drift_reused, s.speed_reused,
        s.seconds);
}

}  // namespace

namespace {

struct Table {
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

Table candidates_table(const PlanResult & r) {
    Table t{.header = {"candidate", "kind", "how", "size", "bits/weight", "perplexity change", "mean KLD",
                       "top-1 agreement", "p95 latency", "peak memory", "cost / 1M tokens", "energy / 1k tokens",
                       "status"}};
    for (const auto & c : r.candidates)
        t.rows.push_back(
            {c.name, decide::to_string(c.kind), c.description, size_text(r, c),
             fmt::format("{:.2f}", c.bits_per_weight), c.drift ? signed_percent(c.drift->ppl_ratio - 1) : "—",
             c.drift ? fmt::format("{:.4f}", c.drift->kld_mean) : "—", c.drift ? pct(c.drift->top1_agreement) : "—",
             c.cost ? fmt::format("{:.1f} ms", c.cost->p95_latency_ms) : "—",
             c.cost && !c.cost->remote ? bytes_text(c.cost->peak_rss_bytes) : "—",
             c.cost && r.plan.policy.deployment.price_per_hour > 0 ? cost_text(*c.cost, true) : "—",
             c.cost && !c.cost->remote ? energy_per_1k(*c.cost) : "—", status_of(c)});
    return t;
}

// Per variant and class: the cheap signals and what the tasks said.
Table signals_table(const PlanResult & r) {
    Table t{.header = {"variant", "class", "perplexity change", "mean KLD", "perplexity alone", "tasks", "agree?"}};
    for (const auto & s : signal_checks(r))
        t.rows.push_back(
            {s.candidate, s.task_class, signed_percent(s.ppl_change), fmt::format("{:.4f}", s.kld),
             s.ppl_passes ? "ship" : "reject", tasks_text(s),
             !s.tasks || *s.tasks == decide::Outcome::insufficient ? "—" : (s.flag.empty() ? "yes" : "no")});
    return t;
}

std::vector<std::string> flags(const PlanResult & r) {
    std::vector<std::string> out;
    for (const auto & s : signal_checks(r))
        if (!s.flag.empty()) out.push_back(s.flag);
    return out;
}

// What "perplexity alone would pass" means here, said wherever the flags are.
std::string signal_definition(const PlanResult & r) {
    return fmt::format(
        "Perplexity alone passes a variant whose perplexity rises at most {:.0f}% over the original's on the screen's text; KLD alone, one with a mean KLD "
        "within the screen's {:.2f} nats. The tasks decide: R2 and R3 on each class's suites.",
        100 * kPerplexityPass, r.plan.policy.screen_max_kld);
}

std::string no_flag_text(const PlanResult & r) {
    const auto checks = signal_checks(r);
    const auto decided = std::count_if(checks.begin(), checks.end(), [](const SignalCheck & s) {
        return s.tasks && *s.tasks != decide::Outcome::insufficient;
    });
    return fmt::format("Perplexity and KLD agree with the tasks on all {} variant and class pairs the tasks decided.",
                       decided);
}

std::string markdown_table(const Table & t) {
    const auto row = [](const std::vector<std::string> & cells) {
        std::string out = "|";
        for (const auto & c : cells) out += " " + c + " |";
        return out + "\n";
    };
    std::string md = row(t.header) + "|";
    for (std::size_t i = 0; i < t.header.size(); ++i) md += "---|";
    md += "\n";
    for (const auto & r : t.rows) md += row(r);
    return md;
}

// `code` spans in Markdown become <code> in HTML, the rest escaped.
std::string html_inline(const std::string & text) {
    std::string out;
    bool in_code = false;
    std::size_t from = 0;
    for (std::size_t at = text.find('`'); at != std::string::npos; at = text.find('`', from)) {
        out += escape_xml(text.substr(from, at - from)) + (in_code ? "</code>" : "<code>");
        in_code = !in_code;
        from = at + 1;
    }
    out += escape_xml(text.substr(from));
    return in_code ? out + "</code>" : out;
}

std::string html_table(const Table & t) {
    std::string h = "<div class=\"table\"><table><thead><tr>";
    for (const auto & c : t.header) h += "<th>" + escape_xml(c) + "</th>";
    h += "</tr></thead><tbody>\n";
    for (const auto & r : t.rows) {
        h += "<tr>";
        for (const auto & c : r) h += "<td>" + html_inline(c) + "</td>";
        h += "</tr>\n";
    }
    return h + "</tbody></table></div>\n";
}

}  // namespace

std::string summary_text(const PlanResult & r) {
    std::string out;
    for (const auto & w : r.plan.warnings) out += "warning: " + w + "\n";
    const auto classes = digest(r);
    for (const auto & c : classes) out += c.verdict + (c.flagged ? "  [needs a look]" : "") + "\n";
    const auto flagged = flags(r);
    out += "perplexity vs tasks: " +
        (flagged.empty() ? no_flag_text(r)
                         : std::to_string(flagged.size()) + " disagreement" + (flagged.size() == 1 ? "" : "s")) +
        "\n";
    for (const auto & f : flagged) out += "  ! " + f + "\n";
    for (const auto & c : classes) {
        out += c.task_class + ", the evidence:\n";
        for (const auto & e : c.evidence) out += "  - " + e + "\n";
        for (const auto & d : r.decisions)
            if (d.task_class == c.task_class) out += "  what it claims: " + d.guarantee + "\n";
        out += c.task_class + ", not chosen:\n";
        for (const auto & n : c.not_chosen) out += "  - " + n + "\n";
    }
    return out + search_summary(r) + "\n";
}

std::string report_markdown(const PlanResult & r) {
    const bool relative = r.plan.policy.drop_relative;
    const auto classes = digest(r);
    std::string md = "# switchyard plan: " + r.plan.source.filename().string() + "\n\n## Verdicts\n\n";
    for (const auto & c : classes) md += "- **" + c.verdict + "**" + (c.flagged ? " (needs a look)" : "") + "\n";
    for (const auto & w : r.plan.warnings) md += "\n> warning: " + w + "\n";
    md += "\n## Perplexity against the tasks\n\n";
    const auto flagged = flags(r);
    if (flagged.empty()) md += no_flag_text(r) + "\n";
    for (const auto & f : flagged) md += "- **" + f + "**\n";
    md += "\n" + signal_definition(r) + "\n\n" + markdown_table(signals_table(r));
    for (const auto & c : classes) {
        md += "\n## " + c.task_class + "\n\n**" + c.verdict + "**\n\nThe evidence, for " + c.task_class + ":\n\n";
        for (const auto & e : c.evidence) md += "- " + e + "\n";
        md += "\nNot chosen:\n\n";
        for (const auto & n : c.not_chosen) md += "- " + n + "\n";
    }
    md += "\n## Candidates\n\n" + markdown_table(candidates_table(r));
    md += "\n## Tasks\n";
    for (const auto & t : r.tasks) {
        md += fmt::format(
            "\n### {}{} (class {}{})\n\n| candidate | items read | accuracy [95% CI] | drop vs original{} | flips right→wrong / wrong→right | why it stopped there |\n|---|---|---|---|---|---|\n",
            t.suite, t.critical ? " — critical" : "", t.task_class, t.needs.empty() ? "" : ", requires " + t.needs,
            relative ? " (relative)" : " (points)");
        for (const auto & c : r.candidates) {
            const auto * s = c.suite(t.suite);
            if (s == nullptr) continue;
            md += fmt::format("| {} | {} | {} [{:.1f}, {:.1f}] | {} | {} | {} |\n", c.name, items_read(*s),
                              pct(s->accuracy), 100 * s->ci95.lo, 100 * s->ci95.hi,
                              s->vs_original ? drop_text(*s, relative) : "—",
                              s->vs_original ? fmt::format("{} / {}", s->vs_original->right_to_wrong.size(),
                                                           s->vs_original->wrong_to_right.size())
                                             : "—",
                              stopped_why(c, t.suite));
        }
    }
    md += "\n## Verdicts by rule\n";
    for (const auto & d : r.decisions) {
        md += "\n### " + d.task_class + "\n\nThe decision, in full: " + d.rule + ": " + d.reason +
            "\n\nWhat it claims: " + d.guarantee + ".\n\n";
        for (const auto & a : r.assessments) {
            if (a.task_class != d.task_class) continue;
            md += fmt::format("- **{}**: {}\n", a.candidate, decide::to_string(a.outcome));
            for (const auto & v : a.verdicts)
                md += fmt::format("  - {} {}: {}\n", v.id(), decide::to_string(v.outcome), v.message);
        }
    }
    md += "\n## Search\n\n" + search_summary(r) + "\n\n";
    for (const auto & step : r.steps) md += "- " + step + "\n";
    md += "\nThe portfolio for `switchyard serve` is in `portfolio.yaml`; every number above is in `decision.json`.\n";
    return md;
}

std::string report_html(const PlanResult & r) {
    const bool relative = r.plan.policy.drop_relative;
    const auto e = escape_xml;
    const auto classes = digest(r);
    std::string h =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
    h += "<title>switchyard plan: " + e(r.plan.source.filename().string()) + "</title><style>" + kStyle +
        "</style></head><body>\n";
    h += "<h1>switchyard plan: " + e(r.plan.source.filename().string()) + "</h1>\n<section id=\"verdict\">";
    for (const auto & c : classes)
        h += fmt::format("<p class=\"verdict{}\" data-check=\"verdict\">{}</p>\n", c.flagged ? " flagged" : "",
                         html_inline(c.verdict));
    for (const auto & w : r.plan.warnings) h += "<p class=\"insufficient\">warning: " + e(w) + "</p>\n";
    h += "</section>\n<section id=\"signals\">";
    const auto flagged = flags(r);
    if (flagged.empty()) h += "<p class=\"flag agree\" data-check=\"flag\">" + e(no_flag_text(r)) + "</p>\n";
    for (const auto & f : flagged) h += "<p class=\"flag\" data-check=\"flag\">" + html_inline(f) + "</p>\n";
    h += "<p class=\"muted\">" + e(signal_definition(r)) + "</p></section>\n<div class=\"classes\">";
    for (const auto & c : classes) {
        h += "<section class=\"class\"><h2>" + e(c.task_class) + "</h2><h3>The evidence</h3><ul>";
        for (const auto & x : c.evidence) h += "<li>" + html_inline(x) + "</li>";
        h += "</ul><h3>Not chosen</h3><ul>";
        for (const auto & x : c.not_chosen) h += "<li>" + html_inline(x) + "</li>";
        h += "</ul></section>\n";
    }
    h += "</div>\n<h2>Charts</h2>\n<div class=\"charts\">\n";
    for (const auto & f : charts(r))
        h += "<figure>" + f.svg + "<figcaption>" + e(f.caption) + "</figcaption></figure>\n";
    h += "</div>\n<h2>Perplexity beside the tasks</h2>\n" + html_table(signals_table(r));
    h += "<h2>Candidates</h2>\n" + html_table(candidates_table(r));
    h += "<h2>Tasks</h2>\n";
    for (const auto & t : r.tasks) {
        h += fmt::format(
            "<h3>{}{} <span class=\"muted\">(class {})</span></h3>\n<div class=\"table\"><table><thead><tr><th>candidate</th><th>items read</th>"
            "<th>accuracy [95% CI]</th><th>drop vs original{}</th><th>flipped items (source lines)</th><th>why it stopped there</th></tr></thead><tbody>\n",
            e(t.suite), t.critical ? " — critical" : "", e(t.task_class), relative ? " (relative)" : " (points)");
        for (const auto & c : r.candidates) {
            const auto * s = c.suite(t.suite);
            if (s == nullptr) continue;
            std::string flips = "—";
            if (s->vs_original)
                flips = fmt::format("right→wrong {}: {}<br>wrong→right {}: {}", s->vs_original->right_to_wrong.size(),
                                    lines_list(s->vs_original->right_to_wrong), s->vs_original->wrong_to_right.size(),
                                    lines_list(s->vs_original->wrong_to_right));
            h += fmt::format(
                "<tr><td>{}</td><td>{}</td><td>{} [{:.1f}, {:.1f}]</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(c.name), e(items_read(*s)), pct(s->accuracy), 100 * s->ci95.lo, 100 * s->ci95.hi,
                s->vs_original ? e(drop_text(*s, relative)) : "—", flips, e(stopped_why(c, t.suite)));
        }
        h += "</tbody></table></div>\n";
    }
    h += "<h2>Verdicts by rule</h2>\n";
    for (const auto & d : r.decisions) {
        h += "<h3>" + e(d.task_class) + "</h3><p>The decision, in full: " + e(d.rule + ": " + d.reason) +
            "</p><p>What it claims: " + e(d.guarantee) + ".</p><ul>\n";
        for (const auto & a : r.assessments) {
            if (a.task_class != d.task_class) continue;
            const std::string outcome = decide::to_string(a.outcome);
            h += fmt::format("<li><b>{}</b>: <span class=\"{}\">{}</span><ul>", e(a.candidate),
                             a.outcome == decide::Outcome::insufficient ? "insufficient" : outcome, outcome);
            for (const auto & v : a.verdicts)
                h += fmt::format(
                    "<li>{} <span class=\"{}\">{}</span>: {}</li>", e(v.rule),
                    v.outcome == decide::Outcome::insufficient ? "insufficient" : decide::to_string(v.outcome),
                    decide::to_string(v.outcome), e(v.message));
            h += "</ul></li>\n";
        }
        h += "</ul>\n";
    }
    h += "<h2>Search</h2>\n<p>" + e(search_summary(r)) + "</p><ol>\n";
    for (const auto & step : r.steps) h += "<li>" + e(step) + "</li>\n";
    h += "</ol>\n<p class=\"muted\">switchyard " + std::string(kVersion) +
        ". The portfolio for <code>switchyard serve</code> is in <code>portfolio.yaml</code>; every number is in <code>decision.json</code>.</p>\n</body></html>\n";
    return h;
}

void write_outputs(const PlanResult & r, const std::filesystem::path & out_dir) {
    std::filesystem::create_directories(out_dir);
    write_file_atomically(out_dir / "decision.json", decision_json(r).dump(2) + "\n");
    write_file_atomically(out_dir / "report.md", report_markdown(r));
    write_file_atomically(out_dir / "report.html", report_html(r));
    std::string header = "Written by `switchyard plan " + r.plan.source.string() +
        "`; run it with `switchyard serve --portfolio THIS_FILE`.";
    for (const auto & d : r.decisions)
        header += "\n" + d.task_class + ": " + action_text(d) + (d.backup.empty() ? "" : " (backup: " + d.backup + ")");
    // Each route carries its class's verdict line (at most kVerdictMaxChars, what the dashboard
    // shows) and the report behind it (the dashboard's evidence link), not the whole reasoning.
    model::Portfolio portfolio = r.portfolio;
    for (const auto & line : digest(r)) {
        for (auto & route : portfolio.routes) {
            if (route.name != decide::portfolio_name(line.task_class)) continue;
            route.note = line.verdict;
            route.evidence = std::filesystem::absolute(out_dir / "report.html").string();
        }
    }
    model::save_portfolio(out_dir / "portfolio.yaml", portfolio, header);
}

}  // namespace switchyard::report
