#include "decide/plan_file.h"

#include "eval/captured_suite.h"
#include "eval/lm_eval_task.h"
#include "eval/cloze.h"

#include "support/atomic_file.h"
#include "support/clock.h"
#include "support/error.h"
#include "support/rpc_endpoint.h"
#include "support/units.h"
#include "support/yaml_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace switchyard::decide {

std::vector<VariantSpec> auto_variants() {
    // From mild to aggressive; llama.cpp keeps tensors whose shape a type cannot hold at a nearby type.
    std::vector<VariantSpec> ladder;
    for (const char * type : {"Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"})
        ladder.push_back(VariantSpec{.type = type});
    return ladder;
}

std::string variant_name(const VariantSpec & v) {
    if (!v.name.empty()) return v.name;
    std::string name;
    if (!v.mix_budget.empty()) name = "mix-" + v.mix_budget;
    if (!v.prune_method.empty()) {
        name += (name.empty() ? "" : "+") + v.prune_method +
            (v.pattern.empty() || v.pattern == "unstructured"
                 ? "-" + std::to_string(static_cast<int>(v.sparsity * 100 + 0.5)) + "pct"
                 : "-" + v.pattern);
    }
    if (!v.layers_drop.empty())
        name += (name.empty() ? "" : "+") + std::string("drop") + std::to_string(v.layers_drop.size()) + "layers";
    if (!v.type.empty() && v.mix_budget.empty()) name += (name.empty() ? "" : "+") + v.type;
    if (v.awq) {
        name += "+AWQ";  // AWQ always uses the importance matrix
    } else if (v.imatrix) {
        name += "+imatrix";
    }
    if (!v.kv_cache.is_default())
        name += (name.empty() ? "kv:" : "+kv:") +
            (v.kv_cache.k == v.kv_cache.v ? std::string(ggml_type_name(v.kv_cache.k)) : v.kv_cache.label());
    return name;
}

std::string TaskSpec::built_name() const {
    if (!name.empty()) return name;
    if (!lm_eval_task.empty()) return "lm-eval-" + lm_eval_task.stem().string();
    return !cloze_text.empty() ? "cloze-" + cloze_text.stem().string() : "capture-" + capture_route;
}

std::string build_task_suite(const TaskSpec & t) {
    if (!t.lm_eval_task.empty())
        return eval::build_lm_eval_suite({.task = t.lm_eval_task,
                                          .data_dir = t.lm_eval_data,
                                          .split = t.lm_eval_split,
                                          .limit = t.lm_eval_limit})
            .jsonl;
    if (!t.cloze_text.empty())
        return eval::build_cloze({.text = t.cloze_text,
                                  .items = t.cloze_items,
                                  .seed = t.cloze_seed,
                                  .skip_passages = t.cloze_skip_passages});
    return eval::build_capture_suite({.db = t.capture_db,
                                      .route = t.capture_route,
                                      .since = t.capture_since,
                                      .critical = t.critical,
                                      .name = t.built_name()});
}

