#include "decide/planner.h"

#include "decide/measure.h"
#include "decide/cost_rules.h"
#include "decide/search.h"
#include "decide/variants.h"
#include "engine/llama_engine.h"
#include "eval/run_suite.h"
#include "model/model_info.h"
#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

namespace switchyard::decide {

namespace {

// One run of the planner: the orchestration around the pure decision core (rules, choice, the
// search's next step) and the measurements.
class Planner : public MeasurementSource {
public:
    Planner(const Plan & plan, const PlanRunOptions & options)
        : plan_(plan), options_(options), measure_(plan, options.results, options.threads, options.progress) {
        result_.plan = plan;
        std::filesystem::create_directories(options.out_dir / "models");
        std::filesystem::create_directories(options.out_dir / "tasks");
    }

    PlanResult run() {
        // Workers are reached first: a wrong address must not wait for the variants to be built.
        if (!plan_.workers.empty())
            workers_.emplace(plan_.workers,
                             PlanWorkersOptions{.executable = std::filesystem::read_symlink("/proc/self/exe"),
                                                .results = std::filesystem::absolute(options_.results),
                                                .log_dir = options_.out_dir / "workers",
                                                .normalize = plan_.normalize,
                                                .log = options_.log});
        load_tasks();
        if (plan_.base)
            result_.candidates.push_back(
                candidate_from(*plan_.base, CandidateKind::original, "the model the team has, as given"));
        if (!plan_.variants.empty()) {
            auto built = build_variants(plan_, original(),
                                        {.models_dir = options_.out_dir / "models",
                                         .base_hash = measure_.store().model_hash(plan_.base->path),
                                         .results = options_.results,
                                         .threads = options_.threads,
                                         .progress = options_.progress,
                                         .note = [this](const std::string & line) { note(line); }});
            result_.stats.variants_built = built.built;
            result_.stats.variants_reused = built.reused;
            for (auto & v : built.variants) result_.candidates.push_back(std::move(v));
        }
        for (const auto & a : plan_.alternatives) add_alternative(a);
        add_drafted_originals();
        result_.stats.candidates = result_.candidates.size();
        // A drafted original is never scored (its answers are the original's): no suite runs of its own.
        result_.stats.suite_runs_possible =
            static_cast<std::size_t>(std::count_if(result_.candidates.begin(), result_.candidates.end(),
                                                   [](const Candidate & c) { return c.kind != CandidateKind::drafted; })) *
            suites_.size();

        if (plan_.base) screen_variants();
        start_workers();
        auto decided = search_and_decide(
            plan_.policy, result_.candidates, result_.tasks, result_.classes, *this,
            {.costs_matter = costs_matter(), .note = [this](const std::string & line) { note(line); }});
        result_.assessments = std::move(decided.assessments);
        result_.decisions = std::move(decided.decisions);
        finish_evidence();
        stop_workers();
        static_cast<MeasureCounts &>(result_.stats) = measure_.counts();
        for (const auto & c : result_.candidates)
            for (const auto & s : c.suites) {
                result_.stats.items_read += s.items();
                result_.stats.items_available += s.items_available();
            }
        build_portfolio();
        result_.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        return std::move(result_);
    }

private:
    struct Suite {
        eval::TaskSuite suite;
        TaskRef ref;
    };

    void note(const std::string & line) {
        result_.steps.push_back(line);
        if (options_.log)
            options_.log(fmt::format("[{:6.1f} s] {}",
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(),
                                     line));
    }

    Candidate & original() { return result_.candidates.front(); }

    std::vector<const eval::TaskSuite *> suites_of(const std::string & cls) const {
        std::vector<const eval::TaskSuite *> out;
        for (const auto & s : suites_)
            if (s.ref.task_class == cls) out.push_back(&s.suite);
        return out;
    }

