#include "decide/planner.h"

#include "decide/measure.h"
#include "decide/cost_rules.h"
#include "decide/search.h"
#include "decide/variants.h"
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

namespace switchyard::decide {

namespace {

// One run of the planner: the orchestration around the pure decision core (rules, choice, the
// search's next step) and the measurements.
class Planner {
public:
    Planner(const Plan & plan, const PlanRunOptions & options) : plan_(plan), options_(options), measure_(plan, options.results, options.threads, options.progress) {
        result_.plan = plan;
        std::filesystem::create_directories(options.out_dir / "models");
        std::filesystem::create_directories(options.out_dir / "tasks");
    }

    PlanResult run() {
        // Workers are reached first: a wrong address must not wait for the variants to be built.
        if (!plan_.workers.empty())
            workers_.emplace(plan_.workers, WorkerPoolOptions{.executable = std::filesystem::read_symlink("/proc/self/exe"),
                                                              .results = std::filesystem::absolute(options_.results),
                                                              .log_dir = options_.out_dir / "workers",
                                                              .normalize = plan_.normalize,
                                                              .log = options_.log});
        load_tasks();
        if (plan_.base) result_.candidates.push_back(candidate_from(*plan_.base, CandidateKind::original, "the model the team has, as given"));
        if (!plan_.variants.empty()) {
            auto built = build_variants(plan_, original(), {.models_dir = options_.out_dir / "models", .base_hash = measure_.store().model_hash(plan_.base->path),
                                                            .results = options_.results,
                                                            .threads = options_.threads, .progress = options_.progress,
                                                            .note = [this](const std::string & line) { note(line); }});
            result_.stats.variants_built = built.built;
            result_.stats.variants_reused = built.reused;
            for (auto & v : built.variants) result_.candidates.push_back(std::move(v));
        }
        for (const auto & a : plan_.alternatives) add_alternative(a);
        result_.stats.candidates = result_.candidates.size();
        result_.stats.suite_runs_possible = result_.candidates.size() * suites_.size();

        if (plan_.base) screen_variants();
        start_workers();
        if (plan_.base)
            for (const auto & cls : result_.classes) evaluate(original(), cls);
        for (const auto & cls : result_.classes) {
            search_ladder(cls);
            measure_what_could_win(cls);
        }
        decide_classes();
        stop_workers();
        static_cast<MeasureCounts &>(result_.stats) = measure_.counts();
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
        if (options_.log) options_.log(fmt::format("[{:6.1f} s] {}", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), line));
    }

    Candidate & original() { return result_.candidates.front(); }

    std::vector<const eval::TaskSuite *> suites_of(const std::string & cls) const {
        std::vector<const eval::TaskSuite *> out;
        for (const auto & s : suites_)
            if (s.ref.task_class == cls) out.push_back(&s.suite);
        return out;
    }

    // With workers, every candidate's suites are queued in the order the search is likely to ask
    // for them: the original on every class, then per class the ladder breadth first from its
    // first probe and the alternatives smallest first. The search itself is unchanged (its results are the same as a
    // run without workers); idle workers only measure ahead of it.
    void start_workers() {
        if (!workers_) return;
        measure_.use_workers(&*workers_);
        note(fmt::format("workers: {} rpc-server{} measure candidates' task suites side by side ({})", plan_.workers.size(),
                         plan_.workers.size() == 1 ? "" : "s", fmt::join(plan_.workers, ", ")));
        std::vector<Candidate *> alternatives;
        for (auto & c : result_.candidates)
            if (c.kind == CandidateKind::alternative && !c.remote()) alternatives.push_back(&c);
        std::stable_sort(alternatives.begin(), alternatives.end(), [](const Candidate * a, const Candidate * b) { return a->file_bytes < b->file_bytes; });
        const auto variants = ladder();
        // The original on every class first: the search runs it before any ladder.
        if (plan_.base)
            for (const auto & cls : result_.classes) workers_->prefetch(measure_.worker_job(original(), suites_of(cls)));
        for (const auto & cls : result_.classes) {
            const auto suites = suites_of(cls);
            if (plan_.base && capable(original(), cls, result_.tasks))
                for (const auto i : probe_order(variants.size())) workers_->prefetch(measure_.worker_job(*variants[i], suites));
            for (auto * a : alternatives)
                if (capable(*a, cls, result_.tasks)) workers_->prefetch(measure_.worker_job(*a, suites));
        }
    }

