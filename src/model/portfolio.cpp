#include "model/portfolio.h"

#include "model/kv_cache.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/rpc_endpoint.h"
#include "support/units.h"
#include "support/yaml_config.h"

#include <fmt/format.h>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <set>

namespace switchyard::model {

const PortfolioModel * Portfolio::find_model(const std::string & name) const {
    for (const auto & m : models)
        if (m.name == name) return &m;
    return nullptr;
}

const Route * Portfolio::find_route(const std::string & name) const {
    for (const auto & r : routes)
        if (r.name == name) return &r;
    return nullptr;
}

namespace {

void check_url(const YamlMap & y, const std::string & key, const std::string & url) {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
        y.fail(key, "expected an http:// or https:// URL, found '" + url + "'");
}

PortfolioModel read_model(const YamlMap & y) {
    y.reject_unknown({"name", "path", "endpoint", "remote_model", "api_key_env", "context", "parallel", "threads",
                      "gpu_layers", "kv", "rpc", "normalize", "cost_per_1k_tokens", "note", "replicas", "health", "load",
                      "ttl_s", "draft", "draft_max"});
    PortfolioModel m;
    m.name = y.string("name");
    for (const auto & r : y.maps("replicas")) {
        r.reject_unknown({"endpoint", "weight"});
        Replica replica{.endpoint = r.string("endpoint"), .weight = r.number("weight", 1)};
        check_url(r, "endpoint", replica.endpoint);
        if (!(replica.weight > 0)) r.fail("weight", "must be positive");
        m.replicas.push_back(replica);
    }
    if (auto h = y.map("health")) {
        h->reject_unknown({"path", "interval_ms", "timeout_ms"});
        m.health.path = h->string("path", m.health.path);
        if (!m.health.path.starts_with("/")) h->fail("path", "must start with /");
        m.health.interval_ms = static_cast<int>(h->integer("interval_ms", m.health.interval_ms));
        m.health.timeout_ms = static_cast<int>(h->integer("timeout_ms", m.health.timeout_ms));
        if (m.health.interval_ms <= 0) h->fail("interval_ms", "must be positive");
        if (m.health.timeout_ms <= 0) h->fail("timeout_ms", "must be positive");
    }
    if (!m.replicas.empty()) {
        if (y.has("endpoint"))
            y.fail("endpoint",
                   "a model with replicas lists every server under 'replicas' (and 'path' adds the in-process engine)");
    } else if (y.has("path") == y.has("endpoint")) {
        y.fail("", "give exactly one of 'path' (a GGUF file) and 'endpoint' (an OpenAI-compatible URL), or 'replicas'");
    }
    if (y.has("path")) m.path = y.file_path("path");
    m.endpoint = y.string("endpoint", "");
    if (!m.endpoint.empty()) check_url(y, "endpoint", m.endpoint);
    m.remote_model = y.string("remote_model", m.name);
    m.api_key_env = y.string("api_key_env", "");
    m.context = static_cast<int>(y.integer("context", m.context));
    m.parallel = static_cast<int>(y.integer("parallel", m.parallel));
    m.threads = static_cast<int>(y.integer("threads", m.threads));
    m.gpu_layers = static_cast<int>(y.integer("gpu_layers", m.gpu_layers));
    if (auto kv = y.map("kv")) {
        m.kv_cache = read_kv_cache(*kv);
        if (m.path.empty()) y.fail("kv", "the KV cache types apply to an in-process model: give 'path' (a GGUF file)");
    }
    m.draft = y.string("draft", "");
    if (!m.draft.empty() && (m.path.empty() || !m.replicas.empty()))
        y.fail("draft", "a draft runs beside an in-process model: give 'path' (a GGUF file) and no 'replicas'");
    m.draft_max = static_cast<int>(y.integer("draft_max", m.draft_max));
    if (m.draft_max < 1 || m.draft_max > 64) y.fail("draft_max", "must lie between 1 and 64 tokens");
    for (const auto & e : y.strings("rpc")) {
        try {
            m.rpc.push_back(rpc_endpoint(e));
        } catch (const Error & error) {
            y.fail("rpc", error.what());
        }
    }
    if (!m.rpc.empty() && m.path.empty())
        y.fail("rpc", "RPC workers hold an in-process model's layers: give 'path' (a GGUF file)");
    m.normalize = y.boolean("normalize", false);
    m.cost_per_1k_tokens = y.number("cost_per_1k_tokens", 0);
    m.note = y.string("note", "");
    if (m.context < 16) y.fail("context", "must be at least 16 tokens");
    if (m.parallel < 1) y.fail("parallel", "must be at least 1");
    const std::string load = y.string("load", "always");
    if (load == "on_demand") {
        m.load = PortfolioModel::Load::on_demand;
        if (m.path.empty() || !m.replicas.empty())
            y.fail("load", "only an in-process model ('path', no 'replicas') can be loaded on demand");
    } else if (load != "always") {
        y.fail("load", "expected 'always' or 'on_demand', found '" + load + "'");
    }
    m.ttl_s = static_cast<int>(y.integer("ttl_s", 0));
    if (m.ttl_s < 0) y.fail("ttl_s", "must be 0 (never unload when idle) or a number of seconds");
    if (m.ttl_s > 0 && m.load != PortfolioModel::Load::on_demand)
        y.fail("ttl_s", "applies to 'load: on_demand' models only");
    return m;
}

double fraction(const YamlMap & y, const std::string & key, double fallback) {
    const double v = y.number(key, fallback);
    if (v < 0 || v > 1) y.fail(key, "must lie between 0 and 1");
    return v;
}

Route read_route(const YamlMap & y) {
    y.reject_unknown(
        {"name", "model", "fallback", "cascade", "canary", "shadow", "capture", "note", "evidence", "prefer_loaded"});
    Route r;
    r.name = y.string("name");
    r.model = y.string("model", "");
    r.fallback = y.strings("fallback");
    r.note = y.string("note", "");
    r.evidence = y.string("evidence", "");
    r.prefer_loaded = y.boolean("prefer_loaded", false);
    if (r.prefer_loaded && r.fallback.empty())
        y.fail("prefer_loaded", "needs a 'fallback' list to choose a loaded model from");
    if (auto c = y.map("cascade")) {
        c->reject_unknown({"models", "min_mean_logprob"});
        r.cascade = Cascade{.models = c->strings("models"), .min_mean_logprob = c->number("min_mean_logprob", -2.0)};
        if (r.cascade->models.size() < 2) c->fail("models", "a cascade needs at least two models, smallest first");
    }
    if (r.model.empty() && !r.cascade) y.fail("", "missing key 'model' (or a 'cascade')");
    if (auto c = y.map("canary")) {
        c->reject_unknown({"model", "percent"});
        r.canary = Canary{.model = c->string("model"), .percent = c->number("percent", 0)};
        if (r.canary->percent < 0 || r.canary->percent > 100) c->fail("percent", "must lie between 0 and 100");
    }
    if (auto s = y.map("shadow")) {
        s->reject_unknown({"model", "sample", "promote_at", "rollback_below", "min_samples", "decision", "evidence"});
        const auto share = [&](const char * key, double fallback) {
            const double v = s->number(key, fallback);
            if (const auto e = shadow_share_error(v)) s->fail(key, *e);
            return v;
        };
        r.shadow = Shadow{.model = s->string("model"), .sample = share("sample", 1.0)};
        if (s->has("promote_at")) r.shadow->promote_at = share("promote_at", 1.0);
        if (s->has("rollback_below")) r.shadow->rollback_below = share("rollback_below", 0.0);
        const long long min_samples = s->integer("min_samples", r.shadow->min_samples);
        if (const auto e = shadow_min_samples_error(min_samples)) s->fail("min_samples", *e);
        r.shadow->min_samples = static_cast<int>(min_samples);
        r.shadow->decision = s->string("decision", "");
        r.shadow->evidence = s->string("evidence", "");
    }
    if (auto c = y.map("capture")) {
        c->reject_unknown({"sample", "max_items", "retention_days", "redact"});
        Capture capture;
        capture.sample = fraction(*c, "sample", 1.0);
        capture.max_items = static_cast<int>(c->integer("max_items", capture.max_items));
        capture.retention_days = static_cast<int>(c->integer("retention_days", capture.retention_days));
        if (capture.max_items < 1) c->fail("max_items", "must be at least 1");
        if (capture.retention_days < 1) c->fail("retention_days", "must be at least 1");
        if (c->has("redact")) capture.redact = c->strings("redact");
        for (const auto & rule : capture.redact) {
            const auto compiled = compile_redaction(rule);
            if (!compiled->ok())
                c->fail("redact",
                        "'" + rule +
                            "' is neither a preset (email, phone, card) nor a valid RE2 pattern: " + compiled->error());
        }
        r.capture = capture;
    }
    return r;
}

}  // namespace

std::uint64_t parse_memory_budget(const std::string & text) {
    const auto bytes = parse_size(text);
    if (!bytes || *bytes < 1) throw Error("expected a size such as 6GiB or 512MiB, found '{}'", text);
    return static_cast<std::uint64_t>(*bytes);
}

std::optional<std::string> shadow_share_error(double value) {
    if (value >= 0 && value <= 1) return std::nullopt;  // NaN fails both
    return "must lie between 0 and 1";
}

std::optional<std::string> shadow_min_samples_error(long long value) {
    // Read into an int; a million mirrored requests is already more than a rollout would wait for.
    constexpr long long most = 1000000;
    if (value >= 1 && value <= most) return std::nullopt;
    return fmt::format("must be a whole number from 1 to {}", most);
}

std::unique_ptr<re2::RE2> compile_redaction(const std::string & rule) {
    // Deliberately broad: a false positive costs a word of a captured prompt, a miss leaks it.
    static const std::map<std::string, std::string> presets = {
        {"email", R"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"},
        {"phone", R"(\+?\d[\d ().-]{7,}\d)"},
        {"card", R"(\b(?:\d[ -]?){12,18}\d\b)"},
    };
    const auto preset = presets.find(rule);
    return std::make_unique<re2::RE2>(preset != presets.end() ? preset->second : rule, re2::RE2::Quiet);
}

std::unique_ptr<re2::RE2> compile_rule_regex(const RouteRule & rule) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(!rule.ignore_case);
    return std::make_unique<re2::RE2>(rule.regex, options);
}

