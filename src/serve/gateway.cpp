#include "serve/gateway.h"

#include "serve/dashboard.h"
#include "serve/local_backend.h"
#include "serve/remote_backend.h"
#include "serve/replica_set.h"
#include "serve/rollout.h"
#include "serve/openai_response.h"
#include "serve/sse_writer.h"
#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <random>
#include <sstream>


namespace switchyard::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {


double uniform_draw() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The value of `key` in a query string (`a=1&b=x%20y`), percent-decoded; empty when absent.
// (Boost 1.74, Debian's, predates Boost.URL.)
std::string query_value(std::string_view query, std::string_view key) {
    for (std::size_t at = 0; at <= query.size();) {
        const std::size_t end = std::min(query.find('&', at), query.size());
        const std::string_view pair = query.substr(at, end - at);
        at = end + 1;
        if (!pair.starts_with(key) || pair.size() <= key.size() || pair[key.size()] != '=') continue;
        const std::string_view raw = pair.substr(key.size() + 1);
        std::string value;
        for (std::size_t i = 0; i < raw.size(); ++i) {
            if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) && std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
                value += static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16));
                i += 2;
            } else {
                value += raw[i] == '+' ? ' ' : raw[i];
            }
        }
        return value;
    }
    return {};
}

// Compares without leaking, through timing, how much of a secret a guess got right.
bool constant_time_equal(const std::string & a, const std::string & b) {
    const std::size_t n = std::max(a.size(), b.size());
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned>(x ^ y);
    }
    return diff == 0;
}

std::string bearer_token(const http::Request & req) {
    const std::string h = req.header("Authorization");
    return h.starts_with("Bearer ") ? h.substr(7) : std::string();
}

// The HTTP edge's own figures, in the Prometheus text format of Metrics::prometheus().
std::string edge_metrics(const http::ServerCounters & c) {
    std::string out;
    auto add = [&](const char * name, const char * type, const char * help, auto value) {
        prometheus_family(out, name, type, help);
        out += std::string(name) + " " + std::to_string(value) + "\n";
    };
    add("switchyard_http_connections", "gauge", "Client connections open now.", c.connections);
    add("switchyard_http_busy_workers", "gauge", "Workers handling a request now.", c.busy_workers);
    add("switchyard_http_queued_requests", "gauge", "Requests waiting for a worker.", c.queued);
    add("switchyard_http_refused_busy_total", "counter", "Requests answered 503 because every worker was busy and the queue full.", c.refused_busy);
    add("switchyard_http_refused_connections_total", "counter", "Connections closed on accept because max connections were open.", c.refused_connections);
    add("switchyard_http_bad_requests_total", "counter", "Requests that were malformed, too large or too slow to arrive.", c.bad_requests);
    return out;
}

// Every replica of every model with replicas, as (model, state).
std::vector<std::pair<std::string, ReplicaState>> replica_states(const Deployment & dep) {
    std::vector<std::pair<std::string, ReplicaState>> out;
    for (const auto & [name, backend] : dep.backends) {
        if (const auto * set = dynamic_cast<const ReplicaSet *>(backend.get())) {
            for (auto & state : set->states()) out.emplace_back(name, std::move(state));
        }
    }
    return out;
}

std::string capture_metrics(const std::map<std::string, CaptureStore::Counts> & counts) {
    if (counts.empty()) return {};
    std::string stored, dropped;
    prometheus_family(stored, "switchyard_capture_items_total", "counter", "Answers captured and written.");
    prometheus_family(dropped, "switchyard_capture_dropped_total", "counter", "Answers sampled for capture but dropped: the writer's queue was full.");
    for (const auto & [route, c] : counts) {
        stored += "switchyard_capture_items_total{route=\"" + route + "\"} " + std::to_string(c.stored) + "\n";
        dropped += "switchyard_capture_dropped_total{route=\"" + route + "\"} " + std::to_string(c.dropped) + "\n";
    }
    return stored + dropped;
}

std::string replica_metrics(const std::vector<std::pair<std::string, ReplicaState>> & replicas) {
    if (replicas.empty()) return {};
    std::string out;
    auto family = [&](const char * name, const char * type, const char * help, auto value) {
        prometheus_family(out, name, type, help);
        for (const auto & [model, state] : replicas) {
            out += std::string(name) + "{model=\"" + model + "\",replica=\"" + state.name + "\"} " + std::to_string(value(state)) + "\n";
        }
    };
    family("switchyard_replica_healthy", "gauge", "1 while the replica is in rotation.", [](const ReplicaState & s) { return s.healthy ? 1 : 0; });
    family("switchyard_replica_outstanding", "gauge", "Requests the replica is answering now.", [](const ReplicaState & s) { return s.outstanding; });
    family("switchyard_replica_requests_total", "counter", "Requests the replica answered.", [](const ReplicaState & s) { return s.requests; });
    family("switchyard_replica_failures_total", "counter", "Attempts on the replica that failed.", [](const ReplicaState & s) { return s.failures; });
    family("switchyard_replica_latency_seconds_sum", "counter", "Time the replica took over its answered requests.", [](const ReplicaState & s) { return s.latency_sum_s; });
    return out;
}

}  // namespace

std::shared_ptr<Backend> make_backend(const model::PortfolioModel & entry, const model::ServerSettings & settings) {
    if (!entry.replicas.empty()) {
        std::vector<ReplicaSet::Member> members;
        if (!entry.path.empty()) members.push_back({"in-process", std::make_shared<LocalBackend>(entry, settings.queue_length), 1, {}});
        for (const auto & replica : entry.replicas) {
            model::PortfolioModel one = entry;
            one.endpoint = replica.endpoint;
            members.push_back({replica.endpoint, std::make_shared<RemoteBackend>(one, settings.request_timeout_ms), replica.weight, url_origin(replica.endpoint)});
        }
        return std::make_shared<ReplicaSet>(std::move(members), entry.health, settings.request_timeout_ms);
    }
    if (!entry.endpoint.empty()) return std::make_shared<RemoteBackend>(entry, settings.request_timeout_ms);
    return std::make_shared<LocalBackend>(entry, settings.queue_length);
}