    void stop_workers() {
        if (!workers_) return;
        result_.stats.workers = workers_->stats();
        result_.stats.worker_runs_not_needed = workers_->unused_prefetches();
        for (const auto & w : result_.stats.workers)
            note(fmt::format("workers: {} measured {} job{} in {:.1f} s{}{}", w.endpoint, w.jobs, w.jobs == 1 ? "" : "s", w.busy_seconds,
                             w.lost > 0 ? fmt::format("; went away during {} (measured elsewhere)", w.lost) : "", w.up ? "" : "; down at the end"));
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
            for (const auto & skipped : s.suite.skipped) note(fmt::format("{}:{}: skipped: {}", spec, skipped.line, skipped.reason));
            if (!t.name.empty()) s.suite.settings.name = t.name;
            s.ref = TaskRef{.suite = s.suite.settings.name, .task_class = t.task_class, .critical = t.critical || s.suite.settings.critical,
                            .needs = t.needs.empty() ? s.suite.settings.requires_capability : t.needs};
            for (const auto & other : suites_)
                if (other.ref.suite == s.ref.suite) throw Error(plan_.source.string() + ": two tasks are named '" + s.ref.suite + "': give one a 'name'");
            if (std::find(result_.classes.begin(), result_.classes.end(), s.ref.task_class) == result_.classes.end()) result_.classes.push_back(s.ref.task_class);
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
            if (existing.name == c.name) throw Error(plan_.source.string() + ": two candidates are named '" + c.name + "': give one a 'name'");
        result_.candidates.push_back(std::move(c));
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
        note(fmt::format("screen: drift of {} variants on {} chunks ({} measured, {} reused)", counts.drift_runs + counts.drift_reused, plan_.screen.chunks,
                         counts.drift_runs, counts.drift_reused));
    }

    bool measured_for(const Candidate & c, const std::string & cls) const {
        for (const auto & t : result_.tasks)
            if (t.task_class == cls && c.suite(t.suite) == nullptr) return false;
        return true;
    }

    // Runs every suite of the class the candidate has no result for.
    void evaluate(Candidate & c, const std::string & cls) {
        std::vector<const Suite *> todo;
        for (const auto & s : suites_)
            if (s.ref.task_class == cls && c.suite(s.ref.suite) == nullptr) todo.push_back(&s);
        if (todo.empty()) return;
        note(fmt::format("tasks: {} on {} suite{} of {}", c.name, todo.size(), todo.size() == 1 ? "" : "s", cls));
        std::vector<const eval::TaskSuite *> suites;
        for (const auto * s : todo) suites.push_back(&s->suite);
        auto results = measure_.suites(c, suites);
        for (std::size_t i = 0; i < todo.size(); ++i) {
            auto & r = results[i];
            const auto & ref = todo[i]->ref;
            SuiteScore score{.suite = ref.suite, .critical = ref.critical, .n = r.scored, .excluded = r.unencodable + r.too_long, .accuracy = r.accuracy(), .ci95 = r.ci95};
            if (c.kind == CandidateKind::original) {
                original_results_[ref.suite] = std::move(r);
            } else if (const auto base = original_results_.find(ref.suite); base != original_results_.end()) {
                score.vs_original = eval::compare_outcomes(base->second, r);
            }
            c.suites.push_back(std::move(score));
        }
        c.not_run.erase(cls);
    }

    std::vector<Candidate *> ladder() {
        std::vector<Candidate *> out;
        for (auto & c : result_.candidates)
            if (c.kind == CandidateKind::variant && c.skipped.empty()) out.push_back(&c);
        return out;
    }