namespace {

RouteRule read_rule(const YamlMap & y) {
    y.reject_unknown({"route", "min_prompt_chars", "max_prompt_chars", "regex", "ignore_case"});
    RouteRule rule{.route = y.string("route")};
    if (y.has("min_prompt_chars")) rule.min_prompt_chars = static_cast<std::size_t>(y.integer("min_prompt_chars", 0));
    if (y.has("max_prompt_chars")) rule.max_prompt_chars = static_cast<std::size_t>(y.integer("max_prompt_chars", 0));
    rule.regex = y.string("regex", "");
    rule.ignore_case = y.boolean("ignore_case", false);
    if (!rule.regex.empty()) {
        const auto compiled = compile_rule_regex(rule);
        if (!compiled->ok())
            y.fail("regex",
                   "not a valid RE2 regular expression (no back-references or look-arounds): " + compiled->error());
    }
    return rule;
}

ServerSettings read_server(const YamlMap & y) {
    y.reject_unknown({"host", "port", "max_body_bytes", "max_tokens", "queue_length", "max_streams",
                      "request_timeout_ms", "cooldown_s", "read_timeout_ms", "admin_token_env", "api_keys_env",
                      "admin_model_dirs", "admin_endpoints", "admin_key_env_prefix", "capture_db", "memory_budget",
                      "load_queue", "min_resident_s"});
    ServerSettings s;
    s.host = y.string("host", s.host);
    s.port = static_cast<int>(y.integer("port", s.port));
    if (s.port < 0 || s.port > 65535) y.fail("port", "must lie between 0 and 65535");
    s.max_body_bytes = static_cast<std::size_t>(y.integer("max_body_bytes", static_cast<long long>(s.max_body_bytes)));
    s.max_tokens = static_cast<int>(y.integer("max_tokens", s.max_tokens));
    s.queue_length = static_cast<int>(y.integer("queue_length", s.queue_length));
    s.max_streams = static_cast<int>(y.integer("max_streams", s.max_streams));
    s.request_timeout_ms = static_cast<int>(y.integer("request_timeout_ms", s.request_timeout_ms));
    s.cooldown_s = static_cast<int>(y.integer("cooldown_s", s.cooldown_s));
    s.read_timeout_ms = static_cast<int>(y.integer("read_timeout_ms", s.read_timeout_ms));
    if (s.read_timeout_ms <= 0) y.fail("read_timeout_ms", "must be positive");
    s.admin_token_env = y.string("admin_token_env", s.admin_token_env);
    s.api_keys_env = y.string("api_keys_env", s.api_keys_env);
    for (const auto & dir : y.strings("admin_model_dirs"))
        s.admin_model_dirs.push_back(std::filesystem::path(dir).is_absolute() ? std::filesystem::path(dir)
                                                                              : y.base_dir() / dir);
    s.admin_endpoints = y.strings("admin_endpoints");
    for (auto & url : s.admin_endpoints) {
        if (url.starts_with("rpc://")) {
            try {
                url = "rpc://" + rpc_endpoint(url);
            } catch (const Error & error) {
                y.fail("admin_endpoints", error.what());
            }
        } else if (!url.starts_with("http://") && !url.starts_with("https://")) {
            y.fail("admin_endpoints", "expected http://, https:// or rpc:// URLs, found '" + url + "'");
        }
    }
    s.admin_key_env_prefix = y.string("admin_key_env_prefix", s.admin_key_env_prefix);
    if (y.has("capture_db")) s.capture_db = y.file_path("capture_db");
    if (y.has("memory_budget")) {
        try {
            s.memory_budget = parse_memory_budget(y.string("memory_budget"));
        } catch (const Error & e) {
            y.fail("memory_budget", e.what());
        }
    }
    s.load_queue = static_cast<int>(y.integer("load_queue", s.load_queue));
    if (s.load_queue < 0) y.fail("load_queue", "must be 0 or more");
    s.min_resident_s = static_cast<int>(y.integer("min_resident_s", s.min_resident_s));
    if (s.min_resident_s < 0) y.fail("min_resident_s", "must be 0 or more");
    return s;
}

// Every name a route, rule or draft mentions must be defined: a typo must fail at load, not at the
// first request. A draft's file is resolved here.
void check_references(Portfolio & p, const YamlMap & root) {
    std::set<std::string> seen;
    for (const auto & m : p.models)
        if (!seen.insert(m.name).second) root.fail("models", "the model name '" + m.name + "' appears twice");
    for (auto & m : p.models) {
        if (m.draft.empty()) continue;
        const PortfolioModel * draft = p.find_model(m.draft);
        if (draft == nullptr)
            root.fail("models", "model '" + m.name + "' names the draft '" + m.draft + "', which 'models' does not define");
        if (draft->name == m.name) root.fail("models", "model '" + m.name + "' cannot draft for itself");
        if (draft->path.empty())
            root.fail("models", "the draft '" + m.draft + "' of model '" + m.name +
                                    "' must be an in-process model (a 'path'): it runs beside it");
        m.draft_path = draft->path;
    }
    seen.clear();
    for (const auto & r : p.routes) {
        if (!seen.insert(r.name).second) root.fail("routes", "the route name '" + r.name + "' appears twice");
        std::vector<std::string> used = r.fallback;
        if (!r.model.empty()) used.push_back(r.model);
        if (r.cascade) used.insert(used.end(), r.cascade->models.begin(), r.cascade->models.end());
        if (r.canary) used.push_back(r.canary->model);
        if (r.shadow) used.push_back(r.shadow->model);
        for (const auto & name : used)
            if (!p.find_model(name))
                root.fail("routes",
                          "route '" + r.name + "' names the model '" + name + "', which 'models' does not define");
    }
    for (const auto & rule : p.rules)
        if (!p.find_route(rule.route))
            root.fail("rules", "a rule names the route '" + rule.route + "', which 'routes' does not define");
    if (!p.find_route(p.default_route)) root.fail("default_route", "no route is named '" + p.default_route + "'");
}

}  // namespace