    // With workers, every candidate's suites are queued in the order the search is likely to ask
    // for them: the original on every class, then per class each ladder mild to aggressive and the
    // alternatives smallest first. The search itself is unchanged (its results are the same as a
    // run without workers); idle workers only measure ahead of it.
    void start_workers() {
        if (!workers_) return;
        measure_.use_workers(&*workers_);
        note(fmt::format("workers: {} rpc-server{} measure candidates' task suites side by side ({})",
                         plan_.workers.size(), plan_.workers.size() == 1 ? "" : "s", fmt::join(plan_.workers, ", ")));
        std::vector<Candidate *> alternatives;
        for (auto & c : result_.candidates)
            if (c.kind == CandidateKind::alternative && !c.remote()) alternatives.push_back(&c);
        std::stable_sort(alternatives.begin(), alternatives.end(),
                         [](const Candidate * a, const Candidate * b) { return a->file_bytes < b->file_bytes; });
        const auto methods = ladders(result_.candidates);
        // The original on every class first: the search runs it before any ladder.
        if (plan_.base)
            for (const auto & cls : result_.classes)
                workers_->prefetch(measure_.worker_job(original(), suites_of(cls)));
        for (const auto & cls : result_.classes) {
            const auto suites = suites_of(cls);
            if (plan_.base && capable(original(), cls, result_.tasks))
                for (const auto & ladder : methods)
                    for (const auto * v : ladder) workers_->prefetch(measure_.worker_job(*v, suites));
            for (auto * a : alternatives)
                if (capable(*a, cls, result_.tasks)) workers_->prefetch(measure_.worker_job(*a, suites));
        }
    }

    void stop_workers() {
        if (!workers_) return;
        result_.stats.workers = workers_->stats();
        result_.stats.worker_runs_not_needed = workers_->unused_prefetches();
        for (const auto & w : result_.stats.workers)
            note(fmt::format("workers: {} measured {} job{} in {:.1f} s{}{}", w.endpoint, w.jobs,
                             w.jobs == 1 ? "" : "s", w.busy_seconds,
                             w.lost > 0 ? fmt::format("; went away during {} (measured elsewhere)", w.lost) : "",
                             w.up ? "" : "; down at the end"));
        measure_.use_workers(nullptr);
        workers_.reset();
    }

    void load_tasks() {
        for (const auto & t : plan_.tasks) {
            std::string spec = t.spec;
            if (t.built()) {
                const auto file = options_.out_dir / "tasks" / (t.built_name() + ".jsonl");
                write_file_atomically(file, build_task_suite(t));
                spec = file.string();
            }
            Suite s{.suite = eval::load_suite(spec)};
            for (const auto & skipped : s.suite.skipped)
                note(fmt::format("{}:{}: skipped: {}", spec, skipped.line, skipped.reason));
            if (!t.name.empty()) s.suite.settings.name = t.name;
            s.ref = TaskRef{.suite = s.suite.settings.name,
                            .task_class = t.task_class,
                            .critical = t.critical || s.suite.settings.critical,
                            .needs = t.needs.empty() ? s.suite.settings.requires_capability : t.needs,
                            .items = s.suite.items.size(),
                            .order_seed = eval::order_seed(s.suite)};
            for (const auto & other : suites_)
                if (other.ref.suite == s.ref.suite)
                    throw Error("{}: two tasks are named '{}': give one a 'name'", plan_.source.string(), s.ref.suite);
            if (std::find(result_.classes.begin(), result_.classes.end(), s.ref.task_class) == result_.classes.end())
                result_.classes.push_back(s.ref.task_class);
            result_.tasks.push_back(s.ref);
            suites_.push_back(std::move(s));
        }
    }

    // A model as the plan names it: a GGUF file (what the file says, plus declared capabilities),
    // or a model behind an endpoint (what the server says of it).
    Candidate candidate_from(const ModelRef & m, CandidateKind kind, const std::string & description) {
        Candidate c{.name = m.name, .kind = kind, .served = m, .description = description};
        if (m.endpoint.empty()) {
            const auto info = model::inspect_gguf(m.path);
            c.served = {};
            c.path = m.path;
            c.capabilities = info.capabilities;
            c.context_length = static_cast<int>(info.context_length);
            c.file_bytes = info.file_bytes;
            c.bits_per_weight = info.bits_per_weight;
            c.parameters = info.parameters;
            c.same_vocabulary = kind != CandidateKind::alternative;
        } else {
            const engine::RemoteEngine server(remote_options(m));
            c.description += " (served at " + m.endpoint + ")";
            c.capabilities = {"text"};
            c.context_length = server.model().context_length;
            c.served.remote_model = server.model().name;
        }
        c.capabilities.insert(c.capabilities.end(), m.capabilities.begin(), m.capabilities.end());
        return c;
    }

