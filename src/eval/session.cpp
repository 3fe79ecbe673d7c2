#include "eval/session.h"

#include "eval/results_store.h"
#include "eval/text_chunks.h"
#include "model/model_info.h"
#include "support/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <numeric>

namespace switchyard::eval {

namespace {

// What only an in-process model can measure: they read whole distributions, memory and timings.
void check_served_request(const EvalRequest & r) {
    const std::pair<bool, const char *> local_only[] = {{!r.text.empty(), "--text"},
                                                        {!r.base.empty(), "--base"},
                                                        {!r.base_file.empty(), "--base-file"},
                                                        {r.speed.has_value(), "--speed"}};
    for (const auto & [given, flag] : local_only) {
        if (given)
            throw Error("{} needs a local model (-m FILE.gguf): with --endpoint, eval measures task suites (--tasks)",
                        std::string(flag));
    }
}

void check_request(const EvalRequest & r) {
    if (!r.served && r.model.empty())
        throw Error("give the model to measure: -m FILE.gguf, or --endpoint URL [-m NAME] for a served one");
    if (!r.draft.model_path.empty() && !r.speed)
        throw Error("--draft speeds up generation, which only the speed pass times: give --speed too");
    if (r.tasks.empty() && r.text.empty() && r.base_file.empty() && !r.speed)
        throw Error("nothing to measure: give --tasks SPEC, --text FILE and/or --speed");
    if (r.served) check_served_request(r);
    if (r.served && !r.kv_cache.is_default())
        throw Error("--cache-type-k/-v set a local model's KV cache; {} keeps its own", r.served->endpoint);
    if (r.stride > 0 && r.skip_chunks > 0)
        throw Error("--stride slides over the whole text; it cannot be combined with --skip-chunks");
    if (!r.save_base.empty() && !r.base_file.empty())
        throw Error("--save-base and --base-file cannot be combined: the base file already holds a base");
    if (!r.save_base.empty() && r.text.empty())
        throw Error("--save-base needs --text: it stores the base's predictions on that text");
}

// Task suites score many short items side by side, with the plain kernels an RPC worker runs
// (eval/run_suite.h); text alone runs whole chunks (chunk_engine_options) with llama.cpp's
// default kernels, as llama-perplexity does, and sliding windows score up to every position of theirs.
engine::LlamaEngineOptions session_engine_options(const std::filesystem::path & path, const EvalRequest & r,
                                                  int context) {
    if (!r.tasks.empty())
        return {.model_path = path,
                .threads = r.threads,
                .context_length = context,
                .parallel = engine::scoring_parallel(context),
                .rpc = r.rpc,
                .repack = false};
    auto options = chunk_engine_options(path, model::inspect_gguf(path).vocab_size, r.threads, context);
    if (r.stride > 0) options.max_outputs = options.batch_size;
    options.rpc = r.rpc;
    return options;
}

engine::LlamaEngineOptions measured_engine_options(const EvalRequest & r, int context) {
    auto options = session_engine_options(r.model, r, context);
    options.kv_cache = r.kv_cache;
    return options;
}

// Runs suites through the results store where there is one: a finished run is reused and an
// interrupted one resumes.
class SuiteRuns {
public:
    SuiteRuns(const EvalRequest & r, const std::optional<RecordedModel> & served_as)
        : options_{.normalize = r.normalize, .progress = r.progress}, progress_(r.progress) {
        if (!r.results || r.tasks.empty()) return;
        store_.emplace(*r.results);
        model_ = served_as ? *served_as : store_->file_model(r.model, r.kv_cache);
        if (!r.base.empty()) base_ = store_->file_model(r.base);
    }

    SuiteResult of_model(engine::Engine & e, const TaskSuite & suite) { return run(e, model_, suite); }
    SuiteResult of_base(engine::Engine & e, const TaskSuite & suite) { return run(e, base_, suite); }

private:
    SuiteResult run(engine::Engine & e, const std::optional<RecordedModel> & who, const TaskSuite & suite) {
        if (!store_) return run_suite(e, suite, options_);
        bool reused = false;
        auto result = run_suite_recorded(*store_, e, *who, suite, options_, &reused);
        if (reused && progress_)
            std::fprintf(stderr, "%s: reused the recorded results for %s\n", suite.settings.name.c_str(),
                         who->label.c_str());
        return result;
    }