Portfolio parse_portfolio(const std::string & yaml, const std::string & source,
                          const std::filesystem::path & base_dir) {
    const auto root = YamlMap::parse(yaml, source, base_dir);
    root.reject_unknown({"version", "models", "routes", "rules", "default_route", "server"});
    if (root.integer("version", 1) != 1) root.fail("version", "this switchyard reads portfolio version 1");
    Portfolio p;
    for (const auto & m : root.maps("models")) p.models.push_back(read_model(m));
    if (p.models.empty()) root.fail("", "missing key 'models' (at least one model)");
    for (const auto & r : root.maps("routes")) p.routes.push_back(read_route(r));
    // A portfolio of models only still serves: each model is its own route.
    if (p.routes.empty())
        for (const auto & m : p.models) p.routes.push_back(Route{.name = m.name, .model = m.name});
    for (const auto & r : root.maps("rules")) p.rules.push_back(read_rule(r));
    p.default_route = root.string("default_route", p.routes.front().name);
    if (auto s = root.map("server")) p.server = read_server(*s);
    check_references(p, root);
    return p;
}

Portfolio load_portfolio(const std::filesystem::path & file) {
    return parse_portfolio(read_whole_file(file, "portfolio"), file.string(),
                           std::filesystem::absolute(file).parent_path());
}