    void add_alternative(const ModelRef & a) {
        auto c = candidate_from(a, CandidateKind::alternative, "a smaller native model, as given");
        for (const auto & existing : result_.candidates)
            if (existing.name == c.name)
                throw Error("{}: two candidates are named '{}': give one a 'name'", plan_.source.string(), c.name);
        result_.candidates.push_back(std::move(c));
    }

    // The models that may draft for the original, by name and file: the plan's list, or (auto) every
    // local alternative and every built variant with a file of its own (not a duplicate's, not the
    // base's own file served with another KV cache).
    std::vector<std::pair<std::string, std::filesystem::path>> draft_models() const {
        std::vector<std::pair<std::string, std::filesystem::path>> out;
        const auto & base = plan_.base->path;
        if (plan_.drafts.automatic) {
            for (const auto & c : result_.candidates)
                if ((c.kind == CandidateKind::alternative || c.kind == CandidateKind::variant) && !c.remote() &&
                    c.skipped.empty() && c.path != base)
                    out.emplace_back(c.name, c.path);
            return out;
        }
        for (const auto & d : plan_.drafts.models) {
            if (!d.path.empty()) {
                out.emplace_back(d.name, d.path);
                continue;
            }
            const auto it = std::find_if(result_.candidates.begin(), result_.candidates.end(),
                                         [&](const Candidate & c) { return c.name == d.name; });
            SWITCHYARD_INVARIANT(it != result_.candidates.end(), "a draft the plan names is one of its candidates: " + d.name);
            out.emplace_back(it->name, it->path);
        }
        return out;
    }

    // "The original, drafted by D" for each draft model: the original's file, capabilities and size,
    // its answers the original's. A model that cannot draft for it (another vocabulary) is listed
    // with the reason and not measured: a reason, not an error.
    void add_drafted_originals() {
        if (!plan_.base || !plan_.base->endpoint.empty()) return;
        for (const auto & [name, path] : draft_models()) {
            Candidate c = original();
            c.kind = CandidateKind::drafted;
            c.name = original().name + "+draft=" + name;
            c.description = fmt::format("the original, drafted by {} (up to {} tokens per step)", name,
                                        plan_.drafts.max_tokens);
            c.draft = Draft{.name = name,
                            .path = path,
                            .file_bytes = model::inspect_gguf(path).file_bytes,
                            .max_tokens = plan_.drafts.max_tokens};
            if (const auto why = engine::draft_incompatibility(original().path, path); !why.empty())
                c.skipped = fmt::format("{} cannot draft for {}: {}", name, original().name, why);
            note(c.skipped.empty() ? "drafts: " + c.name + ": " + c.description : "drafts: " + c.skipped);
            result_.candidates.push_back(std::move(c));
        }
    }

    // The cheap signal: drift from the original on a small text, for every distinct variant.
    void screen_variants() {
        if (plan_.variants.empty()) return;
        if (plan_.screen.files.empty()) {
            note("screen: no text given ('screen' or 'calibration'), so every variant goes to the task runs");
            return;
        }
        for (auto & c : result_.candidates) {
            if (c.kind != CandidateKind::variant || !c.skipped.empty()) continue;
            c.drift = measure_.drift(original(), c);
            const auto verdict = rule_screen(plan_.policy, *c.drift);
            if (verdict.outcome == Outcome::fail) c.skipped = "screened out: " + verdict.message;
        }
        const auto & counts = measure_.counts();
        note(fmt::format("screen: drift of {} variants on {} chunks ({} measured, {} reused)",
                         counts.drift_runs + counts.drift_reused, plan_.screen.chunks, counts.drift_runs,
                         counts.drift_reused));
    }

