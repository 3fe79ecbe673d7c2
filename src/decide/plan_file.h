// The plan file (YAML): the model a team has, what to try, the tasks that matter, and the policy.
#pragma once

#include "decide/rules.h"
#include "model/kv_cache.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace switchyard::decide {

// A model as the plan names it: a GGUF file, or a model behind an OpenAI-compatible endpoint.
struct ModelRef {
    std::string name;
    std::filesystem::path path;
    std::string endpoint;  // instead of `path`: measured through the server (tasks and latency)
    std::string remote_model;  // the server's name for it (default: the one it lists)
    std::string api_key_env;  // environment variable holding the endpoint's API key
    int context = 0;  // tokens; 0: what the server says
    // What the endpoint costs per 1k of its tokens (prompt and answer): its hardware is not measured
    // here. Absent: unknown, never 0 (a plan that prices candidates refuses an endpoint without it).
    std::optional<double> cost_per_1k_tokens;
    std::vector<std::string> capabilities;  // declared beyond what the GGUF says (e.g. "code")
};

// One compression to try. `type` alone is a quantization; `prune` and `mix` add to it.
struct VariantSpec {
    std::string name;  // default: derived from the settings, e.g. "Q4_0+imatrix"
    std::string type;  // llama-quantize name; empty with prune: keep the base's types
    bool imatrix = true;  // use the calibration's importance matrix when there is one
    std::string prune_method;  // "magnitude" or "wanda"; empty: no pruning
    double sparsity = 0;
    std::string pattern;  // "unstructured", "2:4", ...
    std::vector<int> layers_drop;
    std::string mix_budget;  // "4.5bpw" or a file size: mixed precision under this budget
    bool awq = false;  // AWQ channel scales searched for `type` (needs the calibration's importance matrix)
    // `kv: {k: q8_0, v: q8_0}`: served with this KV cache, alone (the base's weights) or on top of
    // the weights above.
    model::KvCacheTypes kv_cache;
    // Nothing to build: the base's file, served with another KV cache.
    bool kv_only() const { return type.empty() && prune_method.empty() && layers_drop.empty() && mix_budget.empty(); }
};

struct TextSpec {
    std::vector<std::filesystem::path> files;
    int chunks = 16;
    int skip_chunks = 0;
    int context = 0;
};

struct TaskSpec {
    std::string spec;  // an eval suite spec ("FILE.jsonl", "blimp:FILE", ...); empty for cloze
    std::string name;  // default: the suite's own name
    bool critical = false;
    std::string task_class;  // default: "critical" for critical tasks, else "general"
    std::string needs;
    // A next-word cloze suite built from this text (deterministic), written into the output folder.
    std::filesystem::path cloze_text;
    std::size_t cloze_items = 200;
    std::uint64_t cloze_seed = 1;
    int cloze_skip_passages = 0;
    // A suite built from what serve captured for this route (eval/captured_suite.h), written
    // into the output folder; the class defaults to the route's name.
    std::string capture_route;
    std::filesystem::path capture_db;  // default: captures.sqlite beside the plan file
    std::int64_t capture_since = 0;  // unix seconds
    // A suite converted from an lm-eval YAML task (eval/lm_eval_task.h), written into the output folder.
    std::filesystem::path lm_eval_task;
    std::filesystem::path lm_eval_data;  // data_files resolve against it; empty: the YAML's folder
    std::string lm_eval_split;
    std::size_t lm_eval_limit = 0;

    bool built() const { return !cloze_text.empty() || !capture_route.empty() || !lm_eval_task.empty(); }
    std::string built_name() const;  // `name`, else "cloze-STEM" / "capture-ROUTE" / "lm-eval-STEM"
};

// One query of the speed pass, in the reference model's tokens of the plan's text, and how long
// its interleaved rounds run (eval/speed.h).
struct SpeedSpec {
    int prompt_tokens = 128;
    int generate_tokens = 64;
    int repeats = 16;  // rounds at most (6 at least)
    double target = 0.03;  // rounds stop once the ratio's 95% interval is within this either side
};

// A model that may draft for the base (speculative decoding): one of the plan's alternatives or
// variants by name, or a GGUF file of its own.
struct DraftSpec {
    std::string name;  // the alternative's or variant's name; a file's stem
    std::filesystem::path path;  // a file that is no candidate itself; empty: the candidate `name`
};

// `drafts:` and `draft_max:`: which models draft for the base, each giving the candidate "the
// original, drafted by D" (same answers, judged on speed and cost; docs/plan.md, "Drafted originals").
struct DraftsSpec {
    // `auto` (the default): every local alternative and built variant whose vocabulary is the
    // base's; the others are listed with the reason. `none`: no drafted candidates.
    bool automatic = true;
    std::vector<DraftSpec> models;  // the list given instead
    int max_tokens = 8;  // tokens drafted per step at most (llama-server's --spec-draft-n-max)
};

struct Plan {
    std::filesystem::path source;  // the plan file
    std::optional<ModelRef> base;  // absent: no model to preserve (rule 5)
    std::vector<ModelRef> alternatives;
    std::vector<VariantSpec> variants;
    bool auto_variants = false;
    std::optional<TextSpec> calibration;
    TextSpec screen;  // the cheap signal: drift on a small text; files default to the calibration's
    std::vector<TaskSpec> tasks;
    bool normalize = false;  // make task and text encodable for small vocabularies
    Policy policy;
    SpeedSpec speed;
    DraftsSpec drafts;
    // rpc-server endpoints (HOST:PORT) that measure candidates' task suites side by side (`workers`).
    std::vector<std::string> workers;
    std::vector<std::string> warnings;  // settings that work but are likely mistakes, each naming its line and key
};

// A task's suite built at run time (`cloze`, `capture`) as JSONL; throws switchyard::Error.
std::string build_task_suite(const TaskSpec & task);

// The ladder `variants: auto` tries, mild to aggressive.
std::vector<VariantSpec> auto_variants();
std::string variant_name(const VariantSpec & spec);

// Reads and checks a plan. Paths are relative to the plan file; `${VAR}` and `${VAR:-default}`
// expand from the environment first (so shared data can move). Throws switchyard::Error naming
// the file, line and key of the first problem.
Plan load_plan(const std::filesystem::path & file);
Plan parse_plan(const std::string & yaml, const std::string & source, const std::filesystem::path & base_dir);

}  // namespace switchyard::decide
