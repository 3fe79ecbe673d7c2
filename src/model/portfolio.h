// The portfolio file: which models `serve` runs, and how traffic is routed, backed up and shadowed.
#pragma once

#include "model/kv_cache.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace re2 {
class RE2;
}

namespace switchyard::model {

// One remote server of a model served by several (see PortfolioModel::replicas).
struct Replica {
    std::string endpoint;  // e.g. http://10.0.0.5:8080/v1
    double weight = 1;  // a share of the requests in proportion to it
    bool operator==(const Replica &) const = default;
};

// How a replica's health is checked: GET origin + path, answered 200 within timeout_ms, every
// interval_ms. A replica that fails a request is taken out until a probe passes.
struct HealthCheck {
    std::string path = "/health";
    int interval_ms = 1000;
    int timeout_ms = 500;
    bool operator==(const HealthCheck &) const = default;
};

// One model clients can reach by `name`: a local GGUF run in process, a remote
// OpenAI-compatible endpoint, or several replicas (remote servers, plus the local GGUF when
// `path` is set too). Exactly one of `path` and `endpoint` is set, or `replicas`.
struct PortfolioModel {
    std::string name;
    std::filesystem::path path;  // resolved against the portfolio file's folder
    std::string endpoint;  // e.g. http://10.0.0.5:8000/v1
    std::string remote_model;  // the model name the endpoint expects (default: `name`)
    std::string api_key_env;  // environment variable holding the endpoint's API key
    int context = 2048;  // tokens per request (in process)
    int parallel = 4;  // concurrent sequences (in process)
    int threads = 0;  // 0: the engine's default
    int gpu_layers = 0;
    // `kv: {k: q8_0, v: q8_0}`: the KV cache's element types (model/kv_cache.h), f16 by default.
    KvCacheTypes kv_cache;
    // `draft: NAME`: another in-process model of the portfolio, with the same vocabulary, that
    // drafts for this one (speculative decoding: the same answers, sooner where it is accepted).
    // This model's engine loads its own copy of the draft's file (`draft_path`, resolved from the
    // name when the portfolio is read), proposing up to `draft_max` tokens per step.
    std::string draft;
    std::filesystem::path draft_path;
    int draft_max = 8;
    // rpc-server workers (HOST:PORT) that hold the in-process model's layers and compute them: one
    // model spread over several machines' memory. llama.cpp's RPC client stops the process when a
    // worker goes away, so these are for memory, not for availability (replicas are).
    std::vector<std::string> rpc;
    // Prompts made encodable for a small vocabulary (whitespace runs become one space, characters
    // it lacks are dropped), as `plan` / `eval --normalize` measured the model (in process).
    bool normalize = false;
    double cost_per_1k_tokens = 0;  // estimate, from `plan`'s measurements; drives the cost metric
    std::string note;  // why it is here ("compress -> Q8_0: drop 1.2% ...")
    std::vector<Replica> replicas;  // balanced by least outstanding requests per weight
    HealthCheck health;  // for replicas
    // `always`: loaded when the portfolio is, resident until it goes. `on_demand` (in process only):
    // loaded by the first request that needs it, unloaded when idle for `ttl_s` (0: never) or when
    // another must fit server.memory_budget (docs/serve.md, "Loading on demand").
    enum class Load { always, on_demand };
    Load load = Load::always;
    int ttl_s = 0;