namespace {

// "${VAR}" and "${VAR:-default}" from the environment. A relative value taken from the
// environment is relative to the current folder (where the user set it); one written in the file,
// default included, is relative to the file.
std::filesystem::path expanded_path(const YamlMap & y, const std::string & key, const std::string & value) {
    std::string out;
    bool from_environment = false;
    std::size_t i = 0;
    while (i < value.size()) {
        if (value.compare(i, 2, "${") != 0) {
            out += value[i++];
            continue;
        }
        const auto end = value.find('}', i);
        if (end == std::string::npos) y.fail(key, "unclosed ${ in '" + value + "'");
        const std::string inner = value.substr(i + 2, end - i - 2);
        const auto dash = inner.find(":-");
        const std::string var = inner.substr(0, dash);
        const char * env = std::getenv(var.c_str());
        if (env != nullptr && *env != '\0') {
            if (i == 0) from_environment = true;
            out += env;
        } else if (dash != std::string::npos) {
            out += inner.substr(dash + 2);
        } else {
            y.fail(key,
                   "the environment variable " + var + " is not set (write ${" + var + ":-DEFAULT} to give a default)");
        }
        i = end + 1;
    }
    std::filesystem::path p = out;
    if (p.is_absolute()) return p.lexically_normal();
    return ((from_environment ? std::filesystem::current_path() : y.base_dir()) / p).lexically_normal();
}

std::filesystem::path path_of(const YamlMap & y, const std::string & key) {
    return expanded_path(y, key, y.string(key));
}

std::vector<std::filesystem::path> paths_of(const YamlMap & y, const std::string & key) {
    std::vector<std::filesystem::path> out;
    for (const auto & s : y.strings(key)) out.push_back(expanded_path(y, key, s));
    return out;
}

ModelRef read_model(const YamlMap & parent, const std::string & key, std::size_t index) {
    const auto node = parent.node(key);
    const auto item = node.IsSequence() ? node[index] : node;
    if (item.IsScalar()) {
        const auto path = expanded_path(parent, key, item.Scalar());
        return ModelRef{.name = path.stem().string(), .path = path};
    }
    YamlMap y(item, parent.source(), key + (node.IsSequence() ? "[" + std::to_string(index) + "]" : ""),
              parent.base_dir());
    if (!item.IsMap()) y.fail("", "expected a path or a mapping with 'path' or 'endpoint'");
    y.reject_unknown(
        {"name", "path", "endpoint", "model", "api_key_env", "context", "cost_per_1k_tokens", "capabilities"});
    if (y.has("path") == y.has("endpoint"))
        y.fail("", "give exactly one of 'path' (a GGUF file) and 'endpoint' (an OpenAI-compatible URL)");
    ModelRef m;
    if (y.has("path")) {
        m.path = path_of(y, "path");
        m.name = y.string("name", m.path.stem().string());
    } else {
        m.endpoint = y.string("endpoint");
        if (m.endpoint.rfind("http://", 0) != 0 && m.endpoint.rfind("https://", 0) != 0)
            y.fail("endpoint", "expected an http:// or https:// URL, found '" + m.endpoint + "'");
        m.remote_model = y.string("model", "");
        m.name = y.string("name", m.remote_model.empty() ? "remote" : m.remote_model);
        m.api_key_env = y.string("api_key_env", "");
        m.context = static_cast<int>(y.integer("context", 0));
        m.cost_per_1k_tokens = y.optional_number("cost_per_1k_tokens");
        if (m.cost_per_1k_tokens && *m.cost_per_1k_tokens <= 0)
            y.fail("cost_per_1k_tokens", "must be positive (a cost of 0 would win every comparison)");
    }
    m.capabilities = y.strings("capabilities");
    return m;
}

VariantSpec read_variant(const YamlMap & y) {
    y.reject_unknown({"name", "type", "imatrix", "prune", "mix", "awq", "kv"});
    VariantSpec v{.name = y.string("name", ""), .type = y.string("type", ""), .imatrix = y.boolean("imatrix", true)};
    v.awq = y.boolean("awq", false);
    if (auto p = y.map("prune")) {
        p->reject_unknown({"method", "sparsity", "pattern", "layers_drop"});
        v.prune_method = p->string("method", "magnitude");
        if (v.prune_method != "magnitude" && v.prune_method != "wanda")
            p->fail("method", "expected magnitude or wanda, found '" + v.prune_method + "'");
        v.sparsity = p->number("sparsity", 0);
        if (v.sparsity < 0 || v.sparsity >= 1) p->fail("sparsity", "must lie in [0, 1)");
        v.pattern = p->string("pattern", "");
        for (const auto & layer : p->strings("layers_drop")) {
            try {
                v.layers_drop.push_back(std::stoi(layer));
            } catch (const std::exception &) {
                p->fail("layers_drop", "expected layer numbers, found '" + layer + "'");
            }
        }
    }
    if (auto m = y.map("mix")) {
        m->reject_unknown({"budget"});
        v.mix_budget = m->string("budget");
    }
    if (auto kv = y.map("kv")) v.kv_cache = model::read_kv_cache(*kv);
    if (v.kv_only() && v.kv_cache.is_default()) y.fail("", "a variant needs a 'type', 'prune', 'mix' or 'kv'");
    // The base's weights are not rebuilt: an importance matrix has nothing to act on.
    if (v.kv_only()) v.imatrix = false;
    if (v.awq && (v.type.empty() || !v.prune_method.empty() || !v.mix_budget.empty() || !v.imatrix))
        y.fail("awq",
               "AWQ scales a quantization: it needs a 'type' and the importance matrix, without 'prune' or 'mix'");
    return v;
}

TextSpec read_text(const YamlMap & y, int default_chunks) {
    y.reject_unknown({"files", "chunks", "skip_chunks", "context", "samples"});
    TextSpec t{.files = paths_of(y, "files")};
    if (t.files.empty()) y.fail("", "missing key 'files' (plain-text files)");
    // "samples" is how the brief speaks of calibration chunks.
    t.chunks = static_cast<int>(y.integer("samples", y.integer("chunks", default_chunks)));
    t.skip_chunks = static_cast<int>(y.integer("skip_chunks", 0));
    t.context = static_cast<int>(y.integer("context", 0));
    if (t.chunks < 1) y.fail("chunks", "must be at least 1");
    return t;
}

TaskSpec read_task(const YamlMap & y) {
    y.reject_unknown({"spec", "cloze", "capture", "lm_eval", "name", "critical", "class", "requires"});
    TaskSpec t{.spec = y.string("spec", ""), .name = y.string("name", ""), .critical = y.boolean("critical", false)};
    if (auto c = y.map("capture")) {
        c->reject_unknown({"route", "since", "db"});
        t.capture_route = c->string("route");
        t.capture_db = c->has("db") ? path_of(*c, "db") : y.base_dir() / "captures.sqlite";
        const std::string since = c->string("since", "30d");
        const auto now = clock::unix_now();
        try {
            t.capture_since = eval::parse_since(since, now, "");
        } catch (const Error & e) {
            c->fail("since", e.what());
        }
    }
    if (auto c = y.map("cloze")) {
        c->reject_unknown({"text", "items", "seed", "skip_passages"});
        t.cloze_text = path_of(*c, "text");
        t.cloze_items = static_cast<std::size_t>(c->integer("items", 200));
        t.cloze_seed = static_cast<std::uint64_t>(c->integer("seed", 1));
        t.cloze_skip_passages = static_cast<int>(c->integer("skip_passages", 0));
    }
    if (auto c = y.map("lm_eval")) {
        c->reject_unknown({"task", "data", "split", "limit"});
        t.lm_eval_task = path_of(*c, "task");
        if (c->has("data")) t.lm_eval_data = path_of(*c, "data");
        t.lm_eval_split = c->string("split", "");
        const long long limit = c->integer("limit", 0);
        if (limit < 0) c->fail("limit", "must be 0 (all documents) or more");
        t.lm_eval_limit = static_cast<std::size_t>(limit);
    }
    if ((t.spec.empty() ? 0 : 1) + (t.cloze_text.empty() ? 0 : 1) + (t.capture_route.empty() ? 0 : 1) +
            (t.lm_eval_task.empty() ? 0 : 1) !=
        1)
        y.fail(
            "",
            "give exactly one of 'spec' (a task suite), 'cloze' (a suite built from text), 'capture' (a suite built from served traffic) "
            "and 'lm_eval' (a suite built from an lm-eval YAML task)");
    // A suite spec may carry an adapter prefix ("blimp:FILE"): expand and resolve the file part.
    if (!t.spec.empty()) {
        const auto colon = t.spec.find(':');
        const bool adapter = colon != std::string::npos && colon > 1 && t.spec.compare(0, 2, "${") != 0;
        const std::string prefix = adapter ? t.spec.substr(0, colon + 1) : "";
        t.spec = prefix + expanded_path(y, "spec", t.spec.substr(prefix.size())).string();
    }
    // A captured route is its own class of traffic: what the plan decides for it, serve routes.
    t.task_class = y.string("class", !t.capture_route.empty() ? t.capture_route : t.critical ? "critical" : "general");
    t.needs = y.string("requires", "");
    if (!t.needs.empty() && t.needs != "vision" && t.needs != "audio" && t.needs != "code" &&
        t.needs.rfind("context:", 0) != 0)
        y.fail("requires", "expected vision, audio, code or context:N, found '" + t.needs + "'");
    if (t.needs.rfind("context:", 0) == 0) {
        try {
            if (std::stol(t.needs.substr(8)) <= 0) throw std::invalid_argument("");
        } catch (const std::exception &) {
            y.fail("requires", "expected context:N with N tokens, found '" + t.needs + "'");
        }
    }
    return t;
}

double fraction(const YamlMap & y, const std::string & key, double fallback) {
    const double v = y.number(key, fallback);
    if (v < 0 || v > 1) y.fail(key, "must lie between 0 and 1");
    return v;
}

double milliseconds(const YamlMap & y, const std::string & key) {
    std::string text = y.string(key);
    double scale = 1;
    if (text.size() > 2 && text.compare(text.size() - 2, 2, "ms") == 0) {
        text.resize(text.size() - 2);
    } else if (text.size() > 1 && text.back() == 's') {
        text.pop_back();
        scale = 1000;
    }
    try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used == text.size() && v > 0) return v * scale;
    } catch (const std::exception &) {}
    y.fail(key, "expected a time such as 50ms or 1.5s, found '" + y.string(key) + "'");
}