    RunOptions options_;
    bool progress_;
    std::optional<ResultsStore> store_;
    std::optional<RecordedModel> model_, base_;
};

std::vector<TaskSuite> load_suites(const std::vector<std::string> & specs) {
    std::vector<TaskSuite> suites;
    for (const auto & spec : specs) {
        suites.push_back(load_suite(spec));
        for (const auto & s : suites.back().skipped)
            std::fprintf(stderr, "%s:%zu: skipped: %s\n", spec.c_str(), s.line, s.reason.c_str());
    }
    return suites;
}

TextChunks tokenize_text(const engine::Engine & e, const EvalRequest & r, int context) {
    return tokenize_chunks(e,
                           {.files = r.text,
                            .context = context,
                            .skip_chunks = r.skip_chunks,
                            .max_chunks = r.chunks,
                            .normalize = r.normalize});
}

// The model's text measurements. With a reference, the drift pass yields the perplexity too: one
// forward pass, not two; so does recording the model's own predictions as a base.
void measure_text(EvalReport & report, const EvalRequest & r, engine::LlamaEngine & model,
                  std::optional<Reference> reference, TextChunks text) {
    if (!r.base_file.empty()) {
        reference = load_reference(r.base_file);
        text.chunks = reference->chunks;
    } else if (!r.text.empty() && r.base.empty()) {
        text = tokenize_text(model, r, report.context);
    }
    if (reference) {
        report.drift = measure_drift(*reference, model);
        report.drift_top_k = reference->k;
    }
    std::optional<double> own_nll;
    if (!r.save_base.empty() && r.base.empty()) {
        const Reference own = record_reference(model, text.chunks, r.top_k);
        save_reference(own, r.save_base);
        own_nll = -std::accumulate(own.target_logprob.begin(), own.target_logprob.end(), 0.0);
    }
    if (text.chunks.empty()) return;
    report.perplexity = r.stride > 0
        ? measure_perplexity_sliding(model, text, report.context, r.stride, static_cast<std::size_t>(r.chunks))
        : report.drift ? perplexity_from(model, text, report.drift->nll_sum)
        : own_nll      ? perplexity_from(model, text, *own_nll)
                       : measure_perplexity(model, text);
}

}  // namespace

EvalReport run_eval(const EvalRequest & r) {
    check_request(r);
    EvalReport report{.base = r.base, .normalize = r.normalize};
    std::optional<engine::RemoteEngine> remote;
    std::optional<RecordedModel> served_as;
    if (r.served) {
        remote.emplace(*r.served);
        report.context = remote->model().context_length;
        report.endpoint = remote->endpoint();
        served_as = remote_model(remote->endpoint(), remote->model().name);
        report.model = served_as->label;
    } else {
        // Read first: a broken file fails here, not after the base's whole pass.
        const model::ModelInfo info = model::inspect_gguf(r.model);
        report.context = r.context > 0 ? r.context : default_chunk_context(info.context_length);
        report.model = r.model.string();
        if (!r.kv_cache.is_default()) report.kv_cache = r.kv_cache.label();
        // The speed pass runs first, with nothing else loaded, so its peak memory is this model's.
        if (r.speed) {
            report.speed = measure_speed({.model_path = r.model,
                                          .threads = r.threads,
                                          .context_length = report.context,
                                          .rpc = r.rpc,
                                          .kv_cache = r.kv_cache,
                                          .draft = r.draft},
                                         *r.speed);
            report.price_per_hour = r.speed->price_per_hour;
            report.draft = r.draft;
        }
    }
    SuiteRuns runs(r, served_as);
    const std::vector<TaskSuite> suites = load_suites(r.tasks);

    // One model in memory at a time: the base does all its work (its task results, its predictions
    // on the text) and is freed before the measured model is loaded.
    std::vector<SuiteResult> base_results;
    std::optional<Reference> reference;
    TextChunks text;
    if (!r.base.empty()) {
        engine::LlamaEngine base(session_engine_options(r.base, r, report.context));
        for (const auto & suite : suites) base_results.push_back(runs.of_base(base, suite));
        if (!r.text.empty()) {
            text = tokenize_text(base, r, report.context);
            reference = record_reference(base, text.chunks, r.top_k);
            if (!r.save_base.empty()) save_reference(*reference, r.save_base);
        }
    }
    std::optional<engine::LlamaEngine> local;
    if (!remote) local.emplace(measured_engine_options(r, report.context));
    engine::Engine & engine = local ? static_cast<engine::Engine &>(*local) : *remote;
    for (std::size_t i = 0; i < suites.size(); ++i) {
        SuiteReport s{.result = runs.of_model(engine, suites[i])};
        if (!base_results.empty()) {
            s.comparison = compare_outcomes(base_results[i], s.result);
            s.base = std::move(base_results[i]);
        }
        report.suites.push_back(std::move(s));
    }
    // Text comes only with a local model (check_served_request).
    if (local) measure_text(report, r, *local, std::move(reference), std::move(text));
    return report;
}

void to_json(nlohmann::json & j, const SuiteReport & s) {
    j = s.result;
    if (s.base) j["base"] = *s.base;
    if (s.comparison) j["comparison"] = *s.comparison;
}

void to_json(nlohmann::json & j, const EvalReport & r) {
    j = {{"model", r.model}, {"normalize", r.normalize}, {"context", r.context}, {"suites", r.suites}};
    if (!r.kv_cache.empty()) j["kv_cache"] = r.kv_cache;
    if (!r.endpoint.empty()) j["endpoint"] = r.endpoint;
    if (!r.base.empty()) j["base"] = r.base.string();
    if (const auto & p = r.perplexity) {
        j["perplexity"] = p->perplexity;
        j["bits_per_byte"] = p->bits_per_byte;
        j["text"] = {{"chunks", p->chunks}, {"tokens_scored", p->tokens}, {"bytes_scored", p->bytes}};
    }
    if (r.drift) {
        j["drift"] = *r.drift;
        j["drift"]["top_k"] = r.drift_top_k;
        j["drift"]["ppl_ratio"] = r.ppl_ratio();
    }
    if (const auto & v = r.speed) {
        j["speed"] = *v;
        if (!r.draft.model_path.empty()) {
            const auto d = draft_stats(*v);
            j["speed"]["draft"] = {{"model", r.draft.model_path.string()},
                                   {"max_tokens", r.draft.max_tokens},
                                   {"drafted", d.drafted},
                                   {"accepted", d.accepted},
                                   {"steps", d.steps},
                                   {"acceptance", d.acceptance()}};
        }
        if (r.price_per_hour > 0)
            j["cost"] = {{"price_per_hour", r.price_per_hour},
                         {"per_1k_tokens", v->cost_per_1k_tokens},
                         {"per_query", v->cost_per_query}};
    }
}

}  // namespace switchyard::eval