    // Serve reuses a loaded backend across a portfolio swap only when its entry is unchanged.
    bool operator==(const PortfolioModel &) const = default;
};

// Answer with the first model; escalate to the next when the answer's mean token
// log-probability falls below `min_mean_logprob`.
struct Cascade {
    std::vector<std::string> models;
    double min_mean_logprob = -2.0;
};

// Send `percent` of the route's requests to `model` instead of the route's model.
struct Canary {
    std::string model;
    double percent = 0;
};

// Mirror a sampled share of the route's traffic to a candidate and compare the answers.
struct Shadow {
    std::string model;
    double sample = 1.0;  // share of requests mirrored, 0..1
    std::optional<double> promote_at;  // agreement at or above this after min_samples: promote
    std::optional<double> rollback_below;  // agreement below this after min_samples: stop shadowing
    int min_samples = 100;
    // Set by a rollout (POST /admin/rollout): the plan decision behind the candidate, and its report.
    std::string decision;
    std::string evidence;
};

// The bounds of a shadow's settings, one rule for the portfolio file and POST /admin/rollout:
// what the value must be ("must lie between 0 and 1"), or nullopt when it is within them.
std::optional<std::string> shadow_share_error(double value);  // sample, promote_at, rollback_below
std::optional<std::string> shadow_min_samples_error(long long value);

// Opt-in recording of a route's traffic, the evidence for the next decision (docs/serve.md,
// "Capture"): a sample of requests and answers, redacted before anything is stored.
struct Capture {
    double sample = 1.0;  // share of the route's answered requests kept, 0..1
    int max_items = 10000;  // kept per route; beyond it the oldest go
    int retention_days = 30;  // older items go
    // Presets (email, phone, card) or RE2 patterns; what they match is replaced before storing.
    std::vector<std::string> redact = {"email", "phone", "card"};
    bool operator==(const Capture &) const = default;
};

// A class of traffic (critical, high-volume, simple, ...) and the models that serve it.
struct Route {
    std::string name;
    std::string model;  // empty only when `cascade` is set
    std::vector<std::string> fallback;  // tried in order on error, timeout or a full queue
    std::optional<Cascade> cascade;
    std::optional<Canary> canary;
    std::optional<Shadow> shadow;
    std::optional<Capture> capture;
    std::string note;
    // When the route's model is not loaded: answer with the first loaded model of `fallback`
    // rather than wait for the load (the load still starts, for the requests after).
    bool prefer_loaded = false;
    std::string evidence;  // the plan report behind `model`, kept when a rollout's shadow is promoted
};

// Picks a route for requests that do not name one; rules are tried in order.
struct RouteRule {
    std::string route;
    std::optional<std::size_t> min_prompt_chars;
    std::optional<std::size_t> max_prompt_chars;
    std::string regex;  // RE2 syntax (matches in linear time), searched for in the prompt / the messages' text
    bool ignore_case = false;
};

// A capture's redaction rule compiled: a preset's pattern or the rule itself; check ok().
std::unique_ptr<re2::RE2> compile_redaction(const std::string & rule);

// The rule's regex compiled as the router matches it; check ok() (and error()) before use.
std::unique_ptr<re2::RE2> compile_rule_regex(const RouteRule & rule);

// server.memory_budget / --memory-budget ("6GiB", "512MiB", bytes); throws switchyard::Error.
std::uint64_t parse_memory_budget(const std::string & text);

// Limits and settings of the gateway itself (the CLI's flags override them).
struct ServerSettings {
    std::string host = "127.0.0.1";
    int port = 8080;
    std::size_t max_body_bytes = 1 << 20;
    int max_tokens = 4096;
    int queue_length = 64;
    int max_streams = 64;
    int request_timeout_ms = 120000;
    // A request's headers and body must arrive within this, and an idle connection closes after
    // it; writes to a client that stops reading give up after it too.
    int read_timeout_ms = 30000;
    int cooldown_s = 30;
    std::string admin_token_env = "SWITCHYARD_ADMIN_TOKEN";
    std::string api_keys_env;  // comma-separated client keys; empty: no client authentication
    // What PUT /admin/portfolio may add beyond the started portfolio's own folders, origins
    // and key variables (see serve/admin_scope.h).
    std::vector<std::filesystem::path> admin_model_dirs;
    std::vector<std::string> admin_endpoints;
    std::string admin_key_env_prefix = "SWITCHYARD_KEY_";
    // Where captured traffic is kept (SQLite); empty: captures.sqlite beside the portfolio file.
    std::filesystem::path capture_db;
    // Host memory the in-process models may hold together, as measured when each loads (0: no
    // limit); `load: on_demand` models are unloaded, least recently used first, to keep within it.
    std::uint64_t memory_budget = 0;
    int load_queue = 16;  // requests that may wait for on-demand loads at once; beyond: 503
    int min_resident_s = 10;  // a loaded on-demand model stays at least this long (no thrashing)
};

struct Portfolio {
    std::vector<PortfolioModel> models;
    std::vector<Route> routes;
    std::vector<RouteRule> rules;
    std::string default_route;  // first route when not given
    ServerSettings server;

    const PortfolioModel * find_model(const std::string & name) const;
    const Route * find_route(const std::string & name) const;
};

// Reads and checks a portfolio (every referenced model and route must exist). Throws
// switchyard::Error naming the file, line and key of the first problem.
Portfolio load_portfolio(const std::filesystem::path & file);
Portfolio parse_portfolio(const std::string & yaml, const std::string & source, const std::filesystem::path & base_dir);

// YAML that load_portfolio reads back to the same Portfolio; paths are written relative to
// `relative_to` when they lie under it, so a plan's output folder can be moved as a whole.
std::string portfolio_to_yaml(const Portfolio & portfolio, const std::filesystem::path & relative_to,
                              const std::string & header_comment = {});
void save_portfolio(const std::filesystem::path & file, const Portfolio & portfolio,
                    const std::string & header_comment = {});

}  // namespace switchyard::model
