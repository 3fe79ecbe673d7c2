#include "decide/measure.h"

#include "eval/speed.h"
#include "eval/text_chunks.h"
#include "model/model_info.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/sha256.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <span>

namespace switchyard::decide {

using nlohmann::json;

engine::RemoteEngineOptions remote_options(const ModelRef & m) {
    engine::RemoteEngineOptions r{.endpoint = m.endpoint, .model = m.remote_model, .context_length = m.context};
    if (!m.api_key_env.empty()) {
        const char * key = std::getenv(m.api_key_env.c_str());
        if (key == nullptr || *key == '\0') throw Error(m.name + ": api_key_env " + m.api_key_env + ": that environment variable is not set");
        r.api_key = key;
    }
    return r;
}

Measurements::Measurements(const Plan & plan, const std::filesystem::path & results, int threads, bool progress)
    : plan_(plan), store_(results), threads_(threads), progress_(progress) {}

int Measurements::context_for(const Candidate & c) const { return eval::default_chunk_context(static_cast<std::uint64_t>(c.context_length)); }

int Measurements::speed_threads() const { return plan_.policy.deployment.threads > 0 ? plan_.policy.deployment.threads : threads_; }

std::string Measurements::machine_key() const {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    return std::string(host) + "/threads=" + std::to_string(speed_threads());
}

namespace {

// Task suites: with the kernels plan workers run (eval/run_suite.h).
engine::LlamaEngineOptions engine_options(const Candidate & c, int context, int threads) {
    return {.model_path = c.path, .threads = threads, .context_length = context, .parallel = engine::scoring_parallel(context), .repack = false};
}

// The drift screen runs whole chunks of text (eval's chunk_engine_options), here in any case, with
// llama.cpp's default kernels.
engine::LlamaEngineOptions chunk_options(const Candidate & c, int context, int threads) {
    return eval::chunk_engine_options(c.path, model::inspect_gguf(c.path).vocab_size, threads, context);
}

}  // namespace

WorkerJob Measurements::worker_job(const Candidate & c, const std::vector<const eval::TaskSuite *> & suites) {
    WorkerJob job{.candidate = c.name, .model = c.path};
    if (c.remote()) return job;
    const auto recorded = store_.file_model(c.path);
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

std::vector<eval::SuiteResult> Measurements::suites(const Candidate & c, const std::vector<const eval::TaskSuite *> & suites) {
    const eval::RunOptions run{.normalize = plan_.normalize, .progress = progress_};
    const auto recorded = c.remote() ? eval::remote_model(c.served.endpoint, c.served.remote_model) : store_.file_model(c.path);
    // Suites a worker measured now count as run in this plan; those finished before, as reused.
    std::vector<std::string> on_workers;
    if (workers_ != nullptr && !c.remote()) {
        auto job = worker_job(c, suites);
        if (workers_->run(job)) on_workers = std::move(job.suites);
    }
    std::unique_ptr<engine::Engine> engine;
    std::vector<eval::SuiteResult> out;
    for (const auto * suite : suites) {
        if (auto finished = eval::finished_result(store_, recorded, *suite, run)) {
            const bool by_worker = std::find(on_workers.begin(), on_workers.end(), suite->spec) != on_workers.end() ||
                                   (workers_ != nullptr && !c.remote() && workers_->claim(c.path, suite->spec));
            ++(by_worker ? counts_.suite_runs : counts_.suite_runs_reused);
            counts_.suite_runs_on_workers += by_worker;
            out.push_back(std::move(*finished));
            continue;
        }
        // Loaded once, and only when some suite is not in the store.
        if (!engine && c.remote()) engine = std::make_unique<engine::RemoteEngine>(remote_options(c.served));
        if (!engine) engine = std::make_unique<engine::LlamaEngine>(engine_options(c, context_for(c), threads_));
        out.push_back(eval::run_suite_recorded(store_, *engine, recorded, *suite, run));
        ++counts_.suite_runs;
    }
    return out;
}

DriftScore Measurements::drift(const Candidate & original, const Candidate & variant) {
    const int context = plan_.screen.context > 0 ? plan_.screen.context : context_for(original);
    if (drift_key_.empty()) {
        // "format" 2: the score keeps its number of positions (R6's bounds need it).
        json key = {{"format", 2}, {"base", store_.model_hash(original.path)}, {"chunks", plan_.screen.chunks}, {"skip_chunks", plan_.screen.skip_chunks}, {"context", context},
                    {"normalize", plan_.normalize}, {"top_k", 64}};
        for (const auto & f : plan_.screen.files) key["files"].push_back(cached_sha256_file(f));
        drift_key_ = key.dump();
    }
    const auto hash = store_.model_hash(variant.path);
    if (const auto cached = store_.find_measurement(hash, "drift", drift_key_)) {
        ++counts_.drift_reused;
        return json::parse(*cached).get<DriftScore>();
    }
    if (!reference_) {
        engine::LlamaEngine base(chunk_options(original, context, threads_));
        const auto text = eval::tokenize_chunks(base, {.files = plan_.screen.files, .context = context, .skip_chunks = plan_.screen.skip_chunks,
                                                       .max_chunks = plan_.screen.chunks, .normalize = plan_.normalize});
        if (text.chunks.empty())
            throw Error(fmt::format("{}: screen: the text holds no chunk of {} tokens after skipping {}", plan_.source.string(), context, plan_.screen.skip_chunks));
        reference_ = eval::record_reference(base, text.chunks, 64, progress_);
    }
    engine::LlamaEngine engine(chunk_options(variant, context, threads_));
    const auto d = eval::measure_drift(*reference_, engine, progress_);
    const DriftScore score{d.kld.mean, d.kld.p99, d.top1_agreement, d.reference_perplexity > 0 ? d.perplexity / d.reference_perplexity : 0, d.positions};
    store_.record_measurement(hash, "drift", drift_key_, json(score).dump());
    ++counts_.drift_runs;
    return score;
}

// A prompt of about prompt_tokens words, generate_tokens out, `repeats` times, timed through the server.
CostScore Measurements::remote_cost(const Candidate & c) {
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
    ++counts_.speed_runs;
    return CostScore{.remote = true, .p95_latency_ms = p95, .cost_per_1k_tokens = c.served.cost_per_1k_tokens};
}

CostScore Measurements::cost(const Candidate & c) {
    if (c.remote()) return remote_cost(c);
    const auto hash = store_.model_hash(c.path);
    const auto & sp = plan_.speed;
    const auto & dep = plan_.policy.deployment;
    // "format" 2: eval::SpeedResult's own JSON form (format 1 wrote other key names).
    const json key = {{"format", 2}, {"machine", machine_key()}, {"prompt", sp.prompt_tokens}, {"generate", sp.generate_tokens}, {"repeats", sp.repeats},
                      {"watts", dep.watts}, {"price", dep.price_per_hour}};
    eval::SpeedResult r;
    if (const auto cached = store_.find_measurement(hash, "speed", key.dump())) {
        r = json::parse(*cached).get<eval::SpeedResult>();
        ++counts_.speed_reused;
    } else {
        r = eval::measure_speed({.model_path = c.path, .threads = speed_threads(), .context_length = context_for(c), .parallel = 1},
                                {.prompt_tokens = sp.prompt_tokens, .generate_tokens = sp.generate_tokens, .repeats = sp.repeats,
                                 .watts_per_busy_core = dep.watts, .price_per_hour = dep.price_per_hour});
        store_.record_measurement(hash, "speed", key.dump(), json(r).dump());
        ++counts_.speed_runs;
    }
    // One query: the first token, then the rest of the answer at the median decode speed.
    const double rest_ms = r.decode_tokens_per_s > 0 ? 1000.0 * std::max(0, sp.generate_tokens - 1) / r.decode_tokens_per_s : 0;
    return CostScore{.file_bytes = c.file_bytes, .peak_rss_bytes = r.peak_rss_bytes, .prefill_tokens_per_s = r.prefill_tokens_per_s,
                     .decode_tokens_per_s = r.decode_tokens_per_s, .ttft_p95_ms = r.ttft_p95_ms, .p95_latency_ms = r.ttft_p95_ms + rest_ms,
                     .cost_per_1k_tokens = r.cost_per_1k_tokens, .cost_per_query = r.cost_per_query, .joules_per_token = r.joules_per_token,
                     .energy_source = r.energy_source};
}

}  // namespace switchyard::decide