    const Suite & suite_named(const std::string & name) const {
        const auto it =
            std::find_if(suites_.begin(), suites_.end(), [&](const Suite & s) { return s.ref.suite == name; });
        SWITCHYARD_INVARIANT(it != suites_.end(), "every suite a search asks for is one of the plan's: " + name);
        return *it;
    }

    // One look at a candidate's suite: its first `items` items in the suite's order, paired with the
    // original's (which the search has scored as far already). The paired bootstrap, evidence for
    // the report only, waits for the last look (finish_evidence).
    SuiteScore score(const Candidate & c, const TaskRef & t, std::size_t items) override {
        if (workers_ && started_.insert(c.name + "/" + t.task_class).second)
            measure_.on_workers(c, suites_of(t.task_class));
        const auto started = std::chrono::steady_clock::now();
        const std::size_t before = c.suite(t.suite) ? c.suite(t.suite)->items() : 0;
        auto r = measure_.suite_items(c, suite_named(t.suite).suite, items);
        // A round is a few seconds on a small model and no progress line is wanted for it; on a
        // large one, each round that takes long says where the run is.
        if (const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            seconds > 10)
            note(fmt::format("tasks: {} on `{}`: items {}-{} of {} in {:.0f} s", c.name, t.suite, before + 1, items,
                             t.items, seconds));
        auto & kept = results_[c.name][t.suite];
        kept = std::move(r);
        if (c.kind == CandidateKind::original) return suite_score(t.suite, t.critical, kept, nullptr, false);
        // Paired where the search read the original as far (not in a class the original cannot serve).
        const auto base = results_.find(original_name());
        if (base == results_.end() || !base->second.count(t.suite) || base->second.at(t.suite).outcomes.size() < items)
            return suite_score(t.suite, t.critical, kept, nullptr, false);
        const auto paired = eval::first_items(base->second.at(t.suite), items);
        return suite_score(t.suite, t.critical, kept, &paired, false);
    }

    std::string original_name() const { return plan_.base ? result_.candidates.front().name : ""; }

    // The paired bootstrap intervals (the report's evidence) on each candidate's last look.
    void finish_evidence() {
        const auto base = results_.find(original_name());
        if (base == results_.end()) return;
        for (auto & c : result_.candidates) {
            if (c.kind == CandidateKind::original) continue;
            for (auto & s : c.suites) {
                if (!s.vs_original || !results_.count(c.name) || !results_.at(c.name).count(s.suite)) continue;
                const auto & own = results_.at(c.name).at(s.suite);
                if (base->second.at(s.suite).outcomes.size() < own.outcomes.size()) continue;
                s.vs_original =
                    eval::compare_outcomes(eval::first_items(base->second.at(s.suite), own.outcomes.size()), own, true);
            }
        }
    }

    bool costs_matter() const { return plan_.policy.budgets.any() || plan_.policy.deployment.price_per_hour > 0; }

    void measure_cost(Candidate & c) override {
        c.cost = measure_.cost(c);
        note("speed: " + c.name + (c.remote() ? " (through " + c.served.endpoint + ")" : "") + ": " +
             describe_cost(*c.cost));
    }