    ClassContext context_of(const std::string & cls) {
        std::size_t suites = 0, compared = ladder().size();
        for (const auto & t : result_.tasks) suites += t.task_class == cls;
        for (const auto & c : result_.candidates) compared += c.kind == CandidateKind::alternative;
        return ClassContext{.original_serves = plan_.base && capable(original(), cls, result_.tasks), .comparisons = std::max<std::size_t>(1, suites * compared)};
    }

    // Without budgets: what the task runs alone say (budgets need the speed pass).
    Assessment accuracy_assessment(const Candidate & c, const std::string & cls) {
        Policy accuracy_only = plan_.policy;
        accuracy_only.budgets = {};
        return assess(accuracy_only, c, cls, result_.tasks, context_of(cls));
    }

    // The ladder for one class, probed where next_probe() says; what it leaves out, and why.
    void search_ladder(const std::string & cls) {
        const auto variants = ladder();
        if (variants.empty()) return;
        if (!context_of(cls).original_serves) {
            for (auto * v : variants) v->not_run[cls] = "the original cannot serve this class (R1), and neither can a compression of it";
            return;
        }
        std::vector<std::optional<Outcome>> outcomes(variants.size());
        while (const auto i = next_probe(outcomes)) {
            auto & c = *variants[*i];
            evaluate(c, cls);
            const auto a = accuracy_assessment(c, cls);
            outcomes[*i] = a.outcome;
            if (a.outcome != Outcome::pass) {
                const auto * why = a.first(Outcome::fail) ? a.first(Outcome::fail) : a.first(Outcome::insufficient);
                note(fmt::format("{}: {} for {} ({}){}", c.name, why ? why->rule : "incomplete", cls, why ? to_string(why->outcome) : "not measured",
                                 a.outcome == Outcome::fail ? ": milder variants only" : ": both sides stay open"));
            }
        }
        const auto failing = std::find(outcomes.begin(), outcomes.end(), Outcome::fail) - outcomes.begin();
        for (std::size_t i = static_cast<std::size_t>(failing) + 1; i < variants.size(); ++i)
            if (!outcomes[i])
                variants[i]->not_run[cls] = fmt::format("the milder {} already drops too much or misses the floor here (the search assumes accuracy falls as compression grows)",
                                                        variants[static_cast<std::size_t>(failing)]->name);
        const auto passing = std::find(outcomes.rbegin(), outcomes.rend(), Outcome::pass);
        note(fmt::format("{}: the ladder settled on {}", cls, passing == outcomes.rend() ? "no variant" : variants[static_cast<std::size_t>(outcomes.rend() - passing - 1)]->name));
    }

    // The candidates measured for the class that pass every rule, costs measured where they count.
    std::vector<const Candidate *> passing_for(const std::string & cls) {
        std::vector<const Candidate *> out;
        for (auto & c : result_.candidates) {
            if (!c.skipped.empty() || !measured_for(c, cls)) continue;
            ensure_cost_if_passing(c, cls);
            const auto a = assess(plan_.policy, c, cls, result_.tasks, context_of(cls));
            if (a.outcome == Outcome::pass && a.complete) out.push_back(&c);
        }
        return out;
    }

    bool costs_matter() const { return plan_.policy.budgets.any() || plan_.policy.deployment.price_per_hour > 0; }

    void ensure_cost(Candidate & c) {
        if (c.cost || !costs_matter()) return;
        c.cost = measure_.cost(c);
        note("speed: " + c.name + (c.remote() ? " (through " + c.served.endpoint + ")" : "") + ": " + describe_cost(*c.cost));
    }

    void ensure_cost_if_passing(Candidate & c, const std::string & cls) {
        if (!c.cost && costs_matter() && accuracy_assessment(c, cls).outcome == Outcome::pass) ensure_cost(c);
    }