Policy read_policy(const YamlMap & y) {
    y.reject_unknown({"accuracy_floor", "max_drop", "drop", "alpha", "sequential", "min_agreement", "screen_max_kld",
                      "budgets", "deployment"});
    Policy p;
    p.accuracy_floor = fraction(y, "accuracy_floor", p.accuracy_floor);
    p.max_drop = fraction(y, "max_drop", p.max_drop);
    const auto drop = y.string("drop", "relative");
    if (drop != "relative" && drop != "absolute") y.fail("drop", "expected relative or absolute, found '" + drop + "'");
    p.drop_relative = drop == "relative";
    p.alpha = fraction(y, "alpha", p.alpha);
    p.sequential = y.boolean("sequential", p.sequential);
    if (y.has("min_agreement")) p.min_agreement = fraction(y, "min_agreement", 0);
    p.screen_max_kld = y.number("screen_max_kld", p.screen_max_kld);
    if (auto b = y.map("budgets")) {
        b->reject_unknown({"memory", "p95_latency", "cost_per_1k_tokens"});
        if (b->has("memory")) {
            const auto bytes = parse_size(b->string("memory"));
            if (!bytes) b->fail("memory", "expected a size such as 512M or 2G, found '" + b->string("memory") + "'");
            p.budgets.memory_bytes = static_cast<std::uint64_t>(*bytes);
        }
        if (b->has("p95_latency")) p.budgets.p95_latency_ms = milliseconds(*b, "p95_latency");
        p.budgets.cost_per_1k_tokens = b->optional_number("cost_per_1k_tokens");
    }
    if (auto d = y.map("deployment")) {
        d->reject_unknown({"price_per_hour", "watts", "device", "threads", "context"});
        p.deployment.price_per_hour = d->number("price_per_hour", 0);
        p.deployment.watts = d->number("watts", p.deployment.watts);
        p.deployment.device = d->string("device", p.deployment.device);
        // Speed is measured on this machine's CPU; a figure for another device would be a guess.
        if (p.deployment.device != "cpu")
            d->fail("device",
                    "only cpu is measured here (speed runs on this machine's CPU, so costs and latency for '" +
                        p.deployment.device + "' would not be measured ones); found '" + p.deployment.device + "'");
        p.deployment.threads = static_cast<int>(d->integer("threads", 0));
        p.deployment.context = static_cast<int>(d->integer("context", 0));
        if (p.deployment.context != 0 && p.deployment.context < 16) d->fail("context", "must be at least 16 tokens");
    }
    return p;
}

