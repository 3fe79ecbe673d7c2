// `switchyard eval -m MODEL [--tasks SPEC]... [--text FILE] [--base MODEL]` and `switchyard eval --endpoint URL
// [-m NAME] --tasks SPEC...`: accuracy with intervals, perplexity, drift from an original.
#include "cli/commands.h"
#include "engine/remote_engine.h"
#include "eval/drift.h"
#include "eval/perplexity.h"
#include "eval/results_store.h"
#include "eval/run_suite.h"
#include "eval/speed.h"
#include "model/model_info.h"
#include "support/error.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <iostream>
#include <numeric>
#include <optional>

namespace switchyard::cli {

namespace {

struct EvalOptions {
    std::string model;  // a GGUF file, or with an endpoint the server's name for its model
    std::string endpoint;
    std::string api_key_env;
    bool chat = false;
    int parallel = 4;
    int timeout_s = 600;
    std::filesystem::path base;
    std::filesystem::path base_file;  // a stored reference instead of running the base on text
    std::filesystem::path save_base;
    int top_k = 64;
    std::filesystem::path results = eval::default_results_path();
    bool no_results = false;
    bool speed = false;
    eval::SpeedOptions speed_options;
    std::vector<std::string> tasks;
    std::vector<std::filesystem::path> text;
    int context = 0;
    int chunks = 0;
    int skip_chunks = 0;
    int stride = 0;
    bool normalize = false;
    bool json = false;
    int threads = 0;
    std::vector<std::string> rpc;
};

// Task suites score many short items side by side, with the plain kernels an RPC worker runs
// (eval/run_suite.h); text alone runs whole chunks (eval's chunk_engine_options) with llama.cpp's
// default kernels, as llama-perplexity does, and sliding windows score up to every position of theirs.
engine::LlamaEngineOptions engine_options(const std::filesystem::path & path, const EvalOptions & o, int context) {
    if (!o.tasks.empty())
        return {.model_path = path, .threads = o.threads, .context_length = context, .parallel = engine::scoring_parallel(context), .rpc = o.rpc, .repack = false};
    auto options = eval::chunk_engine_options(path, model::inspect_gguf(path).vocab_size, o.threads, context);
    if (o.stride > 0) options.max_outputs = options.batch_size;
    options.rpc = o.rpc;
    return options;
}

// A served model: the API key comes from the environment, as a flag would show it to every user of `ps`.
engine::RemoteEngineOptions remote_options(const EvalOptions & o) {
    engine::RemoteEngineOptions r{.endpoint = o.endpoint, .model = o.model, .context_length = o.context, .parallel = o.parallel, .chat = o.chat,
                                  .timeout_s = o.timeout_s};
    if (!o.api_key_env.empty()) {
        const char * key = std::getenv(o.api_key_env.c_str());
        if (key == nullptr || *key == '\0') throw Error("--api-key-env " + o.api_key_env + ": that environment variable is not set");
        r.api_key = key;
    }
    return r;
}

// What only an in-process model can measure: they read whole distributions, memory and timings.
void check_remote_request(const EvalOptions & o) {
    const std::pair<bool, const char *> local_only[] = {{!o.text.empty(), "--text"},
                                                        {!o.base.empty(), "--base"},
                                                        {!o.base_file.empty(), "--base-file"},
                                                        {o.speed, "--speed"}};
    for (const auto & [given, flag] : local_only) {
        if (given) throw Error(std::string(flag) + " needs a local model (-m FILE.gguf): with --endpoint, eval measures task suites (--tasks)");
    }
}

void run_eval(const EvalOptions & o) {
    const bool served = !o.endpoint.empty();
    if (!served && o.model.empty()) throw Error("give the model to measure: -m FILE.gguf, or --endpoint URL [-m NAME] for a served one");
    if (o.tasks.empty() && o.text.empty() && o.base_file.empty() && !o.speed) {
        throw Error("nothing to measure: give --tasks SPEC, --text FILE and/or --speed");
    }
    if (served) check_remote_request(o);
    if (o.stride > 0 && o.skip_chunks > 0) throw Error("--stride slides over the whole text; it cannot be combined with --skip-chunks");
    if (!o.save_base.empty() && !o.base_file.empty()) throw Error("--save-base and --base-file cannot be combined: the base file already holds a base");
    if (!o.save_base.empty() && o.text.empty()) throw Error("--save-base needs --text: it stores the base's predictions on that text");
    std::optional<eval::SpeedResult> speed;
    std::optional<engine::LlamaEngine> local;
    std::optional<engine::RemoteEngine> remote;
    int context = 0;
    if (served) {
        remote.emplace(remote_options(o));
        context = remote->model().context_length;
    } else {
        // Read first: a broken file fails here, not after the base's whole pass.
        const model::ModelInfo info = model::inspect_gguf(o.model);
        context = o.context > 0 ? o.context : eval::default_chunk_context(info.context_length);
        // The speed pass runs first, with nothing else loaded, so its peak memory is this model's.
        if (o.speed) speed = eval::measure_speed({.model_path = o.model, .threads = o.threads, .context_length = context, .rpc = o.rpc}, o.speed_options);
    }

    const auto served_as = served ? std::optional(eval::remote_model(remote->endpoint(), remote->model().name)) : std::nullopt;
    const std::string label = served ? served_as->label : o.model;
    nlohmann::json out = {{"model", label}, {"normalize", o.normalize}, {"context", context}, {"suites", nlohmann::json::array()}};
    if (served) out["endpoint"] = remote->endpoint();
    if (!o.base.empty()) out["base"] = o.base.string();
    const eval::RunOptions run{.normalize = o.normalize, .progress = !o.json};
    std::optional<eval::ResultsStore> store;
    if (!o.no_results && !o.tasks.empty()) store.emplace(o.results);
    std::optional<eval::RecordedModel> recorded, base_recorded;
    if (store) {
        recorded = served ? *served_as : store->file_model(o.model);
        if (!o.base.empty()) base_recorded = store->file_model(o.base);
    }
    // Through the store, a finished run is reused and an interrupted one resumes.
    auto run_on = [&](engine::Engine & e, const std::optional<eval::RecordedModel> & who, const eval::TaskSuite & suite) {
        if (!store) return eval::run_suite(e, suite, run);
        bool reused = false;
        auto result = eval::run_suite_recorded(*store, e, *who, suite, run, &reused);
        if (reused && !o.json) std::fprintf(stderr, "%s: reused the recorded results for %s\n", suite.settings.name.c_str(), who->label.c_str());
        return result;
    };
    std::vector<eval::TaskSuite> suites;
    for (const auto & spec : o.tasks) {
        suites.push_back(eval::load_suite(spec));
        for (const auto & s : suites.back().skipped) std::fprintf(stderr, "%s:%zu: skipped: %s\n", spec.c_str(), s.line, s.reason.c_str());
    }
    auto tokenize_text = [&](const engine::Engine & e) {
        return eval::tokenize_chunks(e, {.files = o.text, .context = context, .skip_chunks = o.skip_chunks, .max_chunks = o.chunks,
                                         .normalize = o.normalize});
    };

    // One model in memory at a time: the base does all its work (its task results, its predictions
    // on the text) and is freed before the measured model is loaded.
    std::vector<eval::SuiteResult> base_results;
    std::optional<eval::Reference> reference;
    eval::TextChunks text;
    if (!o.base.empty()) {
        engine::LlamaEngine base(engine_options(o.base, o, context));
        for (const auto & suite : suites) base_results.push_back(run_on(base, base_recorded, suite));
        if (!o.text.empty()) {
            text = tokenize_text(base);
            reference = eval::record_reference(base, text.chunks, o.top_k);
            if (!o.save_base.empty()) eval::save_reference(*reference, o.save_base);
        }
    }
    if (!served) local.emplace(engine_options(o.model, o, context));
    engine::Engine & engine = local ? static_cast<engine::Engine &>(*local) : *remote;
    for (std::size_t i = 0; i < suites.size(); ++i) {
        const auto result = run_on(engine, recorded, suites[i]);
        nlohmann::json j = result;
        if (!base_results.empty()) {
            j["base"] = base_results[i];
            j["comparison"] = eval::compare_outcomes(base_results[i], result);
        }
        out["suites"].push_back(j);
    }
    if (!o.base_file.empty()) {
        reference = eval::load_reference(o.base_file);
        text.chunks = reference->chunks;
    } else if (!o.text.empty() && o.base.empty()) {
        text = tokenize_text(engine);
    }
    // With a reference, the drift pass yields the perplexity too: one forward pass, not two; so
    // does recording the model's own predictions as a base. Text comes only with a local model
    // (check_remote_request).
    std::optional<eval::Drift> drift;
    if (reference) drift = eval::measure_drift(*reference, *local);
    std::optional<double> own_nll;
    if (!o.save_base.empty() && o.base.empty()) {
        const eval::Reference own = eval::record_reference(*local, text.chunks, o.top_k);
        eval::save_reference(own, o.save_base);
        own_nll = -std::accumulate(own.target_logprob.begin(), own.target_logprob.end(), 0.0);
    }
    if (!text.chunks.empty()) {
        const auto ppl = o.stride > 0 ? eval::measure_perplexity_sliding(*local, text, context, o.stride, static_cast<std::size_t>(o.chunks))
                         : drift   ? eval::perplexity_from(*local, text, drift->nll_sum)
                         : own_nll ? eval::perplexity_from(*local, text, *own_nll)
                                   : eval::measure_perplexity(*local, text);
        out["perplexity"] = ppl.perplexity;
        out["bits_per_byte"] = ppl.bits_per_byte;
        out["text"] = {{"chunks", ppl.chunks}, {"tokens_scored", ppl.tokens}, {"bytes_scored", ppl.bytes}};
    }
    if (drift) {
        const auto & d = *drift;
        out["kld"] = {{"mean", d.kld.mean}, {"median", d.kld.median}, {"p90", d.kld.p90}, {"p99", d.kld.p99}, {"max", d.kld.max}, {"top_k", reference->k}};
        out["top1_agreement"] = d.top1_agreement;
        out["rms_delta_p"] = d.rms_delta_p;
        out["ppl_ratio"] = d.perplexity / d.reference_perplexity;
    }
    if (speed) {
        const auto & v = *speed;
        out["speed"] = v;
        if (o.speed_options.price_per_hour > 0) {
            out["cost"] = {{"price_per_hour", o.speed_options.price_per_hour}, {"per_1k_tokens", v.cost_per_1k_tokens}, {"per_query", v.cost_per_query}};
        }
    }
    if (o.json) {
        std::cout << out.dump(2) << '\n';
        return;
    }
    fmt::print("{}\n", label);
    for (const auto & s : out["suites"]) {
        fmt::print("  {:<40} n={:<5} accuracy {:6.2f}% [{:.2f}, {:.2f}]", s["name"].get<std::string>(), s["n"].get<std::size_t>(),
                   100 * s["accuracy"].get<double>(), 100 * s["ci95"][0].get<double>(), 100 * s["ci95"][1].get<double>());
        if (s.contains("accuracy_norm")) fmt::print("  acc_norm {:6.2f}%", 100 * s["accuracy_norm"].get<double>());
        if (s["unencodable"].get<std::size_t>() > 0) fmt::print("  ({} unencodable)", s["unencodable"].get<std::size_t>());
        if (s["too_long"].get<std::size_t>() > 0) fmt::print("  ({} too long for the context)", s["too_long"].get<std::size_t>());
        if (s["skipped"].get<std::size_t>() > 0) fmt::print("  ({} malformed lines skipped)", s["skipped"].get<std::size_t>());
        fmt::print("\n");
        if (s.contains("comparison")) {
            const auto & c = s["comparison"];
            fmt::print("  {:<40} base {:6.2f}%, drop {:+.2f} points [{:+.2f}, {:+.2f}], flips {} right->wrong / {} wrong->right, McNemar p={:.3g}\n", "",
                       100 * s["base"]["accuracy"].get<double>(), 100 * c["absolute"]["drop"].get<double>(),
                       100 * c["absolute"]["ci95"][0].get<double>(), 100 * c["absolute"]["ci95"][1].get<double>(), c["right_to_wrong"].size(),
                       c["wrong_to_right"].size(), c["mcnemar_p"].get<double>());
        }
    }
    if (out.contains("perplexity")) {
        fmt::print("  text: perplexity {:.4f}, {:.4f} bits per byte ({} tokens scored)\n", out["perplexity"].get<double>(),
                   out["bits_per_byte"].get<double>(), out["text"]["tokens_scored"].get<std::size_t>());
    }
    if (speed) {
        const auto & v = *speed;
        fmt::print("  speed: prefill {:.0f} tok/s, decode {:.0f} tok/s, time to first token p50 {:.1f} ms / p95 {:.1f} ms, peak memory {:.1f} MiB\n",
                   v.prefill_tokens_per_s, v.decode_tokens_per_s, v.ttft_p50_ms, v.ttft_p95_ms, v.peak_rss_bytes / 1048576.0);
        fmt::print("  energy: {:.3g} J per generated token, {}\n", v.joules_per_token, v.energy_source);
        if (o.speed_options.price_per_hour > 0) {
            fmt::print("  cost at ${:.2f}/hour: ${:.3g} per 1M tokens (prompt and answer), ${:.3g} per query ({} in, {} out, {:.1f} ms [{:.1f}, {:.1f}] over {} rounds)\n",
                       o.speed_options.price_per_hour, 1000 * v.cost_per_1k_tokens, v.cost_per_query, v.prompt_tokens, v.generate_tokens, v.query_ms,
                       v.query_ms_lo, v.query_ms_hi, v.rounds);
        }
    }
    if (out.contains("kld")) {
        fmt::print("  against the base: mean KLD {:.4e}, p99 {:.4e}, top-1 agreement {:.2f}%, RMS dp {:.4f}, PPL ratio {:.4f}\n",
                   out["kld"]["mean"].get<double>(), out["kld"]["p99"].get<double>(), 100 * out["top1_agreement"].get<double>(),
                   out["rms_delta_p"].get<double>(), out["ppl_ratio"].get<double>());
    }
}

}  // namespace

void add_eval(CLI::App & app) {
    auto * cmd = app.add_subcommand("eval", "Measure a model on your tasks (accuracy with 95% intervals), on text (perplexity, bits per byte), and against its original");
    auto o = std::make_shared<EvalOptions>();
    cmd->add_option("-m,--model", o->model, "GGUF model to measure; with --endpoint, the server's name for its model (default: the one it lists)");
    cmd->add_option("--endpoint", o->endpoint,
                    "Measure a served model instead of a file: an OpenAI-compatible URL (llama-server, vLLM, switchyard serve). Generation "
                    "suites need /tokenize and /v1/completions; multiple-choice and pair suites need the prompt's log-probabilities (echo)");
    cmd->add_option("--api-key-env", o->api_key_env, "Environment variable holding the endpoint's API key (sent as a bearer token)");
    cmd->add_flag("--chat", o->chat, "Generate through the endpoint's /v1/chat/completions, the prompt as one user message");
    cmd->add_option("--parallel", o->parallel, "Requests in flight at once to the endpoint")->capture_default_str();
    cmd->add_option("--timeout", o->timeout_s, "Seconds to wait for one answer from the endpoint")->capture_default_str();
    cmd->add_option("--tasks", o->tasks, "Task suite: FILE.jsonl, blimp:FILE or lambada:FILE (repeatable)");
    cmd->add_option("--text", o->text, "Raw text for perplexity and bits per byte (and KLD with --base)");
    cmd->add_option("-c,--ctx", o->context,
                    "Context per text chunk (default: min(512, the model's declared context)); with --endpoint, the model's context length "
                    "(default: what the server says)");
    cmd->add_option("--chunks", o->chunks, "Text chunks to use (default: all)");
    cmd->add_option("--skip-chunks", o->skip_chunks, "Skip this many text chunks first (e.g. those used for calibration)");
    cmd->add_option("--stride", o->stride, "Perplexity over sliding windows moved by this many tokens (default: llama-perplexity's chunks)");
    cmd->add_option("--base", o->base, "The original model: adds paired comparisons, flips, KLD and top-1 agreement");
    cmd->add_option("--top-k", o->top_k, "Base log-probabilities kept per position for KLD (the rest as one remainder)")->capture_default_str();
    cmd->add_option("--save-base", o->save_base, "Store the base's predictions on --text here (without --base: the model's own), for --base-file later");
    cmd->add_option("--base-file", o->base_file, "Compare with base predictions stored by --save-base (its text and tokens come along)");
    cmd->add_flag("--speed", o->speed, "Also measure prefill/decode throughput, time to first token, peak memory, energy, cost");
    cmd->add_option("--speed-prompt", o->speed_options.prompt_tokens, "Prompt tokens in the speed pass")->capture_default_str();
    cmd->add_option("--speed-generate", o->speed_options.generate_tokens, "Generated tokens in the speed pass")->capture_default_str();
    cmd->add_option("--speed-repeats", o->speed_options.repeats, "Most rounds in the speed pass (each one query; they stop once the time per query is known within 3%)")->capture_default_str();
    cmd->add_option("--watts", o->speed_options.watts_per_busy_core, "Watts per busy core, for modelled energy where no meter is readable")
        ->capture_default_str();
    cmd->add_option("--price-per-hour", o->speed_options.price_per_hour, "Hardware price per hour in dollars, for cost per 1M tokens and per query");
    cmd->add_flag("--normalize", o->normalize, "Collapse whitespace and drop characters the vocabulary cannot encode");
    cmd->add_flag("--json", o->json, "Print one JSON object");
    cmd->add_option("--results", o->results, "Results store (SQLite)")->capture_default_str();
    cmd->add_flag("--no-results", o->no_results, "Neither reuse nor record results");
    cmd->add_option("-t,--threads", o->threads, "CPU threads (default: all)");
    cmd->add_option("--rpc", o->rpc, "rpc-server workers (rpc://HOST:PORT, comma-separated) that hold the model's layers and compute them")->delimiter(',');
    cmd->callback([o] { run_eval(*o); });

    auto * results = app.add_subcommand("results", "List, show or export recorded evaluation results");
    results->require_subcommand(1);
    auto store_path = std::make_shared<std::filesystem::path>(eval::default_results_path());
    results->add_option("--results", *store_path, "Results store (SQLite)")->capture_default_str();
    results->add_subcommand("list", "One line per recorded run")->callback([store_path] {
        eval::ResultsStore store(*store_path);
        // A run not finished holds a prefix of its suite: in progress, interrupted, or as far as a
        // sequential plan's verdict needed; its next run resumes it.
        fmt::print("{:>4}  {:<9} {:<36} {:<30} {:>11} {:>9}\n", "run", "status", "suite", "model", "items", "accuracy");
        for (const auto & r : store.list_runs()) {
            const auto acc = r.metrics.find("accuracy");
            fmt::print("{:>4}  {:<9} {:<36} {:<30} {:>11} {:>9}\n", r.id, r.status == "finished" ? "finished" : "partial", r.suite_name, r.model_short(),
                       fmt::format("{}/{}", r.items_done, r.items_total), acc == r.metrics.end() ? "-" : fmt::format("{:.2f}%", 100 * acc->second));
        }
    });
    auto run_id = std::make_shared<std::int64_t>(0);
    auto * show = results->add_subcommand("show", "A run's metrics and per-item outcomes");
    show->add_option("RUN", *run_id, "Run number from `results list`")->required();
    show->callback([store_path, run_id] {
        eval::ResultsStore store(*store_path);
        for (const auto & r : store.list_runs()) {
            if (r.id != *run_id) continue;
            fmt::print("run {}: {} on {} ({}), {}\n  model sha256 {}\n  suite hash {}\n", r.id, r.suite_name, r.model_path, r.options, r.status,
                       r.model_sha256, r.suite_hash);
            for (const auto & [name, value] : r.metrics) fmt::print("  {:<14} {:g}\n", name, value);
            for (const auto & o : store.outcomes(r.id)) {
                fmt::print("  line {:>6}: {}\n", o.line, o.unencodable ? "unencodable" : o.too_long ? "too long" : o.correct ? "right" : "wrong");
            }
            return;
        }
        throw Error("no run " + std::to_string(*run_id) + " in " + store_path->string());
    });
    auto format = std::make_shared<std::string>("json");
    auto * exporter = results->add_subcommand("export", "Every run and outcome as JSON or CSV on stdout");
    exporter->add_flag("--csv{csv},--json{json}", *format, "Output format (default: json)");
    exporter->callback([store_path, format] {
        eval::ResultsStore store(*store_path);
        if (*format == "csv") {
            fmt::print("run,model_sha256,model_path,suite,suite_hash,options,status,line,unencodable,too_long,correct,correct_norm\n");
            for (const auto & r : store.list_runs()) {
                for (const auto & o : store.outcomes(r.id)) {
                    fmt::print("{},{},\"{}\",\"{}\",{},{},{},{},{:d},{:d},{:d},{:d}\n", r.id, r.model_sha256, r.model_path, r.suite_name, r.suite_hash,
                               r.options, r.status, o.line, o.unencodable, o.too_long, o.correct, o.correct_norm);
                }
            }
            return;
        }
        nlohmann::json out = nlohmann::json::array();
        for (const auto & r : store.list_runs()) {
            nlohmann::json outcomes = nlohmann::json::array();
            for (const auto & o : store.outcomes(r.id)) {
                outcomes.push_back({{"line", o.line}, {"unencodable", o.unencodable}, {"too_long", o.too_long}, {"correct", o.correct},
                                    {"correct_norm", o.correct_norm}, {"output", o.output}});
            }
            out.push_back({{"run", r.id}, {"model_sha256", r.model_sha256}, {"model_path", r.model_path}, {"suite", r.suite_name},
                           {"suite_hash", r.suite_hash}, {"options", r.options}, {"status", r.status}, {"started", r.started},
                           {"metrics", r.metrics}, {"outcomes", outcomes}});
        }
        std::cout << out.dump(2) << '\n';
    });
}

}  // namespace switchyard::cli