Gateway::Gateway(model::Portfolio portfolio, std::filesystem::path file, BackendFactory factory)
    : settings_(portfolio.server), file_(std::move(file)), factory_(std::move(factory)), cooldown_(std::chrono::seconds(portfolio.server.cooldown_s)) {
    if (!settings_.admin_token_env.empty()) {
        if (const char * token = std::getenv(settings_.admin_token_env.c_str()); token != nullptr) admin_token_ = token;
    }
    if (!settings_.api_keys_env.empty()) {
        const char * keys = std::getenv(settings_.api_keys_env.c_str());
        if (keys == nullptr || *keys == 0) throw Error("api_keys_env names " + settings_.api_keys_env + ", which is not set");
        std::stringstream in(keys);
        for (std::string key; std::getline(in, key, ',');) {
            if (!key.empty()) api_keys_.push_back(key);
        }
    }
    admin_scope_ = AdminScope::of(portfolio, file_);
    swap(std::move(portfolio));
    shadows_ = std::make_unique<ShadowWorker>(metrics_, std::chrono::milliseconds(settings_.request_timeout_ms), [this] { return current(); },
                                              [this](const std::string & route, const std::string & candidate, bool promote) { apply_verdict(route, candidate, promote); });
}

Gateway::~Gateway() {
    stop();
    server_.reset();   // joins the workers, which may still queue shadow jobs
    shadows_.reset();  // its verdicts call back into this gateway
    capture_.reset();  // writes what is queued
}

std::map<std::string, CaptureStore::Counts> Gateway::capture_counts() const {
    const std::lock_guard lock(capture_mutex_);
    return capture_ ? capture_->counts() : std::map<std::string, CaptureStore::Counts>{};
}

std::shared_ptr<const Deployment> Gateway::current() const {
    const std::lock_guard lock(deployment_mutex_);
    return deployment_;
}

void Gateway::swap(model::Portfolio next) {
    update([&](const model::Portfolio &) { return std::optional<model::Portfolio>(std::move(next)); });
}

void Gateway::update(const std::function<std::optional<model::Portfolio>(const model::Portfolio &)> & change) {
    const std::lock_guard swap_lock(swap_mutex_);
    const auto old = current();
    std::optional<model::Portfolio> next = change(old ? old->portfolio : model::Portfolio{});
    if (!next) return;
    auto dep = std::make_shared<Deployment>();
    dep->portfolio = std::move(*next);
    for (const auto & entry : dep->portfolio.models) {
        std::shared_ptr<Backend> backend;
        if (old) {
            const auto * before = old->portfolio.find_model(entry.name);
            if (before != nullptr && *before == entry) backend = old->backends.at(entry.name);
        }
        dep->backends[entry.name] = backend ? backend : factory_(entry, settings_);
    }
    dep->router = std::make_unique<Router>(dep->portfolio);
    dep->generation = old ? old->generation + 1 : 1;
    {
        const std::lock_guard lock(deployment_mutex_);
        deployment_ = dep;
    }
    update_gauges();
    spdlog::info("portfolio generation {}: {} models, {} routes", dep->generation, dep->portfolio.models.size(), dep->portfolio.routes.size());
}

void Gateway::reload() {
    if (file_.empty()) {
        spdlog::warn("reload: serving a single model, there is no portfolio file to re-read");
        return;
    }
    try {
        auto next = model::load_portfolio(file_);
        auto scope = AdminScope::of(next, file_);
        swap(std::move(next));
        const std::lock_guard lock(admin_scope_mutex_);
        admin_scope_ = std::move(scope);
        spdlog::warn("reloaded {}", file_.string());
    } catch (const Error & e) {
        spdlog::error("reload failed, the current portfolio stays: {}", e.what());
    }
}

void Gateway::update_gauges() {
    const auto dep = current();
    metrics_.set_gauges(in_flight_.load(), streams_.load(), dep ? dep->generation : 0);
}

void Gateway::send_error(http::Response & res, const ApiError & error) {
    res.status = error.status;
    res.set_content(error.body(), "application/json");
}