    void build_portfolio() {
        auto & p = result_.portfolio;
        auto add_model = [&](const std::string & name) {
            if (name.empty() || p.find_model(portfolio_name(name))) return;
            const auto it = std::find_if(result_.candidates.begin(), result_.candidates.end(),
                                         [&](const Candidate & c) { return c.name == name; });
            model::PortfolioModel m{.name = portfolio_name(name)};
            if (it->remote()) {
                m.endpoint = it->served.endpoint;
                m.remote_model = it->served.remote_model;
                m.api_key_env = it->served.api_key_env;
            } else {
                m.path = std::filesystem::absolute(it->path);
                m.kv_cache = it->kv_cache;
                // serve runs the model as it was measured: prompts normalized when the plan's were.
                m.normalize = plan_.normalize;
            }
            // The context the capability rule judged; the threads its latency was measured with.
            m.context = std::max(it->context_length, 16);
            m.threads = measure_.speed_threads();
            if (it->cost) m.cost_per_1k_tokens = it->cost->cost_per_1k_tokens;
            m.note = std::string(to_string(it->kind)) + ": " + it->description;
            if (it->draft) {
                m.draft = add_draft(p, *it->draft);
                m.draft_max = it->draft->max_tokens;
            }
            p.models.push_back(m);
        };
        for (const auto & d : result_.decisions) {
            add_model(d.chosen);
            add_model(d.backup);
            model::Route r{.name = portfolio_name(d.task_class),
                           .model = portfolio_name(d.chosen),
                           .note = std::string(to_string(d.action)) + " (" + d.rule + "): " + d.reason};
            if (!d.backup.empty()) r.fallback.push_back(portfolio_name(d.backup));
            if (!r.model.empty()) p.routes.push_back(r);
        }
        // High-volume traffic goes to the route of the non-critical tasks when there is one.
        for (const auto & t : result_.tasks)
            if (!t.critical && p.find_route(portfolio_name(t.task_class))) {
                p.default_route = portfolio_name(t.task_class);
                break;
            }
        if (p.default_route.empty() && !p.routes.empty()) p.default_route = p.routes.front().name;
        if (const auto budget = plan_.policy.budgets.memory_bytes) load_within(p, *budget);
    }

    // The portfolio model a drafted original drafts with: the candidate of that name where there is
    // one (a variant, an alternative), else the draft's file as a model of its own. Returns its name.
    std::string add_draft(model::Portfolio & p, const Draft & draft) const {
        const auto name = portfolio_name(draft.name);
        if (p.find_model(name)) return name;
        model::PortfolioModel m{.name = name,
                                .path = std::filesystem::absolute(draft.path),
                                .context = std::max(original_context(), 16),
                                .threads = measure_.speed_threads(),
                                .normalize = plan_.normalize,
                                .note = "draft for " + plan_.base->name + ": proposes its tokens (speculative decoding)"};
        p.models.push_back(m);
        return name;
    }

    int original_context() const { return plan_.base ? result_.candidates.front().context_length : 0; }

    // With a memory budget the server loads within it (docs/serve.md, "Loading on demand"): the
    // routes' chosen models stay loaded (`always`, in route order) while the peak memory measured
    // for them together fits; backups, and chosen models past that or never measured, load on
    // demand and unload after kOnDemandTtlS idle, so that a fallback costs memory only while used.
    void load_within(model::Portfolio & p, std::uint64_t budget) const {
        static constexpr int kOnDemandTtlS = 600;
        p.server.memory_budget = budget;
        std::uint64_t pinned = 0;
        for (auto & m : p.models) {
            if (m.path.empty()) continue;  // a remote model's memory is its server's
            const bool chosen = std::any_of(p.routes.begin(), p.routes.end(),
                                            [&](const model::Route & r) { return r.model == m.name; });
            const auto it = std::find_if(result_.candidates.begin(), result_.candidates.end(),
                                         [&](const Candidate & c) { return portfolio_name(c.name) == m.name; });
            const std::uint64_t peak = it != result_.candidates.end() && it->cost ? it->cost->peak_rss_bytes : 0;
            if (chosen && peak > 0 && pinned + peak <= budget) {
                pinned += peak;
                continue;
            }
            m.load = model::PortfolioModel::Load::on_demand;
            m.ttl_s = kOnDemandTtlS;
        }
    }

    const Plan & plan_;
    const PlanRunOptions & options_;
    Measurements measure_;
    PlanResult result_;
    std::vector<Suite> suites_;
    std::map<std::string, std::map<std::string, eval::SuiteResult>>
        results_;  // candidate -> suite -> its last look's result
    std::set<std::string> started_;  // "candidate/class" handed to the workers
    std::optional<PlanWorkers> workers_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

PlanResult run_plan(const Plan & plan, const PlanRunOptions & options) { return Planner(plan, options).run(); }

std::string portfolio_name(const std::string & name) {
    std::string out;
    for (const char ch : name)
        out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == '+') ? ch
                                                                                                                  : '-';
    return out;
}

}  // namespace switchyard::decide
