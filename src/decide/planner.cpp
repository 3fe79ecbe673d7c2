#include "decide/planner.h"

#include "compress/calibrate.h"
#include "compress/imatrix.h"
#include "compress/mix.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "eval/cloze.h"
#include "eval/drift.h"
#include "eval/results_store.h"
#include "eval/run_suite.h"
#include "eval/speed.h"
#include "eval/text_chunks.h"
#include "engine/remote_engine.h"
#include "model/model_info.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/sha256.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

namespace switchyard::decide {

namespace {

using nlohmann::json;

// Everything one run of the planner carries between its steps.
class Planner {
public:
    Planner(const Plan & plan, const PlanRunOptions & options) : plan_(plan), options_(options), store_(options.results) {
        result_.plan = plan;
        std::filesystem::create_directories(options.out_dir / "models");
        std::filesystem::create_directories(options.out_dir / "tasks");
    }

    PlanResult run() {
        load_tasks();
        if (plan_.base) add_original();
        if (!plan_.variants.empty()) build_variants();
        for (const auto & a : plan_.alternatives) add_alternative(a);
        result_.stats.candidates = result_.candidates.size();
        result_.stats.suite_runs_possible = result_.candidates.size() * suites_.size();

        if (plan_.base) {
            screen_variants();
            evaluate(original(), all_suites());
            bisect_ladder();
            decide_classes(false);
        }
        // Alternatives are measured only where nothing built from the original will do (or there is no original).
        std::set<std::string> need;
        for (const auto & d : result_.decisions)
            if (d.flagged || d.action == Action::switch_model) need.insert(d.task_class);
        if (!plan_.base) need.insert(result_.classes.begin(), result_.classes.end());
        if (!need.empty() && !plan_.alternatives.empty()) {
            note(fmt::format("nothing built from the original passes for {}: measuring the alternatives", join(need)));
            for (auto & c : result_.candidates) {
                if (c.kind != CandidateKind::alternative) continue;
                evaluate(c, suites_of(need));
                c.skipped.clear();
            }
            decide_classes(true);
        } else {
            for (auto & c : result_.candidates)
                if (c.kind == CandidateKind::alternative) c.skipped = "not evaluated: a compression of the original passes every class";
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
        if (options_.log) options_.log(fmt::format("[{:6.1f} s] {}", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(), line));
    }

    static std::string join(const std::set<std::string> & names) {
        std::string out;
        for (const auto & n : names) out += (out.empty() ? "" : ", ") + n;
        return out;
    }

    Candidate & original() { return result_.candidates.front(); }

    std::vector<std::size_t> all_suites() const {
        std::vector<std::size_t> all(suites_.size());
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
        return all;
    }

    std::vector<std::size_t> suites_of(const std::set<std::string> & classes) const {
        std::vector<std::size_t> out;
        for (std::size_t i = 0; i < suites_.size(); ++i)
            if (classes.count(suites_[i].ref.task_class)) out.push_back(i);
        return out;
    }

    void load_tasks() {
        for (const auto & t : plan_.tasks) {
            std::string spec = t.spec;
            if (!t.cloze_text.empty()) {
                const auto jsonl = eval::build_cloze({.text = t.cloze_text, .items = t.cloze_items, .seed = t.cloze_seed, .skip_passages = t.cloze_skip_passages});
                const auto name = t.name.empty() ? "cloze-" + t.cloze_text.stem().string() : t.name;
                const auto file = options_.out_dir / "tasks" / (name + ".jsonl");
                write_file_atomically(file, jsonl);
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

    static engine::RemoteEngineOptions remote_options(const ModelRef & m) {
        engine::RemoteEngineOptions r{.endpoint = m.endpoint, .model = m.remote_model, .context_length = m.context};
        if (!m.api_key_env.empty()) {
            const char * key = std::getenv(m.api_key_env.c_str());
            if (key == nullptr || *key == '\0') throw Error(m.name + ": api_key_env " + m.api_key_env + ": that environment variable is not set");
            r.api_key = key;
        }
        return r;
    }

    // A model measured through its server: what the server says of it, and what the plan declares.
    Candidate candidate_from(const ModelRef & m, CandidateKind kind, const std::string & description) {
        if (m.endpoint.empty()) {
            auto c = candidate_from(m.name, kind, m.path, description);
            c.capabilities.insert(c.capabilities.end(), m.capabilities.begin(), m.capabilities.end());
            return c;
        }
        const engine::RemoteEngine server(remote_options(m));
        Candidate c{.name = m.name, .kind = kind, .served = m, .description = description + " (served at " + m.endpoint + ")", .capabilities = {"text"},
                    .context_length = server.model().context_length};
        c.served.remote_model = server.model().name;
        c.capabilities.insert(c.capabilities.end(), m.capabilities.begin(), m.capabilities.end());
        return c;
    }

    Candidate candidate_from(const std::string & name, CandidateKind kind, const std::filesystem::path & path, const std::string & description) {
        const auto info = model::inspect_gguf(path);
        Candidate c{.name = name, .kind = kind, .path = path, .description = description, .capabilities = info.capabilities,
                    .context_length = static_cast<int>(info.context_length), .file_bytes = info.file_bytes, .bits_per_weight = info.bits_per_weight,
                    .parameters = info.parameters, .same_vocabulary = kind != CandidateKind::alternative};
        return c;
    }

    void add_original() {
        const auto & b = *plan_.base;
        auto c = candidate_from(b, CandidateKind::original, "the model the team has, as given");
        if (!c.remote()) base_hash_ = store_.model_hash(b.path);
        result_.candidates.push_back(std::move(c));
    }

    void add_alternative(const ModelRef & a) {
        auto c = candidate_from(a, CandidateKind::alternative, "a smaller native model, as given");
        for (const auto & existing : result_.candidates)
            if (existing.name == c.name) throw Error(plan_.source.string() + ": two candidates are named '" + c.name + "': give one a 'name'");
        result_.candidates.push_back(std::move(c));
    }

    // The calibration's importance matrix, computed once per base and data and kept in the output folder.
    std::filesystem::path imatrix() {
        if (!imatrix_.empty() || !plan_.calibration) return imatrix_;
        const auto & cal = *plan_.calibration;
        json key = {{"base", base_hash_}, {"chunks", cal.chunks}, {"skip_chunks", cal.skip_chunks}, {"context", cal.context}, {"normalize", plan_.normalize}};
        for (const auto & f : cal.files) key["files"].push_back(sha256_file(f));
        const auto path = options_.out_dir / "models" / (plan_.base->name + ".imatrix");
        const auto key_path = path.string() + ".key.json";
        if (std::filesystem::exists(path) && std::filesystem::exists(key_path) && json::parse(read_whole_file(key_path, "calibration key"), nullptr, false) == key) {
            note("calibration: reused " + path.string());
        } else {
            const auto r = compress::calibrate({.model = plan_.base->path, .data = cal.files, .chunks = cal.chunks, .skip_chunks = cal.skip_chunks,
                                                .context = cal.context, .normalize = plan_.normalize, .threads = options_.threads, .progress = options_.progress});
            compress::save_imatrix(r.imatrix, path);
            write_file_atomically(key_path, key.dump(2) + "\n");
            note(fmt::format("calibration: {} chunks ({} tokens) of {} in {:.1f} s -> {}", r.chunks_used, r.tokens, cal.files.front().filename().string(), r.seconds,
                             path.string()));
        }
        imatrix_ = path;
        return imatrix_;
    }

    std::string describe(const VariantSpec & v, bool with_imatrix) const {
        std::string d;
        if (!v.mix_budget.empty()) d = "mixed precision under " + v.mix_budget;
        if (!v.prune_method.empty()) d += (d.empty() ? "" : ", ") + v.prune_method + " pruning" + (v.sparsity > 0 ? fmt::format(" to {:.0f}%", 100 * v.sparsity) : "") +
                                          (v.pattern.empty() ? "" : " (" + v.pattern + ")");
        if (!v.layers_drop.empty()) d += (d.empty() ? "" : ", ") + fmt::format("{} layers dropped", v.layers_drop.size());
        if (!v.type.empty() && v.mix_budget.empty()) d += (d.empty() ? "" : ", then ") + v.type;
        if (with_imatrix) d += " with the calibration's importance matrix";
        return d;
    }

    void build_variant(const VariantSpec & v, const std::filesystem::path & out, const std::filesystem::path & imat) {
        if (!v.mix_budget.empty()) {
            compress::MixOptions m{.input = plan_.base->path, .output = out, .budget = v.mix_budget};
            m.data = compress::DriftData{.files = plan_.screen.files, .context = plan_.screen.context, .chunks = plan_.screen.chunks,
                                         .skip_chunks = plan_.screen.skip_chunks, .normalize = plan_.normalize, .threads = options_.threads,
                                         .progress = options_.progress};
            if (m.data.files.empty()) throw Error(plan_.source.string() + ": variant " + variant_name(v) + ": mix needs text to measure on ('screen' or 'calibration')");
            compress::mix(m);
        } else if (!v.prune_method.empty() || !v.layers_drop.empty()) {
            compress::PruneOptions p{.input = plan_.base->path, .output = out, .method = compress::parse_method(v.prune_method.empty() ? "magnitude" : v.prune_method),
                                     .sparsity = v.sparsity, .pattern = compress::parse_pattern(v.pattern.empty() ? "unstructured" : v.pattern),
                                     .imatrix = imat, .layers_drop = v.layers_drop, .then_quantize = v.type, .threads = options_.threads};
            compress::prune(p);
        } else {
            compress::quantize({.input = plan_.base->path, .output = out, .type = v.type, .imatrix = imat, .threads = options_.threads});
        }
    }

    void build_variants() {
        std::vector<Candidate> built;
        for (const auto & v : plan_.variants) {
            const bool wants_imatrix = v.imatrix && plan_.calibration.has_value();
            const auto imat = wants_imatrix ? imatrix() : std::filesystem::path();
            if (v.prune_method == "wanda" && imat.empty()) throw Error(plan_.source.string() + ": variant " + variant_name(v) + ": wanda pruning needs 'calibration'");
            VariantSpec named = v;
            named.imatrix = wants_imatrix;
            const auto name = variant_name(named);
            const auto out = options_.out_dir / "models" / (plan_.base->name + "-" + name + ".gguf");
            json key = {{"base", base_hash_}, {"name", name}, {"type", v.type}, {"prune", v.prune_method}, {"sparsity", v.sparsity}, {"pattern", v.pattern},
                        {"layers_drop", v.layers_drop}, {"mix", v.mix_budget}, {"imatrix", imat.empty() ? "" : sha256_file(imat)}};
            const auto key_path = out.string() + ".key.json";
            if (std::filesystem::exists(out) && std::filesystem::exists(key_path) && json::parse(read_whole_file(key_path, "variant key"), nullptr, false) == key) {
                ++result_.stats.variants_reused;
            } else {
                build_variant(v, out, imat);
                write_file_atomically(key_path, key.dump(2) + "\n");
                ++result_.stats.variants_built;
            }
            auto c = candidate_from(name, CandidateKind::variant, out, describe(v, wants_imatrix));
            c.capabilities = original().capabilities;
            built.push_back(std::move(c));
        }
        // Mild to aggressive: more bits per weight first, then less pruning.
        std::stable_sort(built.begin(), built.end(), [](const Candidate & a, const Candidate & b) { return a.bits_per_weight > b.bits_per_weight + 1e-9; });
        // Same base, same importance matrix and the same type for every tensor make the same
        // weights: small models often end up so, as llama.cpp keeps tensors a type cannot hold.
        std::map<std::string, std::string> by_types;
        for (auto & c : built) {
            std::string types;
            for (const auto & t : model::inspect_gguf(c.path).tensors) types += t.name + "=" + t.type + ";";
            if (const auto same = by_types.find(types); same != by_types.end()) {
                c.skipped = "same tensor types as " + same->second + " (llama.cpp fell back to the same types for this model): evaluated once";
            } else {
                by_types[types] = c.name;
            }
            result_.candidates.push_back(std::move(c));
        }
        note(fmt::format("variants: {} built, {} reused from {}", result_.stats.variants_built, result_.stats.variants_reused, (options_.out_dir / "models").string()));
    }

    int speed_threads() const { return plan_.policy.deployment.threads > 0 ? plan_.policy.deployment.threads : options_.threads; }

    // Whether some suite of the class was run on the candidate.
    bool measured_for(const Candidate & c, const std::string & cls) const {
        for (const auto & t : result_.tasks)
            if (t.task_class == cls && c.suite(t.suite) != nullptr) return true;
        return false;
    }

    std::string machine_key() const {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        return std::string(host) + "/threads=" + std::to_string(speed_threads());
    }

    int context_for(const Candidate & c) const { return eval::default_chunk_context(static_cast<std::uint64_t>(c.context_length)); }

    engine::LlamaEngineOptions engine_options(const Candidate & c, int context) const {
        return {.model_path = c.path, .threads = options_.threads, .context_length = context, .parallel = engine::scoring_parallel(context)};
    }

    static json drift_json(const DriftScore & d) {
        return {{"kld_mean", d.kld_mean}, {"kld_p99", d.kld_p99}, {"top1_agreement", d.top1_agreement}, {"ppl_ratio", d.ppl_ratio}};
    }

    // The cheap signal: drift from the original on a small text, for every distinct variant.
    void screen_variants() {
        if (plan_.screen.files.empty()) {
            note("screen: no text given ('screen' or 'calibration'), so every variant goes to the task runs");
            return;
        }
        const int context = plan_.screen.context > 0 ? plan_.screen.context : context_for(original());
        json key = {{"base", base_hash_}, {"chunks", plan_.screen.chunks}, {"skip_chunks", plan_.screen.skip_chunks}, {"context", context},
                    {"normalize", plan_.normalize}, {"top_k", 64}};
        for (const auto & f : plan_.screen.files) key["files"].push_back(sha256_file(f));
        std::optional<eval::Reference> reference;
        for (auto & c : result_.candidates) {
            if (c.kind != CandidateKind::variant || !c.skipped.empty()) continue;
            const auto hash = store_.model_hash(c.path);
            if (const auto cached = store_.find_measurement(hash, "drift", key.dump())) {
                const auto j = json::parse(*cached);
                c.drift = DriftScore{j["kld_mean"], j["kld_p99"], j["top1_agreement"], j["ppl_ratio"]};
                ++result_.stats.drift_reused;
            } else {
                if (!reference) {
                    engine::LlamaEngine base(engine_options(original(), context));
                    const auto text = eval::tokenize_chunks(base, {.files = plan_.screen.files, .context = context, .skip_chunks = plan_.screen.skip_chunks,
                                                                   .max_chunks = plan_.screen.chunks, .normalize = plan_.normalize});
                    if (text.chunks.empty()) throw Error(plan_.source.string() + ": screen: the text holds no chunk of " + std::to_string(context) + " tokens after skipping " + std::to_string(plan_.screen.skip_chunks));
                    reference = eval::record_reference(base, text.chunks, 64);
                }
                engine::LlamaEngine variant(engine_options(c, context));
                const auto d = eval::measure_drift(*reference, variant);
                c.drift = DriftScore{d.kld.mean, d.kld.p99, d.top1_agreement, d.reference_perplexity > 0 ? d.perplexity / d.reference_perplexity : 0};
                store_.record_measurement(hash, "drift", key.dump(), drift_json(*c.drift).dump());
                ++result_.stats.drift_runs;
            }
            const auto verdict = rule_screen(plan_.policy, *c.drift);
            if (verdict.outcome == Outcome::fail) c.skipped = "screened out: " + verdict.message;
        }
        note(fmt::format("screen: drift of {} variants on {} chunks ({} measured, {} reused)", result_.stats.drift_runs + result_.stats.drift_reused,
                         plan_.screen.chunks, result_.stats.drift_runs, result_.stats.drift_reused));
    }

    void evaluate(Candidate & c, const std::vector<std::size_t> & which) {
        note(fmt::format("tasks: {} on {} suite{}", c.name, which.size(), which.size() == 1 ? "" : "s"));
        std::unique_ptr<engine::Engine> engine;
        for (const std::size_t i : which) {
            const auto & s = suites_[i];
            if (c.suite(s.ref.suite) != nullptr) continue;
            if (!engine && c.remote()) engine = std::make_unique<engine::RemoteEngine>(remote_options(c.served));
            if (!engine) engine = std::make_unique<engine::LlamaEngine>(engine_options(c, context_for(c)));
            bool reused = false;
            const eval::RunOptions run{.normalize = plan_.normalize, .progress = options_.progress};
            auto r = c.remote() ? eval::run_suite_recorded(store_, *engine, eval::remote_model(c.served.endpoint, c.served.remote_model), s.suite, run, &reused)
                                : eval::run_suite_recorded(store_, *engine, c.path, s.suite, run, &reused);
            ++(reused ? result_.stats.suite_runs_reused : result_.stats.suite_runs);
            SuiteScore score{.suite = s.ref.suite, .critical = s.ref.critical, .n = r.scored, .accuracy = r.accuracy(), .ci95 = r.ci95};
            if (c.kind != CandidateKind::original && plan_.base) {
                const auto & base = original_results_.at(s.ref.suite);
                score.vs_original = eval::compare_outcomes(base, r);
                score.original_accuracy = base.accuracy();
            }
            if (c.kind == CandidateKind::original) original_results_[s.ref.suite] = std::move(r);
            c.suites.push_back(std::move(score));
        }
    }

    bool judge_drop(const std::string & task_class) const { return plan_.base && capable(result_.candidates.front(), task_class, result_.tasks); }

    // Without budgets: what the task runs alone say (budgets need the speed pass, run later).
    Assessment accuracy_assessment(const Candidate & c, const std::string & task_class) const {
        Policy accuracy_only = plan_.policy;
        accuracy_only.budgets = {};
        return assess(accuracy_only, c, task_class, result_.tasks, judge_drop(task_class));
    }

    // Per class, a bisection of the variants ordered mild to aggressive: a variant that passes
    // sends the search to more aggressive ones, one that fails R2 or R3 (or leaves too little
    // evidence) to milder ones. Assuming accuracy falls as compression grows, the most aggressive
    // passing variant is found in about log2(n) task runs instead of n.
    void bisect_ladder() {
        std::vector<Candidate *> ladder;
        for (auto & c : result_.candidates)
            if (c.kind == CandidateKind::variant && c.skipped.empty()) ladder.push_back(&c);
        std::map<std::string, std::vector<std::string>> unprobed;  // candidate -> classes it was not run for
        for (const auto & cls : result_.classes) {
            std::ptrdiff_t passing = -1, failing = static_cast<std::ptrdiff_t>(ladder.size());
            while (failing - passing > 1) {
                const auto mid = (passing + failing) / 2;
                auto & c = *ladder[static_cast<std::size_t>(mid)];
                evaluate(c, suites_of({cls}));
                const auto a = accuracy_assessment(c, cls);
                if (a.outcome == Outcome::pass) {
                    passing = mid;
                } else {
                    failing = mid;
                    const auto * why = a.first(Outcome::fail) ? a.first(Outcome::fail) : a.first(Outcome::insufficient);
                    note(fmt::format("{}: {} for {} ({}): milder variants only", c.name, why ? why->rule : "incomplete", cls, why ? to_string(why->outcome) : "not measured"));
                }
            }
            for (const auto * c : ladder)
                if (!measured_for(*c, cls)) unprobed[c->name].push_back(cls);
            note(fmt::format("{}: the search settled on {}", cls, passing >= 0 ? ladder[static_cast<std::size_t>(passing)]->name : "no variant"));
        }
        for (auto * c : ladder) {
            const auto it = unprobed.find(c->name);
            if (it == unprobed.end()) continue;
            std::string classes;
            for (const auto & cls : it->second) classes += (classes.empty() ? "" : ", ") + cls;
            c->skipped = "not run for " + classes + ": the bisection settled without it";
        }
    }

    // A served model's latency, timed through its server: a prompt of about prompt_tokens words,
    // generate_tokens out, `repeats` times; its cost is what the plan declares.
    void measure_remote_cost(Candidate & c) {
        note("speed: " + c.name + " (through " + c.served.endpoint + ")");
        engine::RemoteEngine server(remote_options(c.served));
        const auto & sp = plan_.speed;
        std::string prompt = "Once upon a time";
        while (static_cast<int>(server.tokenize(prompt, true).size()) < sp.prompt_tokens) prompt += " there was a little girl who liked to play";
        std::vector<double> ms;
        for (int i = 0; i < sp.repeats; ++i) {
            engine::GenerateRequest request{.prompt = prompt, .max_tokens = sp.generate_tokens};
            request.sampling.temperature = 0;
            const auto start = std::chrono::steady_clock::now();
            server.generate(std::span(&request, 1));
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        }
        std::sort(ms.begin(), ms.end());
        const double p95 = ms[std::min(ms.size() - 1, static_cast<std::size_t>(0.95 * static_cast<double>(ms.size())))];
        c.cost = CostScore{.remote = true, .p95_latency_ms = p95, .cost_per_1k_tokens = c.served.cost_per_1k_tokens};
        ++result_.stats.speed_runs;
    }

    void measure_cost(Candidate & c) {
        if (c.cost) return;
        if (c.remote()) return measure_remote_cost(c);
        const auto hash = store_.model_hash(c.path);
        const auto & sp = plan_.speed;
        const auto & dep = plan_.policy.deployment;
        const json key = {{"machine", machine_key()}, {"prompt", sp.prompt_tokens}, {"generate", sp.generate_tokens}, {"repeats", sp.repeats},
                          {"watts", dep.watts}, {"price", dep.price_per_hour}};
        eval::SpeedResult r;
        if (const auto cached = store_.find_measurement(hash, "speed", key.dump())) {
            const auto j = json::parse(*cached);
            r.prefill_tokens_per_s = j["prefill"];
            r.decode_tokens_per_s = j["decode"];
            r.ttft_p50_ms = j["ttft_p50_ms"];
            r.ttft_p95_ms = j["ttft_p95_ms"];
            r.peak_rss_bytes = j["peak_rss"];
            r.file_bytes = j["file_bytes"];
            r.joules_per_token = j["joules_per_token"];
            r.energy_source = j["energy_source"];
            r.cost_per_1k_tokens = j["cost_per_1k"];
            r.cost_per_query = j["cost_per_query"];
            ++result_.stats.speed_reused;
        } else {
            note("speed: " + c.name);
            r = eval::measure_speed({.model_path = c.path, .threads = speed_threads(), .context_length = context_for(c), .parallel = 1},
                                    {.prompt_tokens = sp.prompt_tokens, .generate_tokens = sp.generate_tokens, .repeats = sp.repeats,
                                     .watts_per_busy_core = dep.watts, .price_per_hour = dep.price_per_hour});
            store_.record_measurement(hash, "speed", key.dump(),
                                      json{{"prefill", r.prefill_tokens_per_s}, {"decode", r.decode_tokens_per_s}, {"ttft_p50_ms", r.ttft_p50_ms},
                                           {"ttft_p95_ms", r.ttft_p95_ms}, {"peak_rss", r.peak_rss_bytes}, {"file_bytes", r.file_bytes},
                                           {"joules_per_token", r.joules_per_token}, {"energy_source", r.energy_source}, {"cost_per_1k", r.cost_per_1k_tokens},
                                           {"cost_per_query", r.cost_per_query}}
                                          .dump());
            ++result_.stats.speed_runs;
        }
        const double rest_ms = r.decode_tokens_per_s > 0 ? 1000.0 * std::max(0, sp.generate_tokens - 1) / r.decode_tokens_per_s : 0;
        c.cost = CostScore{.file_bytes = c.file_bytes, .peak_rss_bytes = r.peak_rss_bytes, .prefill_tokens_per_s = r.prefill_tokens_per_s,
                           .decode_tokens_per_s = r.decode_tokens_per_s, .ttft_p95_ms = r.ttft_p95_ms, .p95_latency_ms = r.ttft_p95_ms + rest_ms,
                           .cost_per_1k_tokens = r.cost_per_1k_tokens, .cost_per_query = r.cost_per_query, .joules_per_token = r.joules_per_token,
                           .energy_source = r.energy_source};
    }

    // Assesses every measured candidate for every class and picks per class; costs are measured
    // only for candidates whose task results could make them the answer.
    void decide_classes(bool with_alternatives) {
        result_.assessments.clear();
        result_.decisions.clear();
        for (const auto & cls : result_.classes) {
            std::vector<const Candidate *> considered;
            for (auto & c : result_.candidates) {
                if (c.kind == CandidateKind::alternative && !with_alternatives) continue;
                if (!measured_for(c, cls)) continue;
                if (accuracy_assessment(c, cls).outcome == Outcome::pass) measure_cost(c);
                considered.push_back(&c);
                result_.assessments.push_back(assess(plan_.policy, c, cls, result_.tasks, judge_drop(cls)));
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
            }
            m.context = std::max(it->context_length, 16);
            m.threads = plan_.policy.deployment.threads;
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
    eval::ResultsStore store_;
    PlanResult result_;
    std::vector<Suite> suites_;
    std::map<std::string, eval::SuiteResult> original_results_;
    std::string base_hash_;
    std::filesystem::path imatrix_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

PlanResult run_plan(const Plan & plan, const PlanRunOptions & options) { return Planner(plan, options).run(); }

}  // namespace switchyard::decide