    // Every candidate not yet measured for the class that could still change its choice: the
    // alternatives, and variants the ladder left unprobed below its answer. One is skipped only
    // when it cannot pass (R1, R4) or R7 would not choose it even if it passed; measuring one can
    // change the answer, so the rest are looked at again after each.
    void measure_what_could_win(const std::string & cls) {
        std::vector<Candidate *> pool;
        for (auto & c : result_.candidates)
            if (c.skipped.empty() && c.kind != CandidateKind::original && !measured_for(c, cls) && (c.kind == CandidateKind::alternative || !c.not_run.count(cls)))
                pool.push_back(&c);
        std::stable_sort(pool.begin(), pool.end(), [](const Candidate * a, const Candidate * b) { return a->file_bytes < b->file_bytes; });
        for (bool measured = true; measured;) {
            measured = false;
            const auto passing = passing_for(cls);
            for (auto * c : pool) {
                if (measured_for(*c, cls)) continue;
                if (!capable(*c, cls, result_.tasks)) {
                    c->not_run[cls] = "lacks a capability the class needs (R1), so it cannot pass";
                    continue;
                }
                if (!passing.empty()) ensure_cost(*c);
                if (const auto why = cannot_change_choice(plan_.policy, passing, *c)) {
                    c->not_run[cls] = *why;
                    continue;
                }
                note(fmt::format("{}: {} could change the choice for {}: measuring it", cls, c->name, cls));
                evaluate(*c, cls);
                measured = true;
                break;
            }
        }
        for (auto * c : pool)
            if (c->not_run.count(cls)) note(fmt::format("{}: {} not measured: {}", cls, c->name, c->not_run.at(cls)));
    }

    // Assesses every candidate measured for each class and picks per class.
    void decide_classes() {
        for (const auto & cls : result_.classes) {
            std::vector<const Candidate *> considered;
            for (auto & c : result_.candidates) {
                if (!c.skipped.empty() || !measured_for(c, cls)) continue;
                ensure_cost_if_passing(c, cls);
                considered.push_back(&c);
                result_.assessments.push_back(assess(plan_.policy, c, cls, result_.tasks, context_of(cls)));
            }
            result_.decisions.push_back(choose(plan_.policy, cls, considered, result_.assessments));
        }
    }

    static std::string portfolio_name(const std::string & name) {
        std::string out;
        for (const char ch : name) out += (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == '+') ? ch : '-';
        return out;
    }

    void build_portfolio() {
        auto & p = result_.portfolio;
        auto add_model = [&](const std::string & name) {
            if (name.empty() || p.find_model(portfolio_name(name))) return;
            const auto it = std::find_if(result_.candidates.begin(), result_.candidates.end(), [&](const Candidate & c) { return c.name == name; });
            model::PortfolioModel m{.name = portfolio_name(name)};
            if (it->remote()) {
                m.endpoint = it->served.endpoint;
                m.remote_model = it->served.remote_model;
                m.api_key_env = it->served.api_key_env;
            } else {
                m.path = std::filesystem::absolute(it->path);
                // serve runs the model as it was measured: prompts normalized when the plan's were.
                m.normalize = plan_.normalize;
            }
            // The context the capability rule judged; the threads its latency was measured with.
            m.context = std::max(it->context_length, 16);
            m.threads = measure_.speed_threads();
            if (it->cost) m.cost_per_1k_tokens = it->cost->cost_per_1k_tokens;
            m.note = std::string(to_string(it->kind)) + ": " + it->description;
            p.models.push_back(m);
        };
        for (const auto & d : result_.decisions) {
            add_model(d.chosen);
            add_model(d.backup);
            model::Route r{.name = portfolio_name(d.task_class), .model = portfolio_name(d.chosen), .note = std::string(to_string(d.action)) + " (" + d.rule + "): " + d.reason};
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
    }

    const Plan & plan_;
    const PlanRunOptions & options_;
    Measurements measure_;
    PlanResult result_;
    std::vector<Suite> suites_;
    std::map<std::string, eval::SuiteResult> original_results_;
    std::optional<WorkerPool> workers_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

PlanResult run_plan(const Plan & plan, const PlanRunOptions & options) { return Planner(plan, options).run(); }

}  // namespace switchyard::decide