bool Gateway::client_allowed(const http::Request & req, http::Response & res) {
    if (api_keys_.empty()) return true;
    const std::string key = bearer_token(req);
    bool ok = false;
    for (const auto & k : api_keys_) ok |= constant_time_equal(key, k);
    if (!ok) {
        metrics_.rejected();
        send_error(res, ApiError{401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error", {}, "invalid_api_key"});
    }
    return ok;
}

bool Gateway::body_type_allowed(const http::Request & req, http::Response & res, std::initializer_list<std::string_view> types) {
    // The media type without its parameters (charset=...), compared case-insensitively.
    std::string type = req.header("Content-Type");
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const auto t : types) {
        if (type == t) return true;
    }
    // A web page may send text/plain or form bodies to localhost without asking first; never act on one.
    metrics_.rejected();
    send_error(res, ApiError{415, "the body must be sent as " + std::string(*types.begin()) + " (Content-Type: " + (type.empty() ? "none" : type) + ")",
                             "invalid_request_error", {}, "unsupported_media_type"});
    return false;
}

bool Gateway::admin_allowed(const http::Request & req, http::Response & res) {
    if (admin_token_.empty()) {
        send_error(res, ApiError{403, "the admin API is off: set the environment variable " + settings_.admin_token_env + " before starting serve",
                                 "permission_error", {}, "admin_disabled"});
        return false;
    }
    if (!constant_time_equal(bearer_token(req), admin_token_)) {
        send_error(res, ApiError{401, "missing or wrong admin token (Authorization: Bearer TOKEN)", "authentication_error", {}, "invalid_admin_token"});
        return false;
    }
    return true;
}

int Gateway::bind() {
    http::ServerOptions options;
    options.max_body_bytes = settings_.max_body_bytes;
    options.read_timeout = options.write_timeout = std::chrono::milliseconds(settings_.read_timeout_ms);
    // Each open request holds a worker (generation blocks it), so size the pool for the
    // concurrent streams rather than the cores; a short queue absorbs bursts, and beyond it the
    // answer is an immediate 503. Connections themselves hold no worker.
    options.workers = std::max(16, settings_.max_streams + 16);
    options.queue = options.workers;
    server_ = std::make_unique<http::Server>(options, [this](http::Response & res, int status, const std::string & code, const std::string & message) {
        if (status == 413 || status == 431 || status == 400 || status == 503) metrics_.rejected();
        send_error(res, ApiError{status, message, status >= 500 ? (status == 503 ? "overloaded_error" : "server_error") : "invalid_request_error", {}, code});
    });
    auto & s = *server_;
    // Every handler's ApiError becomes its OpenAI error object; anything else is a 500 that is logged.
    auto guarded = [this](auto handler) {
        return [this, handler](const http::Request & req, http::Response & res) {
            try {
                handler(req, res);
            } catch (const ApiError & e) {
                send_error(res, e);
            } catch (const std::exception & e) {
                spdlog::error("{} {} failed: {}", req.method, req.path, e.what());
                send_error(res, ApiError{500, std::string("internal error: ") + e.what(), "server_error", {}, {}});
            }
        };
    };
    using http::Lane;
    s.handle("POST", "/v1/chat/completions", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_generate(req, res, ApiRequest::Kind::chat); }));
    s.handle("POST", "/v1/completions", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_generate(req, res, ApiRequest::Kind::completion); }));
    s.handle("POST", "/tokenize", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_tokenize(req, res, false); }));
    s.handle("POST", "/v1/feedback", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_feedback(req, res); }));
    s.handle("POST", "/detokenize", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_tokenize(req, res, true); }));
    s.handle("GET", "/tokenizer_info", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_tokenizer_info(req, res); }));
    s.handle("GET", "/v1/models", Lane::inline_io, guarded([this](const http::Request & req, http::Response & res) {
        if (!client_allowed(req, res)) return;
        const auto dep = current();
        json data = json::array();
        const auto created = std::time(nullptr);
        for (const auto & m : dep->portfolio.models) {
            const auto & b = *dep->backends.at(m.name);
            json meta = {{"kind", b.in_process() ? "in_process" : "remote"}};
            if (b.context_length() > 0) meta["n_ctx"] = b.context_length();
            if (b.vocab_size() > 0) meta["n_vocab"] = b.vocab_size();
            data.push_back({{"id", m.name}, {"object", "model"}, {"created", created}, {"owned_by", "switchyard"}, {"meta", meta}});
        }
        for (const auto & r : dep->portfolio.routes) {
            if (dep->portfolio.find_model(r.name) != nullptr) continue;
            data.push_back({{"id", r.name}, {"object", "model"}, {"created", created}, {"owned_by", "switchyard"}, {"meta", {{"kind", "route"}}}});
        }
        res.set_content(json_text({{"object", "list"}, {"data", data}}), "application/json");
    }));
    s.handle("GET", "/health", Lane::inline_io, guarded([this](const http::Request &, http::Response & res) {
        const auto dep = current();
        json load = json::object();
        for (const auto & [name, b] : dep->backends) load[name] = b->load();
        const auto edge = server_->counters();
        res.set_content(json_text({{"status", "ok"}, {"portfolio_generation", dep->generation}, {"load", load},
                                   {"connections", edge.connections}, {"busy_workers", edge.busy_workers}, {"queued", edge.queued}}),
                        "application/json");
    }));
    s.handle("GET", "/metrics", Lane::inline_io, guarded([this](const http::Request &, http::Response & res) {
        update_gauges();
        res.set_content(metrics_.prometheus() + edge_metrics(server_->counters()) + replica_metrics(replica_states(*current())) + capture_metrics(capture_counts()),
                        "text/plain; version=0.0.4");
    }));
    s.handle("GET", "/stats", Lane::inline_io, guarded([this](const http::Request &, http::Response & res) {
        update_gauges();
        const auto dep = current();
        json j = metrics_.to_json();
        json models = json::array(), routes = json::array();
        for (const auto & m : dep->portfolio.models) {
            models.push_back({{"name", m.name}, {"kind", !m.replicas.empty() ? "replicas" : m.endpoint.empty() ? "in_process" : "remote"}, {"note", m.note},
                              {"cost_per_1k_tokens", m.cost_per_1k_tokens}, {"resting", cooldown_.resting(m.name, Clock::now())}});
        }
        for (const auto & r : dep->portfolio.routes) {
            json route = {{"name", r.name}, {"model", r.model}, {"fallback", r.fallback}};
            if (r.cascade) route["cascade"] = r.cascade->models;
            if (r.canary) route["canary"] = {{"model", r.canary->model}, {"percent", r.canary->percent}};
            if (r.shadow) {
                route["shadow"] = {{"model", r.shadow->model}, {"sample", r.shadow->sample}, {"min_samples", r.shadow->min_samples},
                                   {"promote_at", r.shadow->promote_at ? json(*r.shadow->promote_at) : json()},
                                   {"rollback_below", r.shadow->rollback_below ? json(*r.shadow->rollback_below) : json()},
                                   {"decision", r.shadow->decision}, {"evidence", r.shadow->evidence}};
            }
            if (r.capture) {
                route["capture"] = {{"sample", r.capture->sample}, {"max_items", r.capture->max_items}, {"retention_days", r.capture->retention_days},
                                    {"redact", r.capture->redact}};
            }
            if (!r.note.empty()) route["note"] = r.note;
            if (!r.evidence.empty()) route["evidence"] = r.evidence;
            routes.push_back(route);
        }
        j["portfolio"] = {{"models", models}, {"routes", routes}, {"default_route", dep->portfolio.default_route}};
        json replicas = json::array();
        for (const auto & [model, state] : replica_states(*dep)) {
            replicas.push_back({{"model", model}, {"replica", state.name}, {"healthy", state.healthy}, {"outstanding", state.outstanding},
                                {"requests", state.requests}, {"failures", state.failures},
                                {"mean_latency_ms", state.requests ? 1000.0 * state.latency_sum_s / static_cast<double>(state.requests) : 0.0}});
        }
        j["replicas"] = replicas;
        json captured = json::object();
        for (const auto & [route, c] : capture_counts()) captured[route] = {{"stored", c.stored}, {"dropped", c.dropped}};
        j["capture"] = captured;
        res.set_content(json_text(j), "application/json");
    }));
    s.handle("GET", "/", Lane::inline_io, [](const http::Request &, http::Response & res) { res.set_content(dashboard_html(), "text/html; charset=utf-8"); });
    s.handle("PUT", "/admin/portfolio", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_admin_portfolio(req, res); }));
    // The plan report behind a route's shadow, or behind its model once promoted: what the dashboard links to.
    s.handle("GET", "/evidence", Lane::worker, guarded([this](const http::Request & req, http::Response & res) {
        const std::string route_name = query_value(req.query, "route");
        const model::Route * route = current()->portfolio.find_route(route_name);
        const std::string file = route == nullptr ? "" : route->shadow && !route->shadow->evidence.empty() ? route->shadow->evidence : route->evidence;
        // A plan's report only: what a portfolio names here is served without a token.
        if (file.empty() || std::filesystem::path(file).extension() != ".html")
            return send_error(res, ApiError{404, "no plan report for route '" + route_name + "' (GET /evidence?route=NAME)", "invalid_request_error", "route", "not_found"});
        try {
            res.set_content(read_whole_file(file, "plan report"), "text/html; charset=utf-8");
        } catch (const Error & e) {
            send_error(res, ApiError{404, e.what(), "invalid_request_error", "route", "not_found"});
        }
    }));
    s.handle("POST", "/admin/rollout", Lane::worker, guarded([this](const http::Request & req, http::Response & res) { handle_admin_rollout(req, res); }));
    s.handle("GET", "/admin/portfolio", Lane::inline_io, guarded([this](const http::Request & req, http::Response & res) {
        if (!admin_allowed(req, res)) return;
        res.set_content(model::portfolio_to_yaml(current()->portfolio, {}), "application/yaml");
    }));
    s.handle("GET", "/admin/shadow", Lane::inline_io, guarded([this](const http::Request & req, http::Response & res) {
        if (!admin_allowed(req, res)) return;
        res.set_content(json_text(metrics_.to_json()["shadows"]), "application/json");
    }));
    return s.bind(settings_.host, settings_.port);
}

