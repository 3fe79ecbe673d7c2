// `switchyard eval -m MODEL [--tasks SPEC]... [--text FILE] [--base MODEL]` and `switchyard eval --endpoint URL
// [-m NAME] --tasks SPEC...`: accuracy with intervals, perplexity, drift from an original (eval/session.h
// measures); and `switchyard results list|show|export`, the results store.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "eval/results_store.h"
#include "eval/session.h"
#include "support/error.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <iostream>

namespace switchyard::cli {

namespace {

// The flags: the request itself, and what the CLI turns into parts of it.
struct EvalFlags {
    eval::EvalRequest request;
    std::string model;  // a GGUF file, or with an endpoint the server's name for its model
    engine::RemoteEngineOptions served;
    std::string api_key_env;
    bool speed = false;
    eval::SpeedOptions speed_options;
    std::filesystem::path results = eval::default_results_path();
    bool no_results = false;
    bool json = false;
};

// A served model's API key comes from the environment, as a flag would show it to every user of `ps`.
eval::EvalRequest request_from(const EvalFlags & f) {
    eval::EvalRequest r = f.request;
    if (!f.served.endpoint.empty()) {
        r.served = f.served;
        r.served->model = f.model;
        r.served->context_length = r.context;
        if (!f.api_key_env.empty()) {
            const char * key = std::getenv(f.api_key_env.c_str());
            if (key == nullptr || *key == '\0')
                throw Error("--api-key-env {}: that environment variable is not set", f.api_key_env);
            r.served->api_key = key;
        }
    } else {
        r.model = f.model;
    }
    if (f.speed) r.speed = f.speed_options;
    if (!f.no_results) r.results = f.results;
    r.progress = !f.json;
    return r;
}

void print_suite(const eval::SuiteReport & s) {
    const auto & r = s.result;
    fmt::print("  {:<40} n={:<5} accuracy {:6.2f}% [{:.2f}, {:.2f}]", r.suite.settings.name, r.scored,
               100 * r.accuracy(), 100 * r.ci95.lo, 100 * r.ci95.hi);
    if (r.has_norm) fmt::print("  acc_norm {:6.2f}%", 100 * r.accuracy_norm());
    if (r.unencodable > 0) fmt::print("  ({} unencodable)", r.unencodable);
    if (r.too_long > 0) fmt::print("  ({} too long for the context)", r.too_long);
    if (!r.suite.skipped.empty()) fmt::print("  ({} malformed lines skipped)", r.suite.skipped.size());
    fmt::print("\n");
    if (!s.comparison) return;
    const auto & c = *s.comparison;
    fmt::print(
        "  {:<40} base {:6.2f}%, drop {:+.2f} points [{:+.2f}, {:+.2f}], flips {} right->wrong / {} wrong->right, McNemar p={:.3g}\n",
        "", 100 * s.base->accuracy(), 100 * c.drop_absolute.mean_drop, 100 * c.drop_absolute.ci.lo,
        100 * c.drop_absolute.ci.hi, c.right_to_wrong.size(), c.wrong_to_right.size(), c.mcnemar_p);
}

void print_speed(const eval::SpeedResult & v, double price_per_hour) {
    fmt::print(
        "  speed: prefill {:.0f} tok/s, decode {:.0f} tok/s, time to first token p50 {:.1f} ms / p95 {:.1f} ms, peak memory {:.1f} MiB\n",
        v.prefill_tokens_per_s, v.decode_tokens_per_s, v.ttft_p50_ms, v.ttft_p95_ms, v.peak_rss_bytes / 1048576.0);
    fmt::print("  energy: {:.3g} J per generated token, {}\n", v.joules_per_token, v.energy_source);
    if (price_per_hour <= 0) return;
    fmt::print(
        "  cost at ${:.2f}/hour: ${:.3g} per 1M tokens (prompt and answer), ${:.3g} per query ({} in, {} out, {:.1f} ms [{:.1f}, {:.1f}] over {} rounds)\n",
        price_per_hour, 1000 * v.cost_per_1k_tokens, v.cost_per_query, v.prompt_tokens, v.generate_tokens, v.query_ms,
        v.query_ms_lo, v.query_ms_hi, v.rounds);
}

void print_report(const eval::EvalReport & report) {
    fmt::print("{}{}\n", report.model, report.kv_cache.empty() ? "" : " with a " + report.kv_cache + " KV cache");
    for (const auto & s : report.suites) print_suite(s);
    if (const auto & p = report.perplexity) {
        fmt::print("  text: perplexity {:.4f}, {:.4f} bits per byte ({} tokens scored)\n", p->perplexity,
                   p->bits_per_byte, p->tokens);
    }
    if (report.speed) print_speed(*report.speed, report.price_per_hour);
    if (report.speed && !report.draft.model_path.empty())
        fmt::print("  {}, by {}\n", describe_draft(eval::draft_stats(*report.speed)), report.draft.model_path.string());
    if (const auto & d = report.drift) {
        fmt::print(
            "  against the base: mean KLD {:.4e}, p99 {:.4e}, top-1 agreement {:.2f}%, RMS dp {:.4f}, PPL ratio {:.4f}\n",
            d->kld.mean, d->kld.p99, 100 * d->top1_agreement, d->rms_delta_p, report.ppl_ratio());
    }
}

void run_eval(const EvalFlags & flags) {
    const eval::EvalReport report = eval::run_eval(request_from(flags));
    if (flags.json) {
        std::cout << nlohmann::json(report).dump(2) << '\n';
        return;
    }
    print_report(report);
}

// Where and how a served model is asked.
void add_endpoint_flags(CLI::App & cmd, EvalFlags & f) {
    cmd.add_option(
        "--endpoint", f.served.endpoint,
        "Measure a served model instead of a file: an OpenAI-compatible URL (llama-server, vLLM, switchyard serve). Generation "
        "suites need /tokenize and /v1/completions; multiple-choice and pair suites need the prompt's log-probabilities (echo)");
    cmd.add_option("--api-key-env", f.api_key_env,
                   "Environment variable holding the endpoint's API key (sent as a bearer token)");
    cmd.add_flag("--chat", f.served.chat,
                 "Generate through the endpoint's /v1/chat/completions, the prompt as one user message");
    cmd.add_option("--parallel", f.served.parallel, "Requests in flight at once to the endpoint")
        ->capture_default_str();
    cmd.add_option("--timeout", f.served.timeout_s, "Seconds to wait for one answer from the endpoint")
        ->capture_default_str();
}

// Text, and the base it is compared with.
void add_text_flags(CLI::App & cmd, eval::EvalRequest & r) {
    cmd.add_option("--text", r.text, "Raw text for perplexity and bits per byte (and KLD with --base)");
    auto * context = add_chunk_context(cmd, r.context);
    context->description(context->get_description() +
                         "; with --endpoint, the model's context length (default: what the server says)");
    cmd.add_option("--chunks", r.chunks, "Text chunks to use (default: all)");
    cmd.add_option("--skip-chunks", r.skip_chunks,
                   "Skip this many text chunks first (e.g. those used for calibration)");
    cmd.add_option("--stride", r.stride,
                   "Perplexity over sliding windows moved by this many tokens (default: llama-perplexity's chunks)");
    cmd.add_option("--base", r.base, "The original model: adds paired comparisons, flips, KLD and top-1 agreement");
    cmd.add_option("--top-k", r.top_k, "Base log-probabilities kept per position for KLD (the rest as one remainder)")
        ->capture_default_str();
    cmd.add_option(
        "--save-base", r.save_base,
        "Store the base's predictions on --text here (without --base: the model's own), for --base-file later");
    cmd.add_option("--base-file", r.base_file,
                   "Compare with base predictions stored by --save-base (its text and tokens come along)");
}

void add_speed_flags(CLI::App & cmd, EvalFlags & f) {
    auto & s = f.speed_options;
    cmd.add_flag("--speed", f.speed,
                 "Also measure prefill/decode throughput, time to first token, peak memory, energy, cost");
    cmd.add_option("--speed-prompt", s.prompt_tokens, "Prompt tokens in the speed pass")->capture_default_str();
    cmd.add_option("--speed-generate", s.generate_tokens, "Generated tokens in the speed pass")->capture_default_str();
    cmd.add_option(
           "--speed-repeats", s.repeats,
           "Most rounds in the speed pass (each one query; they stop once the time per query is known within 3%)")
        ->capture_default_str();
    cmd.add_option("--watts", s.watts_per_busy_core,
                   "Watts per busy core, for modelled energy where no meter is readable")
        ->capture_default_str();
    cmd.add_option("--price-per-hour", s.price_per_hour,
                   "Hardware price per hour in dollars, for cost per 1M tokens and per query");
}

void list_results(const std::filesystem::path & path) {
    eval::ResultsStore store(path);
    // A run not finished holds a prefix of its suite: in progress, interrupted, or as far as a
    // sequential plan's verdict needed; its next run resumes it.
    fmt::print("{:>4}  {:<9} {:<36} {:<30} {:>11} {:>9}\n", "run", "status", "suite", "model", "items", "accuracy");
    for (const auto & r : store.list_runs()) {
        const auto acc = r.metrics.find("accuracy");
        fmt::print("{:>4}  {:<9} {:<36} {:<30} {:>11} {:>9}\n", r.id, r.status == "finished" ? "finished" : "partial",
                   r.suite_name, r.model_short(), fmt::format("{}/{}", r.items_done, r.items_total),
                   acc == r.metrics.end() ? "-" : fmt::format("{:.2f}%", 100 * acc->second));
    }
}

void show_result(const std::filesystem::path & path, std::int64_t run_id) {
    eval::ResultsStore store(path);
    for (const auto & r : store.list_runs()) {
        if (r.id != run_id) continue;
        fmt::print("run {}: {} on {} ({}), {}\n  model sha256 {}\n  suite hash {}\n", r.id, r.suite_name, r.model_path,
                   r.options, r.status, r.model_sha256, r.suite_hash);
        for (const auto & [name, value] : r.metrics) fmt::print("  {:<14} {:g}\n", name, value);
        for (const auto & o : store.outcomes(r.id)) {
            fmt::print("  line {:>6}: {}\n", o.line,
                       o.unencodable    ? "unencodable"
                           : o.too_long ? "too long"
                           : o.correct  ? "right"
                                        : "wrong");
        }
        return;
    }
    throw Error("no run {} in {}", run_id, path.string());
}

void export_results(const std::filesystem::path & path, const std::string & format) {
    eval::ResultsStore store(path);
    if (format == "csv") {
        fmt::print(
            "run,model_sha256,model_path,suite,suite_hash,options,status,line,unencodable,too_long,correct,correct_norm\n");
        for (const auto & r : store.list_runs()) {
            for (const auto & o : store.outcomes(r.id)) {
                fmt::print("{},{},\"{}\",\"{}\",{},{},{},{},{:d},{:d},{:d},{:d}\n", r.id, r.model_sha256, r.model_path,
                           r.suite_name, r.suite_hash, r.options, r.status, o.line, o.unencodable, o.too_long,
                           o.correct, o.correct_norm);
            }
        }
        return;
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto & r : store.list_runs()) {
        nlohmann::json outcomes = nlohmann::json::array();
        for (const auto & o : store.outcomes(r.id)) {
            outcomes.push_back({{"line", o.line},
                                {"unencodable", o.unencodable},
                                {"too_long", o.too_long},
                                {"correct", o.correct},
                                {"correct_norm", o.correct_norm},
                                {"output", o.output}});
        }
        out.push_back({{"run", r.id},
                       {"model_sha256", r.model_sha256},
                       {"model_path", r.model_path},
                       {"suite", r.suite_name},
                       {"suite_hash", r.suite_hash},
                       {"options", r.options},
                       {"status", r.status},
                       {"started", r.started},
                       {"metrics", r.metrics},
                       {"outcomes", outcomes}});
    }
    std::cout << out.dump(2) << '\n';
}

void add_results(CLI::App & app) {
    auto * results = app.add_subcommand("results", "List, show or export recorded evaluation results");
    results->require_subcommand(1);
    auto store_path = std::make_shared<std::filesystem::path>(eval::default_results_path());
    results->add_option("--results", *store_path, "Results store (SQLite)")->capture_default_str();
    results->add_subcommand("list", "One line per recorded run")->callback([store_path] { list_results(*store_path); });
    auto run_id = std::make_shared<std::int64_t>(0);
    auto * show = results->add_subcommand("show", "A run's metrics and per-item outcomes");
    show->add_option("RUN", *run_id, "Run number from `results list`")->required();
    show->callback([store_path, run_id] { show_result(*store_path, *run_id); });
    auto format = std::make_shared<std::string>("json");
    auto * exporter = results->add_subcommand("export", "Every run and outcome as JSON or CSV on stdout");
    exporter->add_flag("--csv{csv},--json{json}", *format, "Output format (default: json)");
    exporter->callback([store_path, format] { export_results(*store_path, *format); });
}

}  // namespace

void add_eval(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "eval",
        "Measure a model on your tasks (accuracy with 95% intervals), on text (perplexity, bits per byte), and against its original");
    auto f = std::make_shared<EvalFlags>();
    auto & r = f->request;
    cmd->add_option(
        "-m,--model", f->model,
        "GGUF model to measure; with --endpoint, the server's name for its model (default: the one it lists)");
    add_endpoint_flags(*cmd, *f);
    cmd->add_option("--tasks", r.tasks, "Task suite: FILE.jsonl, blimp:FILE or lambada:FILE (repeatable)");
    add_text_flags(*cmd, r);
    add_speed_flags(*cmd, *f);
    cmd->add_flag("--normalize", r.normalize, "Collapse whitespace and drop characters the vocabulary cannot encode");
    cmd->add_flag("--json", f->json, "Print one JSON object");
    cmd->add_option("--results", f->results, "Results store (SQLite)")->capture_default_str();
    cmd->add_flag("--no-results", f->no_results, "Neither reuse nor record results");
    add_threads(*cmd, r.threads);
    add_cache_types(*cmd, r.kv_cache, "of the measured model (the base's stays f16)");
    add_draft(*cmd, r.draft, "in the speed pass (needs --speed)");
    cmd->add_option(
           "--rpc", r.rpc,
           "rpc-server workers (rpc://HOST:PORT, comma-separated) that hold the model's layers and compute them")
        ->delimiter(',');
    cmd->callback([f] { run_eval(*f); });
    add_results(app);
}

}  // namespace switchyard::cli