namespace {

std::string shown_path(const std::filesystem::path & path, const std::filesystem::path & relative_to) {
    if (relative_to.empty()) return path.string();
    const auto rel = std::filesystem::absolute(path).lexically_relative(std::filesystem::absolute(relative_to));
    if (rel.empty() || *rel.begin() == "..") return std::filesystem::absolute(path).string();
    return rel.string();
}

// A budget as people write it: whole MiB when it is one (parse_size reads both back).
std::string size_text(std::uint64_t bytes) {
    constexpr std::uint64_t mib = 1 << 20;
    return bytes % mib == 0 ? fmt::format("{}MiB", bytes / mib) : std::to_string(bytes);
}

}  // namespace

std::string portfolio_to_yaml(const Portfolio & p, const std::filesystem::path & relative_to,
                              const std::string & header_comment) {
    const ServerSettings defaults;
    YAML::Emitter out;
    out << YAML::BeginMap << YAML::Key << "version" << YAML::Value << 1;
    out << YAML::Key << "models" << YAML::Value << YAML::BeginSeq;
    for (const auto & m : p.models) {
        out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << m.name;
        if (!m.path.empty()) out << YAML::Key << "path" << YAML::Value << shown_path(m.path, relative_to);
        if (!m.endpoint.empty()) out << YAML::Key << "endpoint" << YAML::Value << m.endpoint;
        if (!m.replicas.empty()) {
            out << YAML::Key << "replicas" << YAML::Value << YAML::BeginSeq;
            for (const auto & r : m.replicas) {
                out << YAML::Flow << YAML::BeginMap << YAML::Key << "endpoint" << YAML::Value << r.endpoint;
                if (r.weight != 1) out << YAML::Key << "weight" << YAML::Value << r.weight;
                out << YAML::EndMap;
            }
            out << YAML::EndSeq;
            if (m.health != HealthCheck{}) {
                out << YAML::Key << "health" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "path"
                    << YAML::Value << m.health.path << YAML::Key << "interval_ms" << YAML::Value << m.health.interval_ms
                    << YAML::Key << "timeout_ms" << YAML::Value << m.health.timeout_ms << YAML::EndMap;
            }
        }
        if (!m.endpoint.empty() || !m.replicas.empty()) {
            if (m.remote_model != m.name) out << YAML::Key << "remote_model" << YAML::Value << m.remote_model;
            if (!m.api_key_env.empty()) out << YAML::Key << "api_key_env" << YAML::Value << m.api_key_env;
        }
        out << YAML::Key << "context" << YAML::Value << m.context << YAML::Key << "parallel" << YAML::Value
            << m.parallel;
        if (m.threads) out << YAML::Key << "threads" << YAML::Value << m.threads;
        if (m.gpu_layers) out << YAML::Key << "gpu_layers" << YAML::Value << m.gpu_layers;
        if (!m.kv_cache.is_default()) {
            out << YAML::Key << "kv" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "k" << YAML::Value
                << ggml_type_name(m.kv_cache.k) << YAML::Key << "v" << YAML::Value << ggml_type_name(m.kv_cache.v)
                << YAML::EndMap;
        }
        if (!m.rpc.empty()) {
            out << YAML::Key << "rpc" << YAML::Value << YAML::Flow << YAML::BeginSeq;
            for (const auto & e : m.rpc) out << "rpc://" + e;
            out << YAML::EndSeq;
        }
        if (!m.draft.empty()) {
            out << YAML::Key << "draft" << YAML::Value << m.draft;
            if (m.draft_max != PortfolioModel{}.draft_max) out << YAML::Key << "draft_max" << YAML::Value << m.draft_max;
        }
        if (m.normalize) out << YAML::Key << "normalize" << YAML::Value << true;
        // Four significant digits: a measured cost is known to a few percent, not to seventeen digits.
        if (m.cost_per_1k_tokens > 0)
            out << YAML::Key << "cost_per_1k_tokens" << YAML::Value << YAML::Precision(4) << m.cost_per_1k_tokens;
        if (m.load == PortfolioModel::Load::on_demand) out << YAML::Key << "load" << YAML::Value << "on_demand";
        if (m.ttl_s > 0) out << YAML::Key << "ttl_s" << YAML::Value << m.ttl_s;
        if (!m.note.empty()) out << YAML::Key << "note" << YAML::Value << m.note;
        out << YAML::EndMap;
    }
    out << YAML::EndSeq << YAML::Key << "routes" << YAML::Value << YAML::BeginSeq;
    for (const auto & r : p.routes) {
        out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << r.name;
        if (!r.model.empty()) out << YAML::Key << "model" << YAML::Value << r.model;
        if (!r.fallback.empty()) out << YAML::Key << "fallback" << YAML::Value << YAML::Flow << r.fallback;
        if (r.prefer_loaded) out << YAML::Key << "prefer_loaded" << YAML::Value << true;
        if (r.cascade)
            out << YAML::Key << "cascade" << YAML::Value << YAML::BeginMap << YAML::Key << "models" << YAML::Value
                << YAML::Flow << r.cascade->models << YAML::Key << "min_mean_logprob" << YAML::Value
                << r.cascade->min_mean_logprob << YAML::EndMap;
        if (r.canary)
            out << YAML::Key << "canary" << YAML::Value << YAML::BeginMap << YAML::Key << "model" << YAML::Value
                << r.canary->model << YAML::Key << "percent" << YAML::Value << r.canary->percent << YAML::EndMap;
        if (r.shadow) {
            out << YAML::Key << "shadow" << YAML::Value << YAML::BeginMap << YAML::Key << "model" << YAML::Value
                << r.shadow->model << YAML::Key << "sample" << YAML::Value << r.shadow->sample;
            if (r.shadow->promote_at) out << YAML::Key << "promote_at" << YAML::Value << *r.shadow->promote_at;
            if (r.shadow->rollback_below)
                out << YAML::Key << "rollback_below" << YAML::Value << *r.shadow->rollback_below;
            out << YAML::Key << "min_samples" << YAML::Value << r.shadow->min_samples;
            if (!r.shadow->decision.empty()) out << YAML::Key << "decision" << YAML::Value << r.shadow->decision;
            if (!r.shadow->evidence.empty()) out << YAML::Key << "evidence" << YAML::Value << r.shadow->evidence;
            out << YAML::EndMap;
        }
        if (r.capture) {
            out << YAML::Key << "capture" << YAML::Value << YAML::BeginMap << YAML::Key << "sample" << YAML::Value
                << r.capture->sample << YAML::Key << "max_items" << YAML::Value << r.capture->max_items << YAML::Key
                << "retention_days" << YAML::Value << r.capture->retention_days << YAML::Key << "redact" << YAML::Value
                << YAML::Flow << r.capture->redact << YAML::EndMap;
        }
        if (!r.note.empty()) out << YAML::Key << "note" << YAML::Value << r.note;
        if (!r.evidence.empty()) out << YAML::Key << "evidence" << YAML::Value << r.evidence;
        out << YAML::EndMap;
    }
    out << YAML::EndSeq;
    if (!p.rules.empty()) {
        out << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
        for (const auto & rule : p.rules) {
            out << YAML::BeginMap << YAML::Key << "route" << YAML::Value << rule.route;
            if (rule.min_prompt_chars) out << YAML::Key << "min_prompt_chars" << YAML::Value << *rule.min_prompt_chars;
            if (rule.max_prompt_chars) out << YAML::Key << "max_prompt_chars" << YAML::Value << *rule.max_prompt_chars;
            if (!rule.regex.empty()) out << YAML::Key << "regex" << YAML::Value << YAML::DoubleQuoted << rule.regex;
            if (rule.ignore_case) out << YAML::Key << "ignore_case" << YAML::Value << true;
            out << YAML::EndMap;
        }
        out << YAML::EndSeq;
    }
    out << YAML::Key << "default_route" << YAML::Value << p.default_route;
    const auto & s = p.server;
    if (s.host != defaults.host || s.port != defaults.port || s.max_body_bytes != defaults.max_body_bytes ||
        s.max_tokens != defaults.max_tokens || s.queue_length != defaults.queue_length ||
        s.max_streams != defaults.max_streams || s.request_timeout_ms != defaults.request_timeout_ms ||
        s.cooldown_s != defaults.cooldown_s || s.read_timeout_ms != defaults.read_timeout_ms ||
        s.admin_token_env != defaults.admin_token_env || s.api_keys_env != defaults.api_keys_env ||
        !s.admin_model_dirs.empty() || !s.admin_endpoints.empty() ||
        s.admin_key_env_prefix != defaults.admin_key_env_prefix || !s.capture_db.empty() ||
        s.memory_budget != defaults.memory_budget || s.load_queue != defaults.load_queue ||
        s.min_resident_s != defaults.min_resident_s) {
        out << YAML::Key << "server" << YAML::Value << YAML::BeginMap << YAML::Key << "host" << YAML::Value << s.host
            << YAML::Key << "port" << YAML::Value << s.port << YAML::Key << "max_body_bytes" << YAML::Value
            << s.max_body_bytes << YAML::Key << "max_tokens" << YAML::Value << s.max_tokens << YAML::Key
            << "queue_length" << YAML::Value << s.queue_length << YAML::Key << "max_streams" << YAML::Value
            << s.max_streams << YAML::Key << "request_timeout_ms" << YAML::Value << s.request_timeout_ms << YAML::Key
            << "cooldown_s" << YAML::Value << s.cooldown_s << YAML::Key << "read_timeout_ms" << YAML::Value
            << s.read_timeout_ms << YAML::Key << "admin_token_env" << YAML::Value << s.admin_token_env << YAML::Key
            << "api_keys_env" << YAML::Value << s.api_keys_env;
        if (!s.admin_model_dirs.empty()) {
            out << YAML::Key << "admin_model_dirs" << YAML::Value << YAML::BeginSeq;
            for (const auto & dir : s.admin_model_dirs) out << shown_path(dir, relative_to);
            out << YAML::EndSeq;
        }
        if (!s.admin_endpoints.empty()) out << YAML::Key << "admin_endpoints" << YAML::Value << s.admin_endpoints;
        out << YAML::Key << "admin_key_env_prefix" << YAML::Value << s.admin_key_env_prefix;
        if (!s.capture_db.empty())
            out << YAML::Key << "capture_db" << YAML::Value << shown_path(s.capture_db, relative_to);
        if (s.memory_budget > 0) out << YAML::Key << "memory_budget" << YAML::Value << size_text(s.memory_budget);
        out << YAML::Key << "load_queue" << YAML::Value << s.load_queue << YAML::Key << "min_resident_s" << YAML::Value
            << s.min_resident_s;
        out << YAML::EndMap;
    }
    out << YAML::EndMap;
    std::string text;
    if (!header_comment.empty()) {
        std::size_t start = 0;
        while (start <= header_comment.size()) {
            const auto end = header_comment.find('\n', start);
            text += "# " + header_comment.substr(start, end - start) + "\n";
            if (end == std::string::npos) break;
            start = end + 1;
        }
    }
    return text + out.c_str() + "\n";
}

void save_portfolio(const std::filesystem::path & file, const Portfolio & portfolio,
                    const std::string & header_comment) {
    write_file_atomically(file,
                          portfolio_to_yaml(portfolio, std::filesystem::absolute(file).parent_path(), header_comment));
}

}  // namespace switchyard::model