// `drafts: auto | none | [NAME or PATH, ...]` and `draft_max: N`. A name is one of the plan's
// alternatives or variants; anything else is a GGUF file, relative to the plan.
DraftsSpec read_drafts(const YamlMap & root, const Plan & plan) {
    DraftsSpec d;
    d.max_tokens = static_cast<int>(root.integer("draft_max", d.max_tokens));
    // The portfolio's bounds, which serve reads back.
    if (d.max_tokens < 1 || d.max_tokens > 64)
        root.fail("draft_max", "must lie between 1 and 64 (tokens drafted per step at most)");
    if (!root.has("drafts")) return d;
    const auto node = root.node("drafts");
    if (node.IsScalar() && (node.Scalar() == "auto" || node.Scalar() == "none")) {
        d.automatic = node.Scalar() == "auto";
        return d;
    }
    d.automatic = false;
    if (!plan.base || !plan.base->endpoint.empty())
        root.fail("drafts", "a draft speeds up the base as it runs here: give 'base' as a GGUF file");
    for (const auto & entry : root.strings("drafts")) {
        const auto alternative = std::find_if(plan.alternatives.begin(), plan.alternatives.end(),
                                              [&](const ModelRef & m) { return m.name == entry; });
        if (alternative != plan.alternatives.end() && !alternative->endpoint.empty())
            root.fail("drafts", "'" + entry +
                          "' is served by an endpoint: a draft runs in process beside the base, so it must be a GGUF file");
        const bool variant = std::any_of(plan.variants.begin(), plan.variants.end(),
                                         [&](const VariantSpec & v) { return variant_name(v) == entry; });
        if (alternative != plan.alternatives.end() || variant) {
            d.models.push_back({.name = entry});
        } else {
            const auto path = expanded_path(root, "drafts", entry);
            d.models.push_back({.name = path.stem().string(), .path = path});
        }
    }
    return d;
}

}  // namespace

