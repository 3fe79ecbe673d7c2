// `switchyard plan [PLAN.yaml] [-o DIR]`: the whole compress-or-switch decision, its report and portfolio.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "decide/dry_run.h"
#include "decide/planner.h"
#include "eval/results_store.h"
#include "report/report.h"
#include "support/rpc_endpoint.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>

namespace switchyard::cli {

namespace {

struct PlanFlags {
    std::filesystem::path plan = "examples/tinystories/plan.yaml";
    decide::PlanRunOptions run{.results = eval::default_results_path()};
    bool quiet = false;
    bool dry_run = false;
    bool full = false;
    std::vector<std::string> workers;
};

}  // namespace

void add_plan(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "plan",
        "Decide: compress the model you have or switch to a smaller one. Builds the variants, measures them on your "
        "tasks, applies the policy's rules and writes decision.json, report.md, report.html and portfolio.yaml");
    auto f = std::make_shared<PlanFlags>();
    cmd->add_option("PLAN", f->plan, "Plan file (YAML; see docs/plan.md)")->capture_default_str();
    cmd->add_option("-o,--output", f->run.out_dir, "Folder for the variants, the reports and the portfolio")
        ->capture_default_str();
    cmd->add_option("--results", f->run.results, "Results store (SQLite): measurements already there are reused")
        ->capture_default_str();
    add_threads(*cmd, f->run.threads);
    cmd->add_option(
           "--workers", f->workers,
           "llama.cpp rpc-server workers (rpc://HOST:PORT, comma-separated; replaces the plan's 'workers') that measure candidates' task "
           "suites side by side, one candidate each; see docs/scale-out.md")
        ->delimiter(',');
    cmd->add_flag("-q,--quiet", f->quiet, "Print only the verdicts, no steps or progress");
    cmd->add_flag(
        "--dry-run", f->dry_run,
        "Print the work the plan would do (variants to build, suites x candidates, tokens to score) and an estimate of its time from a "
        "short timed sample on the base; build, measure and write nothing");
    cmd->add_flag(
        "--full", f->full,
        "Score every item of every suite a candidate is measured on, with one test at the end (policy.sequential: false). By default "
        "suites are scored in rounds of 100 items in a fixed random order and a candidate's suite stops at the first round that decides "
        "its rules, at the same error rate (docs/plan.md, \"Sequential tests\")");
    cmd->callback([f] {
        auto plan = decide::load_plan(f->plan);
        if (f->full) plan.policy.sequential = false;
        if (!f->workers.empty()) {
            plan.workers.clear();
            for (const auto & w : f->workers) plan.workers.push_back(rpc_endpoint(w));
        }
        if (f->dry_run) {
            fmt::print("{}", decide::dry_run(plan, {.out_dir = f->run.out_dir, .threads = f->run.threads}));
            return;
        }
        auto options = f->run;
        options.progress = !f->quiet;
        if (!f->quiet) options.log = [](const std::string & line) { std::fprintf(stderr, "plan: %s\n", line.c_str()); };
        const auto result = decide::run_plan(plan, options);
        report::write_outputs(result, options.out_dir);
        fmt::print("{}", report::summary_text(result));
        fmt::print("report: {}\nportfolio: {}\n", (options.out_dir / "report.html").string(),
                   (options.out_dir / "portfolio.yaml").string());
    });
}

}  // namespace switchyard::cli
