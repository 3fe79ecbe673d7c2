#include "decide/measure.h"

#include "eval/speed.h"
#include "eval/text_chunks.h"
#include "model/model_info.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/sha256.h"
#include "support/utf8.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <span>

namespace switchyard::decide {

using nlohmann::json;

engine::RemoteEngineOptions remote_options(const ModelRef & m) {
    engine::RemoteEngineOptions r{.endpoint = m.endpoint, .model = m.remote_model, .context_length = m.context};
    if (!m.api_key_env.empty()) {
        const char * key = std::getenv(m.api_key_env.c_str());
        if (key == nullptr || *key == '\0')
            throw Error("{}: api_key_env {}: that environment variable is not set", m.name, m.api_key_env);
        r.api_key = key;
    }
    return r;
}

Measurements::Measurements(const Plan & plan, const std::filesystem::path & results, int threads, bool progress)
    : plan_(plan), store_(results), threads_(threads), progress_(progress) {}

int Measurements::context_for(const Candidate & c) const {
    return eval::default_chunk_context(static_cast<std::uint64_t>(c.context_length));
}

int Measurements::speed_threads() const {
    return plan_.policy.deployment.threads > 0 ? plan_.policy.deployment.threads : threads_;
}

std::string Measurements::model_key(const Candidate & c) {
    std::string key = store_.model_hash(c.path) + c.kv_cache.key_suffix();
    // A drafted original's speed is its own: the draft's file and how far it drafts are part of it.
    if (c.draft) key += fmt::format("+draft={}/{}", store_.model_hash(c.draft->path), c.draft->max_tokens);
    return key;
}

std::string Measurements::machine_key() const {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return std::string(host) + "/threads=" + std::to_string(speed_threads());
}

namespace {

// Task suites: with the kernels plan workers run (eval/run_suite.h).
engine::LlamaEngineOptions engine_options(const Candidate & c, int context, int threads) {
    return {.model_path = c.path,
            .threads = threads,
            .context_length = context,
            .parallel = engine::scoring_parallel(context),
            .repack = false,
            .kv_cache = c.kv_cache};
}

// The drift screen runs whole chunks of text (eval's chunk_engine_options), here in any case, with
// llama.cpp's default kernels.
engine::LlamaEngineOptions chunk_options(const Candidate & c, int context, int threads) {
    auto options = eval::chunk_engine_options(c.path, model::inspect_gguf(c.path).vocab_size, threads, context);
    options.kv_cache = c.kv_cache;
    return options;
}

}  // namespace

WorkerJob Measurements::worker_job(const Candidate & c, const std::vector<const eval::TaskSuite *> & suites) {
    WorkerJob job{.candidate = c.name, .model = c.path};
    if (c.remote()) return job;
    const auto recorded = store_.file_model(c.path, c.kv_cache);
    const auto options = eval::recorded_options({.normalize = plan_.normalize});
    std::vector<std::string> names;
    for (const auto * suite : suites) {
        if (store_.has_finished_run(recorded, *suite, options)) continue;
        job.suites.push_back(suite->spec);
        names.push_back(suite->settings.name);
    }
    job.candidate = fmt::format("{} on {}", c.name, fmt::join(names, ", "));
    return job;
}

engine::Engine & Measurements::engine_for(const Candidate & c) {
    const std::string key =
        c.remote() ? c.served.endpoint + "/" + c.served.remote_model : c.path.string() + c.kv_cache.key_suffix();
    for (auto & [loaded, engine] : engines_)
        if (loaded == key) return *engine;
    const std::string original = plan_.base ? plan_.base->path.string() : "";
    // Keep the original and this one: the other model loaded before is let go.
    std::erase_if(engines_, [&](const auto & e) { return e.first != original; });
    std::unique_ptr<engine::Engine> engine;
    if (c.remote()) {
        engine = std::make_unique<engine::RemoteEngine>(remote_options(c.served));
    } else {
        engine = std::make_unique<engine::LlamaEngine>(engine_options(c, context_for(c), threads_));
    }
    return *engines_.emplace_back(key, std::move(engine)).second;
}

void Measurements::on_workers(const Candidate & c, const std::vector<const eval::TaskSuite *> & suites) {
    // A worker runs a model file as given: a variant's KV cache stays with this process.
    if (workers_ == nullptr || c.remote() || !c.kv_cache.is_default()) return;
    const auto recorded = store_.file_model(c.path);
    auto job = worker_job(c, suites);
    const bool ran = !job.suites.empty() && workers_->run(job);
    for (const auto * suite : suites) {
        const std::string run_key = recorded.key + "/" + suite->content_hash;
        if (runs_on_workers_.count(run_key)) continue;
        const bool in_job = std::find(job.suites.begin(), job.suites.end(), suite->spec) != job.suites.end();
        if ((in_job && ran) || (!in_job && workers_->claim(c.path, suite->spec))) {
            runs_on_workers_.insert(run_key);
            runs_scored_.insert(run_key);
            counts_.items_scored += suite->items.size();
        }
    }
}

eval::SuiteResult Measurements::suite_items(const Candidate & c, const eval::TaskSuite & suite, std::size_t items) {
    // A look scores one round of items: the planner says when a round takes long, no bar per round.
    const eval::RunOptions run{.normalize = plan_.normalize, .progress = false};
    const auto recorded = c.remote() ? eval::remote_model(c.served.endpoint, c.served.remote_model)
                                     : store_.file_model(c.path, c.kv_cache);
    const std::string run_key = recorded.key + "/" + suite.content_hash;
    auto & order = orders_[suite.content_hash];
    if (order.empty()) order = eval::item_order(suite);
    const std::vector<std::size_t> prefix(order.begin(),
                                          order.begin() + static_cast<std::ptrdiff_t>(std::min(items, order.size())));
    std::size_t scored_now = 0;
    auto result = eval::run_items_recorded(
        store_, [&]() -> engine::Engine & { return engine_for(c); }, recorded, suite, prefix, run, &scored_now);
    // Of the items this plan had not read before, those not scored now came from the store.
    auto & read = items_read_[run_key];
    const std::size_t fresh = prefix.size() > read ? prefix.size() - read : 0;
    read = std::max(read, prefix.size());
    counts_.items_scored += scored_now;
    if (!runs_on_workers_.count(run_key)) counts_.items_reused += fresh - std::min(fresh, scored_now);
    if (scored_now > 0) runs_scored_.insert(run_key);
    runs_read_.insert(run_key);
    counts_.suite_runs = runs_scored_.size();
    counts_.suite_runs_reused = runs_read_.size() - runs_scored_.size();
    counts_.suite_runs_on_workers = runs_on_workers_.size();
    return result;
}

DriftScore Measurements::drift(const Candidate & original, const Candidate & variant) {
    const int context = plan_.screen.context > 0 ? plan_.screen.context : context_for(original);
    if (drift_key_.empty()) {
        // "format" 2: the score keeps its number of positions (R6's bounds need it).
        json key = {{"format", 2},
                    {"base", store_.model_hash(original.path)},
                    {"chunks", plan_.screen.chunks},
                    {"skip_chunks", plan_.screen.skip_chunks},
                    {"context", context},
                    {"normalize", plan_.normalize},
                    {"top_k", 64}};
        for (const auto & f : plan_.screen.files) key["files"].push_back(cached_sha256_file(f));
        drift_key_ = key.dump();
    }
    const auto hash = model_key(variant);
    if (const auto cached = store_.find_measurement(hash, "drift", drift_key_)) {
        ++counts_.drift_reused;
        return json::parse(*cached).get<DriftScore>();
    }
    if (!reference_) {
        engine::LlamaEngine base(chunk_options(original, context, threads_));
        const auto text = eval::tokenize_chunks(base,
                                                {.files = plan_.screen.files,
                                                 .context = context,
                                                 .skip_chunks = plan_.screen.skip_chunks,
                                                 .max_chunks = plan_.screen.chunks,
                                                 .normalize = plan_.normalize});
        if (text.chunks.empty())
            throw Error("{}: screen: the text holds no chunk of {} tokens after skipping {}", plan_.source.string(),
                        context, plan_.screen.skip_chunks);
        reference_ = eval::record_reference(base, text.chunks, 64, progress_);
    }
    engine::LlamaEngine engine(chunk_options(variant, context, threads_));
    const auto d = eval::measure_drift(*reference_, engine, progress_);
    const DriftScore score{d.kld.mean, d.kld.p99, d.top1_agreement,
                           d.reference_perplexity > 0 ? d.perplexity / d.reference_perplexity : 0, d.positions};
    store_.record_measurement(hash, "drift", drift_key_, json(score).dump());
    ++counts_.drift_runs;
    return score;
}

std::optional<ModelRef> Measurements::speed_reference() const {
    if (plan_.base && plan_.base->endpoint.empty()) return plan_.base;
    for (const auto & m : plan_.alternatives)
        if (m.endpoint.empty()) return m;
    return std::nullopt;
}

// The screen's text (itself the calibration's by default), at most 64 KiB of it: empty when the
// plan has none, and the speed pass then uses its built-in passage.
const std::string & Measurements::speed_text() {
    if (speed_text_) return *speed_text_;
    std::string text;
    constexpr std::size_t limit = 64 * 1024;
    for (const auto & f : plan_.screen.files) {
        if (text.size() >= limit) break;
        text += read_whole_file(f, "screen text").substr(0, limit - text.size()) + "\n";
    }
    speed_text_ = text;
    return *speed_text_;
}

eval::SpeedOptions Measurements::speed_options() {
    const auto & sp = plan_.speed;
    return {.prompt_tokens = sp.prompt_tokens,
            .generate_tokens = sp.generate_tokens,
            .repeats = sp.repeats,
            .target_half_width = sp.target,
            .watts_per_busy_core = plan_.policy.deployment.watts,
            .price_per_hour = plan_.policy.deployment.price_per_hour,
            .text = speed_text()};
}

std::string Measurements::speed_key(const std::string & reference) {
    const auto & sp = plan_.speed;
    // "format" 7: interleaved ABBA rounds against a reference, the faster query of each side, medians (2: each model
    // alone; 6: with the KV cache's bytes; 7: with a draft's tokens and the answers compared). The price is not
    // part of it: costs are computed from the times.
    const json key = {{"format", 7},
                      {"machine", machine_key()},
                      {"prompt", sp.prompt_tokens},
                      {"generate", sp.generate_tokens},
                      {"repeats", sp.repeats},
                      {"target", sp.target},
                      {"watts", plan_.policy.deployment.watts},
                      {"text", sha256_bytes(speed_text())},
                      {"reference", reference},
                      {"context", plan_.policy.deployment.context}};
    return key.dump();
}

// The reference alone, once per plan (and from the store after): the absolute time per query
// every candidate's ratio multiplies.
const eval::SpeedResult & Measurements::reference_speed(const ModelRef & reference) {
    if (reference_speed_) return *reference_speed_;
    const auto hash = store_.model_hash(reference.path);
    const auto key = speed_key("self");
    if (const auto cached = store_.find_measurement(hash, "speed", key)) {
        reference_speed_ = json::parse(*cached).get<eval::SpeedResult>();
        ++counts_.speed_reused;
    } else {
        reference_speed_ = eval::measure_speed({.model_path = reference.path,
                                                .threads = speed_threads(),
                                                .context_length = plan_.policy.deployment.context,
                                                .parallel = 1},
                                               speed_options());
        store_.record_measurement(hash, "speed", key, json(*reference_speed_).dump());
        ++counts_.speed_runs;
    }
    return *reference_speed_;
}

namespace {

// The candidate's engine in the speed pass: its KV cache, and a drafted original's draft.
engine::LlamaEngineOptions candidate_speed_options(const Candidate & c, int threads, int context) {
    engine::LlamaEngineOptions options{
        .model_path = c.path, .threads = threads, .context_length = context, .parallel = 1, .kv_cache = c.kv_cache};
    if (c.draft) options.draft = {.model_path = c.draft->path, .max_tokens = c.draft->max_tokens};
    return options;
}

// What a drafted original's rounds measured of its draft, against the original undrafted.
DraftScore draft_score(const eval::PairedSpeed & p) {
    return {.drafted = p.candidate.draft_tokens,
            .accepted = p.candidate.draft_accepted,
            .decode_speedup = p.reference.decode_tokens_per_s > 0
                ? p.candidate.decode_tokens_per_s / p.reference.decode_tokens_per_s
                : 0,
            .answers_compared = p.answers_compared,
            .answers_identical = p.answers_identical,
            .first_difference = p.first_difference};
}

double query_log_half_width(double lo, double hi) { return lo > 0 && hi > lo ? (std::log(hi) - std::log(lo)) / 2 : 0; }

// Cost per query and its interval, and the per-1M figures, from the time per query. The query is
// the plan's: prompt_tokens + generate_tokens of the reference's tokens, reference_cpt characters each.
void price(CostScore & c, double query_seconds, double log_half, const Plan & plan, double reference_cpt) {
    const double per_second = plan.policy.deployment.price_per_hour / 3600.0;
    if (per_second <= 0) {
        c.unknown = "no policy.deployment.price_per_hour";
        return;
    }
    const double reference_tokens = plan.speed.prompt_tokens + plan.speed.generate_tokens;
    c.cost_per_query = per_second * query_seconds;
    c.cost_lo = c.cost_per_query * std::exp(-log_half);
    c.cost_hi = c.cost_per_query * std::exp(log_half);
    c.cost_per_1m_tokens = c.cost_per_query * 1e6 / reference_tokens;
    if (reference_cpt > 0) c.cost_per_1m_chars = c.cost_per_query * 1e6 / (reference_tokens * reference_cpt);
    if (c.query_prompt_tokens + c.query_generate_tokens > 0)
        c.cost_per_1k_tokens = c.cost_per_query * 1e3 / (c.query_prompt_tokens + c.query_generate_tokens);
}

}  // namespace

// Latency timed through the server (a prompt of about prompt_tokens tokens, generate_tokens out,
// `repeats` times); the cost is what the plan declares, per query of the plan's text in the
// endpoint's own tokens.
CostScore Measurements::remote_cost(const Candidate & c) {
    engine::RemoteEngine server(remote_options(c.served));
    const auto & sp = plan_.speed;
    std::string prompt = "Once upon a time";
    while (static_cast<int>(server.tokenize(prompt, true).size()) < sp.prompt_tokens)
        prompt += " there was a little girl who liked to play";
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
    ++counts_.speed_runs;
    CostScore cost{.remote = true, .p95_latency_ms = p95, .rounds = sp.repeats};
    if (!c.served.cost_per_1k_tokens) {
        cost.unknown = "the endpoint declares no cost_per_1k_tokens";
        return cost;
    }
    if (plan_.policy.deployment.price_per_hour <= 0) {
        // No hardware price: nothing to compare the declared cost with (a cost budget needs a price, see plan.cpp).
        cost.unknown = "no policy.deployment.price_per_hour to compare it with";
        cost.cost_per_1k_tokens = *c.served.cost_per_1k_tokens;
        return cost;
    }
    // The query's text in the endpoint's tokens: its characters per token where the server
    // tokenizes the text, else the reference's (an estimate).
    double reference_cpt = 0;
    try {
        if (const auto reference = speed_reference()) reference_cpt = reference_speed(*reference).chars_per_token;
    } catch (const Error &) {}
    double cpt = reference_cpt;
    try {
        const std::string text = speed_text().empty() ? prompt : speed_text().substr(0, 16 * 1024);
        if (const double measured = eval::chars_per_token(server, text.substr(0, utf8::complete_prefix_length(text)));
            measured > 0)
            cpt = measured;
    } catch (const Error &) {}
    const double reference_tokens = sp.prompt_tokens + sp.generate_tokens;
    const double own_tokens = cpt > 0 && reference_cpt > 0 ? reference_tokens * reference_cpt / cpt : reference_tokens;
    cost.chars_per_token = cpt;
    cost.query_prompt_tokens = static_cast<int>(std::lround(own_tokens * sp.prompt_tokens / reference_tokens));
    cost.query_generate_tokens = static_cast<int>(std::lround(own_tokens * sp.generate_tokens / reference_tokens));
    // Declared, so exact: the seconds of hardware that cost the same, priced like a measured time.
    const double seconds =
        *c.served.cost_per_1k_tokens / 1000.0 * own_tokens / (plan_.policy.deployment.price_per_hour / 3600.0);
    price(cost, seconds, 0, plan_, reference_cpt);
    cost.cost_per_1k_tokens = *c.served.cost_per_1k_tokens;
    return cost;
}

CostScore Measurements::cost(const Candidate & c) {
    if (c.remote()) return remote_cost(c);
    const auto reference = speed_reference();
    if (!reference) throw Error("speed: {}: no local model to time it against", c.name);
    const bool is_reference = model_key(c) == store_.model_hash(reference->path);
    try {
        const auto & ref = reference_speed(*reference);
        CostScore cost{.file_bytes = c.file_bytes, .reference = reference->name};
        eval::SpeedResult own = ref;
        eval::PairedSpeed paired;
        double log_half = query_log_half_width(ref.query_ms_lo, ref.query_ms_hi);
        if (!is_reference) {
            const auto hash = model_key(c);
            const auto key = speed_key(store_.model_hash(reference->path));
            if (const auto cached = store_.find_measurement(hash, "speed", key)) {
                paired = json::parse(*cached).get<eval::PairedSpeed>();
                ++counts_.speed_reused;
            } else {
                const int context = plan_.policy.deployment.context;
                auto options = speed_options();
                // A drafted original must answer as the original, the reference, does (rule_same_answers).
                options.compare_answers = c.draft.has_value();
                paired = eval::measure_speed_against(candidate_speed_options(c, speed_threads(), context),
                                                     {.model_path = reference->path,
                                                      .threads = speed_threads(),
                                                      .context_length = context,
                                                      .parallel = 1},
                                                     options);
                store_.record_measurement(hash, "speed", key, json(paired).dump());
                ++counts_.speed_runs;
            }
            own = paired.candidate;
            cost.ratio = paired.ratio;
            cost.ratio_lo = paired.ratio_lo;
            cost.ratio_hi = paired.ratio_hi;
            log_half = std::hypot(log_half, query_log_half_width(paired.ratio_lo, paired.ratio_hi));
        }
        cost.peak_rss_bytes = own.peak_rss_bytes;
        cost.kv_cache_bytes = own.kv_cache_bytes;
        cost.prefill_tokens_per_s = own.prefill_tokens_per_s;
        cost.decode_tokens_per_s = own.decode_tokens_per_s;
        cost.ttft_p95_ms = own.ttft_p95_ms;
        cost.p95_latency_ms = own.query_p95_ms;
        cost.chars_per_token = own.chars_per_token;
        cost.query_prompt_tokens = own.prompt_tokens;
        cost.query_generate_tokens = own.generate_tokens;
        cost.rounds = own.rounds;
        cost.joules_per_token = own.joules_per_token;
        cost.energy_source = own.energy_source;
        if (c.draft) cost.draft = draft_score(paired);
        // Every candidate's time per query is the reference's times its ratio: one absolute figure,
        // so that costs compare as their ratios do.
        price(cost, ref.query_ms / 1000.0 * cost.ratio, log_half, plan_, ref.chars_per_token);
        return cost;
    } catch (const Error & e) {
        // A failed measurement is an unknown cost (never 0), and is not stored: the next run tries again.
        return CostScore{.file_bytes = c.file_bytes, .reference = reference->name, .unknown = e.what()};
    }
}

}  // namespace switchyard::decide
