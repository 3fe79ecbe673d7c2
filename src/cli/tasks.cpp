// `switchyard tasks cloze TEXT -o FILE`, `tasks capture --route R -o FILE` and `tasks lm-eval TASK.yaml -o FILE`:
// task suites built from text, from served traffic, and from lm-eval's task format.
#include "cli/commands.h"
#include "eval/captured_suite.h"
#include "eval/cloze.h"
#include "eval/lm_eval_task.h"
#include "support/atomic_file.h"
#include "support/clock.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstdio>
#include <memory>

namespace switchyard::cli {

namespace {

void add_lm_eval(CLI::App & tasks) {
    auto * cmd =
        tasks.add_subcommand("lm-eval", "Build a suite from an lm-eval YAML task with local data (docs/lm-eval.md)");
    cmd->footer(
        "Reads lm-eval's task format: dataset_path json, csv or text with dataset_kwargs.data_files, include, test_split/validation_split,\n"
        "num_fewshot (lm-eval's sampling, seed 1234), doc_to_text/doc_to_target/doc_to_choice (Jinja), target_delimiter,\n"
        "fewshot_delimiter, output_type multiple_choice (acc, acc_norm), loglikelihood (acc) and generate_until (exact_match,\n"
        "regex and take_first filters). The suite's items are scored as lm-eval scores them (\"scoring\": \"lm-eval\").\n"
        "What it cannot reproduce (a Python !function, process_docs, parquet, loglikelihood_rolling) is refused by name.");
    auto o = std::make_shared<eval::LmEvalOptions>();
    auto out = std::make_shared<std::filesystem::path>();
    cmd->add_option("TASK", o->task, "The task's YAML file")->required();
    cmd->add_option("--data", o->data_dir, "Folder that data_files are relative to (default: the YAML's folder)");
    cmd->add_option("--split", o->split, "The split to evaluate (default: test_split, else validation_split)");
    cmd->add_option("--limit", o->limit, "Only the first N documents (lm-eval's --limit N)");
    cmd->add_option("--fewshot-seed", o->fewshot_seed,
                    "Seed of the few-shot sampling (lm-eval's --fewshot_random_seed)")
        ->capture_default_str();
    cmd->add_option("-o,--output", *out, "Where to write the suite (JSONL)")->required();
    cmd->callback([o, out] {
        const auto suite = eval::build_lm_eval_suite(*o);
        write_file_atomically(*out, suite.jsonl);
        fmt::print("wrote {}: {} items of {} ({}; measures {})\n", out->string(), suite.items, suite.name,
                   suite.output_type, fmt::join(suite.metrics, ", "));
        for (const auto & note : suite.notes) fmt::print("note: {}\n", note);
    });
}

}  // namespace

void add_tasks(CLI::App & app) {
    auto * tasks = app.add_subcommand(
        "tasks", "Build task suites: from text (cloze), from served traffic (capture), from lm-eval tasks (lm-eval)");
    tasks->require_subcommand(1);
    add_lm_eval(*tasks);
    auto * cloze = tasks->add_subcommand(
        "cloze", "Build a next-word multiple-choice suite from plain text (deterministic for a seed)");
    auto c = std::make_shared<eval::ClozeOptions>();
    auto out = std::make_shared<std::filesystem::path>();
    cloze->add_option("TEXT", c->text, "Plain text; passages separated by blank lines")->required();
    cloze->add_option("--n", c->items, "Items")->capture_default_str();
    cloze->add_option("--seed", c->seed, "Random seed")->capture_default_str();
    cloze->add_option("--choices", c->choices, "Choices per item")->capture_default_str();
    cloze->add_option("--context-words", c->context_words, "Words of context before the blank")->capture_default_str();
    cloze->add_option("--skip-passages", c->skip_passages,
                      "Start after this many passages (keep others for calibration)");
    cloze->add_option("-o,--output", *out, "Where to write the suite (JSONL)")->required();
    cloze->callback([c, out] {
        write_file_atomically(*out, eval::build_cloze(*c));
        fmt::print("wrote {}: {} items with {} choices each\n", out->string(), c->items, c->choices);
    });

    auto * capture = tasks->add_subcommand(
        "capture", "Build a suite from the traffic serve captured for a route (docs/closed-loop.md)");
    auto cap = std::make_shared<eval::CaptureSuiteOptions>();
    auto since = std::make_shared<std::string>("30d");
    auto cap_out = std::make_shared<std::filesystem::path>();
    cap->db = "captures.sqlite";
    capture->add_option("--route", cap->route, "The route whose traffic becomes the suite")->required();
    capture->add_option("--since", *since, "Items captured since: an age (7d, 12h, 30m) or a UTC date (2026-11-01)")
        ->capture_default_str();
    capture
        ->add_option("--db", cap->db,
                     "The capture database (serve's server.capture_db: captures.sqlite beside the portfolio)")
        ->capture_default_str();
    capture->add_option("--name", cap->name, "Suite name (default: capture-ROUTE)");
    capture->add_flag("--critical", cap->critical, "Mark the suite critical (the plan's stricter rules apply)");
    capture->add_option("-o,--output", *cap_out, "Where to write the suite (JSONL)")->required();
    capture->callback([cap, since, cap_out] {
        cap->since = eval::parse_since(*since, clock::unix_now(), "--since");
        eval::CaptureSuiteSummary sum;
        write_file_atomically(*cap_out, eval::build_capture_suite(*cap, &sum));
        fmt::print(
            "wrote {}: {} items of route {} ({} labelled -> generation, {} unlabelled -> consistency with the incumbent's answer)\n",
            cap_out->string(), sum.labelled + sum.consistency, cap->route, sum.labelled, sum.consistency);
        if (sum.token_prompts + sum.wrong_without_answer + sum.unreadable > 0) {
            fmt::print(
                "left out: {} with token-id prompts, {} labelled wrong without an expected answer, {} unreadable\n",
                sum.token_prompts, sum.wrong_without_answer, sum.unreadable);
        }
    });
}

}  // namespace switchyard::cli