void Gateway::run() { server_->run(); }

void Gateway::stop() {
    if (server_) server_->stop();
}

std::shared_ptr<Backend> Gateway::backend_for_tools(const Deployment & dep, const std::string & model, http::Response & res) {
    std::string name = model;
    if (name.empty() || dep.portfolio.find_model(name) == nullptr) {
        const model::Route * route = dep.portfolio.find_route(name.empty() ? dep.portfolio.default_route : name);
        if (route == nullptr) {
            send_error(res, ApiError{404, "the model '" + model + "' does not exist here (GET /v1/models lists what does)", "invalid_request_error", "model", "model_not_found"});
            return nullptr;
        }
        name = route->cascade ? route->cascade->models.front() : route->model;
    }
    return dep.backends.at(name);
}

void Gateway::handle_tokenize(const http::Request & req, http::Response & res, bool detokenize) {
    if (!client_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/json"})) return;
    const auto dep = current();
    if (detokenize) {
        auto parsed = parse_detokenize(req.body);
        if (const auto * e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
        const auto & r = std::get<DetokenizeRequest>(parsed);
        const auto backend = backend_for_tools(*dep, r.model, res);
        if (!backend) return;
        // llama-server's field and vLLM's (what lm-eval's remote tokenizer reads).
        const std::string text = backend->detokenize(r.tokens);
        res.set_content(json_text({{"content", text}, {"prompt", text}}), "application/json");
        return;
    }
    auto parsed = parse_tokenize(req.body);
    if (const auto * e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const auto & r = std::get<TokenizeRequest>(parsed);
    const auto backend = backend_for_tools(*dep, r.model, res);
    if (!backend) return;
    const auto tokens = backend->tokenize(r.content, r.add_special, r.parse_special);
    json answer = {{"tokens", tokens}, {"count", tokens.size()}};
    if (backend->context_length() > 0) answer["max_model_len"] = backend->context_length();
    res.set_content(json_text(answer), "application/json");
}

void Gateway::handle_tokenizer_info(const http::Request & req, http::Response & res) {
    if (!client_allowed(req, res)) return;
    const std::string model = query_value(req.query, "model");
    const auto backend = backend_for_tools(*current(), model, res);
    if (!backend) return;
    const engine::EngineModel * vocab = backend->vocabulary();
    if (vocab == nullptr) {
        return send_error(res, bad_request("'" + (model.empty() ? current()->portfolio.default_route : model) +
                                               "' runs on a remote server: ask that server for its tokenizer", "model"));
    }
    // vLLM's fields, as lm-eval's remote tokenizer reads them; special tokens as the text /tokenize reads back.
    const auto special = [&](engine::Token t) { return t >= 0 ? json(backend->detokenize({t})) : json(nullptr); };
    json info = {{"tokenizer_class", "llama.cpp"}, {"bos_token", special(vocab->bos)}, {"eos_token", special(vocab->eos)},
                 {"bos_token_id", vocab->bos >= 0 ? json(vocab->bos) : json(nullptr)}, {"eos_token_id", vocab->eos >= 0 ? json(vocab->eos) : json(nullptr)},
                 {"add_bos_token", vocab->adds_bos}, {"model_max_length", vocab->context_length}, {"vocab_size", vocab->vocab_size}};
    if (const std::string t = backend->chat_template(); !t.empty()) info["chat_template"] = t;
    res.set_content(json_text(info), "application/json");
}

void Gateway::handle_admin_portfolio(const http::Request & req, http::Response & res) {
    if (!admin_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/yaml", "application/x-yaml", "text/yaml", "application/json"})) return;
    model::Portfolio next;
    try {
        // Relative paths in a pushed portfolio resolve against the file serve was started with.
        const auto base = file_.empty() ? std::filesystem::current_path() : std::filesystem::absolute(file_).parent_path();
        next = model::parse_portfolio(req.body, "PUT /admin/portfolio", base);
    } catch (const Error & e) {
        return send_error(res, bad_request(e.what()));
    }
    std::optional<std::string> outside;
    {
        const std::lock_guard lock(admin_scope_mutex_);
        outside = admin_scope_.violation(next);
    }
    if (outside) {
        return send_error(res, ApiError{403, *outside, "permission_error", {}, "outside_admin_scope"});
    }
    try {
        swap(std::move(next));
    } catch (const Error & e) {
        return send_error(res, ApiError{422, std::string("the portfolio could not be loaded, the current one stays: ") + e.what(), "invalid_request_error", {}, "load_failed"});
    }
    res.set_content(json_text({{"status", "swapped"}, {"portfolio_generation", current()->generation}}), "application/json");
}

void Gateway::handle_admin_rollout(const http::Request & req, http::Response & res) {
    if (!admin_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/json"})) return;
    const json body = json::parse(req.body, nullptr, false);
    const auto text = [&](const char * key) -> std::optional<std::string> {
        if (!body.is_object() || !body.contains(key)) return std::nullopt;
        if (!body[key].is_string() || body[key].get<std::string>().empty()) throw ApiError(bad_request(std::string("'") + key + "' must be a non-empty string", key));
        return body[key].get<std::string>();
    };
    const auto share = [&](const char * key) -> std::optional<double> {
        if (!body.is_object() || !body.contains(key)) return std::nullopt;
        const json & v = body[key];
        if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1) throw ApiError(bad_request(std::string("'") + key + "' must be a number from 0 to 1", key));
        return v.get<double>();
    };
    std::optional<std::string> plan_out, task_class, route;
    model::Shadow thresholds{.model = {}, .sample = 1.0, .promote_at = 0.9, .rollback_below = 0.5, .min_samples = 100, .decision = {}, .evidence = {}};
    try {
        if (!body.is_object()) throw ApiError(bad_request("the body must be a JSON object: {\"plan\": FOLDER, \"class\": NAME}"));
        plan_out = text("plan");
        task_class = text("class");
        if (!plan_out) throw ApiError(bad_request("'plan' is required: the folder `switchyard plan -o` wrote", "plan"));
        if (!task_class) throw ApiError(bad_request("'class' is required: the class of traffic whose recommendation to roll out", "class"));
        route = text("route");
        thresholds.sample = share("sample").value_or(thresholds.sample);
        if (auto v = share("promote_at")) thresholds.promote_at = v;
        if (auto v = share("rollback_below")) thresholds.rollback_below = v;
        if (body.contains("min_samples")) {
            if (!body["min_samples"].is_number_integer() || body["min_samples"].get<long long>() < 1 || body["min_samples"].get<long long>() > 1000000)
                throw ApiError(bad_request("'min_samples' must be a whole number from 1 to 1000000", "min_samples"));
            thresholds.min_samples = body["min_samples"].get<int>();
        }
    } catch (const ApiError & e) {
        return send_error(res, e);
    }
    // Relative folders resolve as a pushed portfolio's paths do: against the file serve started with.
    const auto base = file_.empty() ? std::filesystem::current_path() : std::filesystem::absolute(file_).parent_path();
    Recommendation rec;
    try {
        rec = read_recommendation((base / *plan_out).lexically_normal(), *task_class);
    } catch (const Error & e) {
        return send_error(res, bad_request(e.what(), "plan"));
    }
    std::string incumbent;
    try {
        update([&](const model::Portfolio & now) -> std::optional<model::Portfolio> {
            model::Portfolio next = with_rollout(now, route.value_or(*task_class), rec, thresholds);
            std::optional<std::string> outside;
            {
                const std::lock_guard lock(admin_scope_mutex_);
                outside = admin_scope_.violation(next);
            }
            if (outside) throw ApiError{403, *outside, "permission_error", {}, "outside_admin_scope"};
            incumbent = next.find_route(route.value_or(*task_class))->model;
            return next;
        });
    } catch (const ApiError & e) {
        return send_error(res, e);
    } catch (const RolloutConflict & e) {
        return send_error(res, ApiError{409, e.what(), "invalid_request_error", {}, "rollout_conflict"});
    } catch (const Error & e) {
        return send_error(res, ApiError{422, std::string("the candidate could not be loaded, the portfolio stays: ") + e.what(), "invalid_request_error", {}, "load_failed"});
    }
    spdlog::warn("route {}: shadowing {} (plan's choice for class {}) against {}", route.value_or(*task_class), rec.model.name, *task_class, incumbent);
    res.set_content(json_text({{"status", "shadowing"}, {"route", route.value_or(*task_class)}, {"candidate", rec.model.name}, {"incumbent", incumbent},
                               {"decision", rec.decision}, {"evidence", rec.evidence.string()}, {"min_samples", thresholds.min_samples},
                               {"promote_at", *thresholds.promote_at}, {"rollback_below", *thresholds.rollback_below},
                               {"portfolio_generation", current()->generation}}),
                    "application/json");
}

const model::Capture * Gateway::capture_policy(const Deployment & dep, const std::string & route) const {
    const model::Route * r = route.empty() ? nullptr : dep.portfolio.find_route(route);
    return r != nullptr && r->capture ? &*r->capture : nullptr;
}

CaptureStore & Gateway::capture_store() {
    const std::lock_guard lock(capture_mutex_);
    if (!capture_) {
        std::filesystem::path db = settings_.capture_db;
        if (db.empty()) db = (file_.empty() ? std::filesystem::current_path() : std::filesystem::absolute(file_).parent_path()) / "captures.sqlite";
        capture_ = std::make_unique<CaptureStore>(db);
        spdlog::info("capturing sampled traffic of routes with capture into {}", db.string());
    }
    return *capture_;
}

void Gateway::record(const model::Capture & policy, const std::string & route, const ApiRequest & r, const Answer & answer, const Generation & g,
                     double seconds) {
    CapturedItem item{.id = answer.id, .route = route, .model = answer.model, .answer = g.text, .finish_reason = finish_reason(g),
                      .latency_ms = seconds * 1000.0};
    json request = json::object();
    if (r.input.chat) {
        json messages = json::array();
        for (const auto & m : r.input.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
        request["messages"] = messages;
    } else if (!r.input.prompt_tokens.empty()) {
        request["prompt"] = r.input.prompt_tokens;
    } else {
        request["prompt"] = r.input.prompt;
    }
    // What a suite built from this item needs to ask a candidate the same question.
    request["max_tokens"] = r.input.max_tokens;
    if (!r.input.stop.empty()) request["stop"] = r.input.stop;
    request["temperature"] = r.input.sampling.temperature;
    item.request = json_text(request);
    if (g.has_logprobs) {
        json lps = json::array();
        for (const auto & t : g.logprobs) lps.push_back({{"token", t.token}, {"logprob", t.logprob}});
        item.logprobs = json_text(lps);
    }
    try {
        capture_store().offer(std::move(item), policy);
    } catch (const Error & e) {
        spdlog::error("capture off for this request: {}", e.what());
    }
}

void Gateway::handle_feedback(const http::Request & req, http::Response & res) {
    if (!client_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/json"})) return;
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("id") || !body["id"].is_string()) return send_error(res, bad_request("'id' (a response id) is required", "id"));
    if (!body.contains("correct") || !body["correct"].is_boolean()) return send_error(res, bad_request("'correct' must be true or false", "correct"));
    std::optional<std::string> expected;
    if (body.contains("expected")) {
        if (!body["expected"].is_string()) return send_error(res, bad_request("'expected' must be a string", "expected"));
        expected = body["expected"].get<std::string>();
    }
    {
        const std::lock_guard lock(capture_mutex_);
        if (!capture_) {
            return send_error(res, ApiError{404, "nothing is captured here: no route has capture on, or none has answered yet", "invalid_request_error", "id", "not_captured"});
        }
    }
    if (!capture_store().label(body["id"].get<std::string>(), body["correct"].get<bool>(), expected)) {
        return send_error(res, ApiError{404, "no captured answer has the id '" + body["id"].get<std::string>() + "' (only a sample of the answers of routes with capture is kept)",
                                        "invalid_request_error", "id", "not_captured"});
    }
    res.set_content(json_text({{"status", "recorded"}}), "application/json");
}

namespace {

// Counts a request (or stream) while it is open; shared with a stream's content provider.
struct InFlight {
    std::atomic<int> & n;
    explicit InFlight(std::atomic<int> & c) : n(c) { ++n; }
    ~InFlight() { --n; }
};

}  // namespace

void Gateway::handle_generate(const http::Request & req, http::Response & res, ApiRequest::Kind kind) {
    const auto started = Clock::now();
    auto in_flight = std::make_shared<InFlight>(in_flight_);
    if (!client_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/json"})) return;
    auto parsed = parse_request(kind, req.body, Limits{settings_.max_tokens});
    if (const auto * e = std::get_if<ApiError>(&parsed)) {
        metrics_.rejected();
        return send_error(res, *e);
    }
    auto r = std::get<ApiRequest>(std::move(parsed));
    const auto dep = current();
    std::string task = req.header("X-Switchyard-Task");
    if (task.empty()) task = r.task;
    auto resolved = dep->router->resolve(r.model, task, r.input.routing_text(), uniform_draw(), uniform_draw());
    if (const auto * e = std::get_if<ApiError>(&resolved)) {
        metrics_.rejected();
        return send_error(res, *e);
    }
    const Resolution route = std::get<Resolution>(std::move(resolved));
    if (r.echo) return handle_echo(dep, r, route, res);
    if (route.cascade) return handle_cascade(dep, r, route, res);
    if (r.choice_count() > 1) return handle_choices(dep, r, route, req, res);
    if (route.canary) metrics_.canary(route.route);

    std::shared_ptr<InFlight> stream_slot;
    if (r.stream) {
        if (streams_.load() >= settings_.max_streams) {
            metrics_.rejected();
            return send_error(res, ApiError{503, "too many open streams (max_streams " + std::to_string(settings_.max_streams) + ")", "overloaded_error", {}, "too_many_streams"});
        }
        stream_slot = std::make_shared<InFlight>(streams_);
    }
    GenerationInput input = r.input;
    if (!route.shadow.empty()) input.logprobs = std::max(input.logprobs, ShadowWorker::kTopK);
    // Drawn before generating, so a captured in-process answer comes with its log-probabilities.
    const model::Capture * capture = capture_policy(*dep, route.route);
    if (capture != nullptr && uniform_draw() >= capture->sample) capture = nullptr;
    if (capture != nullptr) input.logprobs = std::max(input.logprobs, 0);
    const auto deadline = started + std::chrono::milliseconds(settings_.request_timeout_ms);
    const auto chain = cooldown_.order(route.chain, started);
    std::optional<ApiError> last_error;
    for (std::size_t i = 0; i < chain.size(); ++i) {
        const std::string & name = chain[i];
        if (i > 0) metrics_.fallback(route.route);
        const auto backend = dep->backends.at(name);
        const auto stream = backend->start(r, input, req.client_gone);
        StreamGuard guard{stream};
        Clock::time_point first_at{};
        Stream::Event first = stream->next(deadline);
        first_at = Clock::now();
        if (first.kind == Stream::Event::Kind::failed) {
            if (first.failure == Failure::rejected) return send_error(res, failure_error(first.failure, first.message, first.status));
            if (first.failure == Failure::client_gone) {
                metrics_.client_gone();
                return;  // a remote model's whole answer, abandoned while awaited
            }
            metrics_.attempt_failed(name);
            if (first.failure != Failure::overloaded) cooldown_.failed(name, Clock::now());
            spdlog::warn("{}: {} failed ({}); {}", route.route.empty() ? name : route.route, name, first.message, i + 1 < chain.size() ? "falling back" : "no fallback left");
            last_error = failure_error(first.failure, name + ": " + first.message);
            continue;
        }
        const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
        const double cost = dep->portfolio.find_model(name)->cost_per_1k_tokens;
        if (!r.stream) {
            // Nothing has reached the client yet, so even a failure halfway may still fall back.
            Generation g;
            if (first.kind == Stream::Event::Kind::done) {
                g = std::move(first.result);
            } else {
                auto rest = collect(*stream, deadline, nullptr, req.client_gone);
                if (auto * e = std::get_if<Stream::Event>(&rest)) {
                    if (e->failure == Failure::client_gone) {
                        metrics_.client_gone();
                        return;  // the guard cancels the generation and frees its slot
                    }
                    metrics_.attempt_failed(name);
                    if (e->failure != Failure::overloaded) cooldown_.failed(name, Clock::now());
                    last_error = failure_error(e->failure, name + ": " + e->message);
                    continue;
                }
                g = std::get<Generation>(std::move(rest));
            }
            cooldown_.succeeded(name);
            res.set_header("X-Switchyard-Model", name);
            if (!route.route.empty()) res.set_header("X-Switchyard-Route", route.route);
            res.set_content(json_text(whole_response(r, answer, *backend, g)), "application/json");
            metrics_.answered(route.route, name, g.prompt_tokens, g.completion_tokens, cost, std::chrono::duration<double>(first_at - started).count(), seconds_since(started));
            if (capture != nullptr) record(*capture, route.route, r, answer, g, seconds_since(started));
            if (!route.shadow.empty()) shadows_->enqueue({route.route, route.shadow, name, dep, r, input, std::move(g)});
            return;
        }
        // Streaming: committed to this model from here on.
        cooldown_.succeeded(name);
        res.set_header("X-Switchyard-Model", name);
        if (!route.route.empty()) res.set_header("X-Switchyard-Route", route.route);
        res.set_header("Cache-Control", "no-cache");
        guard.stream = nullptr;  // the provider owns cancellation now
        auto pending = std::make_shared<Stream::Event>(std::move(first));
        res.set_stream(
            "text/event-stream",
            [this, dep, backend, stream, pending, r, input, answer, route, cost, started, first_at, deadline, in_flight, stream_slot, capture](http::Sink & sink) {
                StreamGuard cancel_on_exit{stream};
                const SseWriter sse(r, answer, !backend->in_process());
                auto write = [&](const std::string & text) { return text.empty() || sink.write(text); };
                if (!write(sse.opening())) return;
                Stream::Event e = std::move(*pending);
                for (;;) {
                    if (e.kind == Stream::Event::Kind::piece) {
                        if (!write(sse.piece(e))) return;  // client gone: the guard cancels
                    } else if (e.kind == Stream::Event::Kind::done) {
                        // Counted before the client sees [DONE], so what it reads next in /metrics includes it.
                        metrics_.answered(route.route, answer.model, e.result.prompt_tokens, e.result.completion_tokens, cost,
                                          std::chrono::duration<double>(first_at - started).count(), seconds_since(started));
                        write(sse.done(e.result));
                        cancel_on_exit.stream = nullptr;
                        if (capture != nullptr) record(*capture, route.route, r, answer, e.result, seconds_since(started));
                        if (!route.shadow.empty()) shadows_->enqueue({route.route, route.shadow, answer.model, dep, r, input, std::move(e.result)});
                        return;
                    } else {
                        // Too late to fall back: the client has the first bytes. Say so in the stream.
                        metrics_.attempt_failed(answer.model);
                        metrics_.route_failed(route.route);
                        write(sse.failed(failure_error(e.failure, answer.model + ": " + e.message)));
                        return;
                    }
                    e = stream->next(deadline);
                }
            });
        return;
    }
    metrics_.route_failed(route.route);
    send_error(res, last_error.value_or(ApiError{503, "no model is available for this request", "overloaded_error", {}, "unavailable"}));
}

void Gateway::handle_cascade(const std::shared_ptr<const Deployment> & dep, const ApiRequest & r, const Resolution & route, http::Response & res) {
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::milliseconds(settings_.request_timeout_ms);
    GenerationInput input = r.input;
    input.logprobs = std::max(input.logprobs, 0);
    std::optional<ApiError> last_error;
    for (std::size_t i = 0; i < route.chain.size(); ++i) {
        const std::string & name = route.chain[i];
        const auto backend = dep->backends.at(name);
        const auto stream = backend->start(r, input, {});  // a cascade runs to its end (docs/serve.md)
        StreamGuard guard{stream};
        Clock::time_point first_at{};
        auto got = collect(*stream, deadline, &first_at);
        if (auto * e = std::get_if<Stream::Event>(&got)) {
            if (e->failure == Failure::rejected) return send_error(res, failure_error(e->failure, e->message, e->status));
            metrics_.attempt_failed(name);
            if (i + 1 < route.chain.size()) metrics_.fallback(route.route);
            last_error = failure_error(e->failure, name + ": " + e->message);
            continue;
        }
        Generation g = std::get<Generation>(std::move(got));
        const bool last = i + 1 == route.chain.size();
        if (!last && should_escalate(g.logprobs, g.has_logprobs, route.cascade->min_mean_logprob)) {
            metrics_.escalated(route.route);
            continue;
        }
        const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
        res.set_header("X-Switchyard-Model", name);
        res.set_header("X-Switchyard-Route", route.route);
        if (const auto mean = mean_logprob(g.logprobs)) res.set_header("X-Switchyard-Mean-Logprob", std::to_string(*mean));
        if (r.stream) {
            res.set_content(SseWriter(r, answer, false).whole(g), "text/event-stream");
        } else {
            res.set_content(json_text(whole_response(r, answer, *backend, g)), "application/json");
        }
        metrics_.answered(route.route, name, g.prompt_tokens, g.completion_tokens, dep->portfolio.find_model(name)->cost_per_1k_tokens,
                          std::chrono::duration<double>(first_at - started).count(), seconds_since(started));
        return;
    }
    metrics_.route_failed(route.route);
    send_error(res, last_error.value_or(ApiError{503, "no model is available for this request", "overloaded_error", {}, "unavailable"}));
}

void Gateway::handle_echo(const std::shared_ptr<const Deployment> & dep, const ApiRequest & r, const Resolution & route, http::Response & res) {
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::milliseconds(settings_.request_timeout_ms);
    // Prompt log-probabilities need the model's own forward pass: the first in-process model of the chain.
    std::shared_ptr<Backend> backend;
    std::string name;
    for (const auto & m : route.chain) {
        if (dep->backends.at(m)->in_process()) {
            backend = dep->backends.at(m);
            name = m;
            break;
        }
    }
    if (!backend) return send_error(res, bad_request("'echo' needs an in-process model; this route has only remote ones", "echo"));
    const engine::EngineModel * vocab = backend->vocabulary();
    // The echo is the prompt as the client sent it; a BOS the model asks for in front of text is
    // context, not echoed, so the client's token counts index the answer (lm-eval's
    // token_logprobs[ctxlen:-1]). Ids are taken as they are.
    std::vector<std::vector<engine::Token>> full(r.prompts.size());
    std::vector<std::size_t> added(r.prompts.size(), 0);
    for (std::size_t i = 0; i < r.prompts.size(); ++i) {
        const Prompt & p = r.prompts[i];
        if (p.tokens.empty()) {
            const auto sent = backend->tokenize(p.text, false, true);
            if (vocab != nullptr && vocab->adds_bos && vocab->bos >= 0 && (sent.empty() || sent.front() != vocab->bos)) full[i].push_back(vocab->bos);
            added[i] = full[i].size();
            full[i].insert(full[i].end(), sent.begin(), sent.end());
        } else {
            full[i] = p.tokens;
        }
        if (full[i].empty()) return send_error(res, bad_request(fmt::format("prompt {} is empty and this model adds no BOS token: there is nothing to score", i), "prompt"));
    }
    // The generations start together (the batcher decodes them side by side) and the prompts are
    // scored in one batch meanwhile.
    std::vector<StreamGuard> generations;
    for (std::size_t i = 0; i < r.prompts.size() && r.input.max_tokens > 0; ++i) {
        GenerationInput input = r.choice_input(i);
        input.prompt.clear();
        input.prompt_tokens = full[i];
        generations.emplace_back(backend->start(r, input, {}));  // in process: start() does not wait
    }
    const auto scored = r.input.logprobs >= 0 ? backend->score_prompts(full, r.input.logprobs) : std::vector<engine::ScoreResult>();
    json choices = json::array();
    Generation total;
    for (std::size_t i = 0; i < r.prompts.size(); ++i) {
        Generation g;
        if (!generations.empty()) {
            auto got = collect(*generations[i].stream, deadline, nullptr);
            if (auto * e = std::get_if<Stream::Event>(&got)) {
                return send_error(res, failure_error(e->failure, e->failure == Failure::rejected ? e->message : name + ": " + e->message, e->status));
            }
            g = std::get<Generation>(std::move(got));
        }
        const Prompt & p = r.prompts[i];
        const std::string prompt_text = p.tokens.empty() ? p.text : backend->detokenize(p.tokens);
        json choice = {{"index", i}, {"text", prompt_text + g.text}, {"finish_reason", finish_reason_name(g.finish)}, {"logprobs", nullptr}};
        if (!scored.empty()) {
            LegacyLogprobs lp;
            for (std::size_t k = added[i]; k < full[i].size(); ++k) lp.add(*backend, full[i][k], k == 0 ? nullptr : &scored[i].tokens.at(k - 1));
            for (const auto & t : g.logprobs) lp.add(*backend, t.token, &t);
            choice["logprobs"] = lp.to_json();
        }
        choices.push_back(std::move(choice));
        total.prompt_tokens += static_cast<int>(full[i].size());
        total.completion_tokens += g.completion_tokens;
    }
    const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
    res.set_header("X-Switchyard-Model", name);
    if (!route.route.empty()) res.set_header("X-Switchyard-Route", route.route);
    res.set_content(json_text(choices_response(r, answer, std::move(choices), usage_json(total))), "application/json");
    metrics_.answered(route.route, name, total.prompt_tokens, total.completion_tokens, dep->portfolio.find_model(name)->cost_per_1k_tokens,
                      seconds_since(started), seconds_since(started));
}

void Gateway::handle_choices(const std::shared_ptr<const Deployment> & dep, const ApiRequest & r, const Resolution & route, const http::Request & req,
                             http::Response & res) {
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::milliseconds(settings_.request_timeout_ms);
    const auto chain = cooldown_.order(route.chain, started);
    std::optional<ApiError> last_error;
    for (std::size_t m = 0; m < chain.size(); ++m) {
        const std::string & name = chain[m];
        if (m > 0) metrics_.fallback(route.route);
        const auto backend = dep->backends.at(name);
        if (r.n > backend->parallel()) {
            return send_error(res, bad_request(fmt::format("'n' is {}; '{}' generates at most {} sequences at once (its `parallel`)", r.n, name, backend->parallel()), "n"));
        }
        // All started before any is awaited, so an in-process model decodes them in one batch.
        std::vector<StreamGuard> streams;
        for (std::size_t i = 0; i < r.choice_count(); ++i) streams.emplace_back(backend->start(r, r.choice_input(i), req.client_gone));
        json choices = json::array();
        Generation total;
        Clock::time_point first_at{};
        std::optional<Stream::Event> failed;
        for (std::size_t i = 0; i < streams.size() && !failed; ++i) {
            auto got = collect(*streams[i].stream, deadline, i == 0 ? &first_at : nullptr, req.client_gone);
            if (auto * e = std::get_if<Stream::Event>(&got)) {
                failed = std::move(*e);
                break;
            }
            const Generation & g = std::get<Generation>(got);
            choices.push_back(choice_json(r, *backend, g, i));
            // Each prompt's tokens are counted once, whatever its n.
            if (i % static_cast<std::size_t>(r.n) == 0) total.prompt_tokens += g.prompt_tokens;
            total.completion_tokens += g.completion_tokens;
        }
        if (failed) {
            if (failed->failure == Failure::rejected) return send_error(res, failure_error(failed->failure, failed->message, failed->status));
            if (failed->failure == Failure::client_gone) {
                metrics_.client_gone();
                return;
            }
            metrics_.attempt_failed(name);
            if (failed->failure != Failure::overloaded) cooldown_.failed(name, Clock::now());
            last_error = failure_error(failed->failure, name + ": " + failed->message);
            continue;  // the guards cancel the choices still running
        }
        cooldown_.succeeded(name);
        const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
        res.set_header("X-Switchyard-Model", name);
        if (!route.route.empty()) res.set_header("X-Switchyard-Route", route.route);
        res.set_content(json_text(choices_response(r, answer, std::move(choices), usage_json(total))), "application/json");
        metrics_.answered(route.route, name, total.prompt_tokens, total.completion_tokens, dep->portfolio.find_model(name)->cost_per_1k_tokens,
                          std::chrono::duration<double>(first_at - started).count(), seconds_since(started));
        return;
    }
    metrics_.route_failed(route.route);
    send_error(res, last_error.value_or(ApiError{503, "no model is available for this request", "overloaded_error", {}, "unavailable"}));
}

void Gateway::apply_verdict(const std::string & route_name, const std::string & candidate, bool promote) {
    bool applied = false;
    try {
        update([&](const model::Portfolio & now) -> std::optional<model::Portfolio> {
            model::Portfolio next = now;
            for (auto & route : next.routes) {
                // The route may have changed since the sample was taken: act only on the shadow it still has.
                if (route.name != route_name || !route.shadow || route.shadow->model != candidate) continue;
                const model::Shadow shadow = *route.shadow;
                route.shadow.reset();
                if (promote) {
                    // What the route's model now rests on: the live comparison, and the plan's evidence when a rollout started it.
                    const auto counters = metrics_.shadows();
                    const auto c = counters.find(route_name);
                    route.note = c == counters.end() ? "promoted from shadow"
                                                     : fmt::format("promoted from shadow: token agreement {:.3f} over {} mirrored requests (exact {:.3f})",
                                                                   c->second.agreement(), c->second.samples, c->second.exact_rate());
                    if (!shadow.decision.empty()) route.note += "; plan: " + shadow.decision;
                    route.evidence = shadow.evidence;
                    // The incumbent stays reachable as the first fallback.
                    auto & fb = route.fallback;
                    fb.erase(std::remove(fb.begin(), fb.end(), candidate), fb.end());
                    if (std::find(fb.begin(), fb.end(), route.model) == fb.end()) fb.insert(fb.begin(), route.model);
                    route.model = candidate;
                }
                applied = true;
                return next;
            }
            return std::nullopt;
        });
    } catch (const Error & e) {
        spdlog::error("route {}: shadow verdict not applied: {}", route_name, e.what());
        return;
    }
    if (!applied) return;
    metrics_.shadow_state(route_name, promote ? "promoted" : "rolled back");
    spdlog::warn("route {}: shadow {} {}", route_name, candidate, promote ? "promoted" : "rolled back");
}

}  // namespace switchyard::serve