Plan parse_plan(const std::string & yaml, const std::string & source, const std::filesystem::path & base_dir) {
    const auto root = YamlMap::parse(yaml, source, base_dir);
    root.reject_unknown({"base", "alternatives", "variants", "calibration", "screen", "tasks", "normalize", "policy",
                         "speed", "drafts", "draft_max", "workers"});
    Plan plan{.source = source};
    if (root.has("base")) plan.base = read_model(root, "base", 0);
    if (root.has("alternatives")) {
        const auto node = root.node("alternatives");
        const std::size_t n = node.IsSequence() ? node.size() : 1;
        for (std::size_t i = 0; i < n; ++i) plan.alternatives.push_back(read_model(root, "alternatives", i));
    }
    if (!plan.base && plan.alternatives.empty())
        root.fail("", "missing key 'base' (the model you have) or 'alternatives' (models to switch to)");
    if (root.has("variants")) {
        const auto node = root.node("variants");
        if (node.IsScalar()) {
            if (node.Scalar() != "auto")
                root.fail("variants", "expected 'auto' or a list of variants, found '" + node.Scalar() + "'");
            plan.auto_variants = true;
            plan.variants = auto_variants();
        } else {
            for (const auto & v : root.maps("variants")) plan.variants.push_back(read_variant(v));
        }
    }
    if (!plan.variants.empty() && (!plan.base || !plan.base->endpoint.empty()))
        root.fail("variants", "variants compress the base model: give 'base' as a GGUF file");
    if (auto c = root.map("calibration")) {
        plan.calibration = read_text(*c, 200);
        const int samples = plan.calibration->chunks;
        if (samples < 100 || samples > 500)
            plan.warnings.push_back(c->located(
                c->has("samples") ? "samples" : "chunks",
                fmt::format(
                    "{} samples is outside 100-500, the range an importance matrix is meant to be computed from; "
                    "fewer calibrate it on too little text, more cost time for little gain",
                    samples)));
    }
    if (auto s = root.map("screen")) {
        plan.screen = read_text(*s, 16);
    } else if (plan.calibration) {
        // Past the calibration chunks, so the signal is not measured on what the imatrix saw.
        plan.screen = TextSpec{.files = plan.calibration->files,
                               .chunks = 16,
                               .skip_chunks = plan.calibration->skip_chunks + plan.calibration->chunks,
                               .context = plan.calibration->context};
    }
    for (const auto & t : root.maps("tasks")) plan.tasks.push_back(read_task(t));
    if (plan.tasks.empty()) root.fail("", "missing key 'tasks' (at least one task suite: the decision rests on them)");
    plan.normalize = root.boolean("normalize", false);
    if (auto p = root.map("policy")) {
        plan.policy = read_policy(*p);
        // A cost is the deployment's price times the time a query takes: without a price every cost is 0 and the budget always passes.
        if (plan.policy.budgets.cost_per_1k_tokens && plan.policy.deployment.price_per_hour <= 0)
            p->map("budgets")->fail(
                "cost_per_1k_tokens",
                "a cost budget needs policy.deployment.price_per_hour (the hardware's price, which costs are computed from)");
        // Agreement is measured on the screen's text: without one, R6 would fail every compression.
        if (plan.policy.min_agreement && plan.base && plan.screen.files.empty())
            p->fail(
                "min_agreement",
                "top-1 agreement is measured on the screen's text: give 'screen' (or 'calibration', whose text the screen reuses)");
    }
    // Unknown is never 0: where candidates are priced, an endpoint must say what it costs.
    const bool priced = plan.policy.deployment.price_per_hour > 0 || plan.policy.budgets.cost_per_1k_tokens;
    const auto check_declared_cost = [&](const std::string & key, std::size_t index, const ModelRef & m) {
        if (!priced || m.endpoint.empty() || m.cost_per_1k_tokens) return;
        const auto node = root.node(key);
        const YamlMap y(node.IsSequence() ? node[index] : node, root.source(),
                        key + (node.IsSequence() ? "[" + std::to_string(index) + "]" : ""), root.base_dir());
        y.fail("cost_per_1k_tokens",
               "missing: " + m.name +
                   " is served by an endpoint whose hardware is not measured here, and the plan prices candidates (" +
                   (plan.policy.deployment.price_per_hour > 0 ? "policy.deployment.price_per_hour"
                                                              : "policy.budgets.cost_per_1k_tokens") +
                   "); declare what it costs per 1k tokens");
    };
    if (plan.base) check_declared_cost("base", 0, *plan.base);
    for (std::size_t i = 0; i < plan.alternatives.size(); ++i)
        check_declared_cost("alternatives", i, plan.alternatives[i]);
    if (auto s = root.map("speed")) {
        s->reject_unknown({"prompt_tokens", "generate_tokens", "repeats", "target"});
        plan.speed.prompt_tokens = static_cast<int>(s->integer("prompt_tokens", plan.speed.prompt_tokens));
        plan.speed.generate_tokens = static_cast<int>(s->integer("generate_tokens", plan.speed.generate_tokens));
        plan.speed.repeats = static_cast<int>(s->integer("repeats", plan.speed.repeats));
        plan.speed.target = s->number("target", plan.speed.target);
        if (plan.speed.prompt_tokens < 1) s->fail("prompt_tokens", "must be at least 1");
        if (plan.speed.generate_tokens < 2)
            s->fail("generate_tokens", "must be at least 2 (a decode rate needs tokens after the first)");
        if (plan.speed.repeats < 1)
            s->fail(
                "repeats",
                "must be at least 1 (rounds of the speed pass at most; 6 run at least, the fewest with a 95% interval)");
        if (!(plan.speed.target > 0 && plan.speed.target < 1))
            s->fail("target", "must lie between 0 and 1 (0.03: within 3% either side)");
    }
    plan.drafts = read_drafts(root, plan);
    for (const auto & w : root.strings("workers")) {
        try {
            plan.workers.push_back(rpc_endpoint(w));
        } catch (const Error & e) {
            root.fail("workers", e.what());
        }
    }
    return plan;
}

Plan load_plan(const std::filesystem::path & file) {
    return parse_plan(read_whole_file(file, "plan"), file.string(), std::filesystem::absolute(file).parent_path());
}

}  // namespace switchyard::decide
