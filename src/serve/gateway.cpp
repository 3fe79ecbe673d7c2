#include "serve/gateway.h"

#include "serve/access.h"
#include "serve/admin_api.h"
#include "serve/answer.h"
#include "serve/capture_item.h"
#include "serve/dashboard.h"
#include "serve/local_backend.h"
#include "serve/managed_backend.h"
#include "serve/remote_backend.h"
#include "serve/replica_set.h"
#include "serve/tokenizer_api.h"
#include "serve/status_json.h"
#include "support/error.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <random>
#include <set>

namespace switchyard::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Counts a request while it is open, and its stream when it is one; shared with a stream's relay,
// so that a stream counts until it ends.
struct Gateway::InFlight {
    std::atomic<int> & requests;
    std::atomic<int> * stream = nullptr;
    explicit InFlight(std::atomic<int> & r) : requests(r) { ++requests; }
    void streaming(std::atomic<int> & streams) {
        stream = &streams;
        ++streams;
    }
    ~InFlight() {
        --requests;
        if (stream != nullptr) --*stream;
    }
};

namespace {

double uniform_draw() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// A route that prefers a loaded model tries the loaded ones of its chain first, in their order,
// and starts loading its first choice for the requests to come.
void prefer_loaded(const Deployment & dep, std::vector<std::string> & chain) {
    const auto & first = dep.backend(chain.front());
    if (first->loaded()) return;
    // Which are loaded is read before the load starts: a small model loads in milliseconds, and
    // this request was promised to a model already loaded.
    std::set<std::string> loaded;
    for (const auto & name : chain)
        if (dep.backend(name)->loaded()) loaded.insert(name);
    std::stable_partition(chain.begin(), chain.end(), [&](const std::string & name) { return loaded.count(name) > 0; });
    first->preload();
}

}  // namespace

std::shared_ptr<Backend> make_backend(const model::PortfolioModel & entry, const model::ServerSettings & settings) {
    if (!entry.replicas.empty()) {
        std::vector<ReplicaSet::Member> members;
        if (!entry.path.empty())
            members.push_back({"in-process", std::make_shared<LocalBackend>(entry, settings.queue_length), 1, {}});
        for (const auto & replica : entry.replicas) {
            model::PortfolioModel one = entry;
            one.endpoint = replica.endpoint;
            members.push_back({replica.endpoint, std::make_shared<RemoteBackend>(one, settings.request_timeout_ms),
                               replica.weight, url_origin(replica.endpoint)});
        }
        return std::make_shared<ReplicaSet>(std::move(members), entry.health, settings.request_timeout_ms);
    }
    if (!entry.endpoint.empty()) return std::make_shared<RemoteBackend>(entry, settings.request_timeout_ms);
    return std::make_shared<LocalBackend>(entry, settings.queue_length);
}

Gateway::Gateway(model::Portfolio portfolio, std::filesystem::path file, BackendFactory factory)
    : settings_(portfolio.server),
      file_(std::move(file)),
      factory_(std::move(factory)),
      residency_(Residency::create({.budget = portfolio.server.memory_budget,
                                    .queue = portfolio.server.load_queue,
                                    .min_resident = std::chrono::seconds(portfolio.server.min_resident_s)})),
      cooldown_(std::chrono::seconds(portfolio.server.cooldown_s)) {
    if (!settings_.admin_token_env.empty()) {
        if (const char * token = std::getenv(settings_.admin_token_env.c_str()); token != nullptr) admin_token_ = token;
    }
    if (!settings_.api_keys_env.empty()) api_keys_ = api_keys_from_env(settings_.api_keys_env);
    admin_scope_ = AdminScope::of(portfolio, file_);
    swap(std::move(portfolio));
    shadows_ = std::make_unique<ShadowWorker>(
        metrics_, std::chrono::milliseconds(settings_.request_timeout_ms), [this] { return current(); },
        [this](const std::string & route, const std::string & candidate, bool promote) {
            apply_verdict(route, candidate, promote);
        });
}

Gateway::~Gateway() {
    stop();
    server_.reset();  // joins the workers, which may still queue shadow jobs
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

std::shared_ptr<Backend> Gateway::make(const model::PortfolioModel & entry) const {
    if (entry.path.empty() || !entry.replicas.empty()) return factory_(entry, settings_);
    // In process alone: under the memory budget, loaded now or on demand.
    return std::make_shared<ManagedBackend>(
        residency_, entry, std::chrono::milliseconds(settings_.request_timeout_ms),
        [factory = factory_, entry, settings = settings_] { return factory(entry, settings); });
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
            if (before != nullptr && *before == entry) backend = old->backend(entry.name);
        }
        dep->backends[entry.name] = backend ? backend : make(entry);
    }
    dep->router = std::make_unique<Router>(dep->portfolio);
    dep->generation = old ? old->generation + 1 : 1;
    {
        const std::lock_guard lock(deployment_mutex_);
        deployment_ = dep;
    }
    update_gauges();
    spdlog::info("portfolio generation {}: {} models, {} routes", dep->generation, dep->portfolio.models.size(),
                 dep->portfolio.routes.size());
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

std::filesystem::path Gateway::base_dir() const {
    return file_.empty() ? std::filesystem::current_path() : std::filesystem::absolute(file_).parent_path();
}

bool Gateway::client_allowed(const http::Request & req, http::Response & res) {
    const auto refused = check_api_key(req, api_keys_);
    if (refused) {
        metrics_.rejected();
        send_error(res, *refused);
    }
    return !refused;
}

bool Gateway::body_type_allowed(const http::Request & req, http::Response & res,
                                std::initializer_list<std::string_view> types) {
    const auto refused = check_body_type(req, types);
    if (refused) {
        metrics_.rejected();
        send_error(res, *refused);
    }
    return !refused;
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
    server_ = std::make_unique<http::Server>(
        options, [this](http::Response & res, int status, const std::string & code, const std::string & message) {
            if (status == 413 || status == 431 || status == 400 || status == 503) metrics_.rejected();
            send_error(res,
                       ApiError{status,
                                message,
                                status >= 500 ? (status == 503 ? "overloaded_error" : "server_error")
                                              : "invalid_request_error",
                                {},
                                code});
        });
    using http::Lane;
    using http::Request;
    using http::Response;
    // Every handler's ApiError becomes its OpenAI error object; anything else is a 500 that is logged.
    auto handle = [this](const char * method, const char * path, Lane lane, http::Handler handler) {
        server_->handle(method, path, lane, [handler = std::move(handler)](const Request & req, Response & res) {
            try {
                handler(req, res);
            } catch (const ApiError & e) {
                send_error(res, e);
            } catch (const std::exception & e) {
                spdlog::error("{} {} failed: {}", req.method, req.path, e.what());
                send_error(res, ApiError{500, std::string("internal error: ") + e.what(), "server_error", {}, {}});
            }
        });
    };
    handle("POST", "/v1/chat/completions", Lane::worker,
           [this](const Request & req, Response & res) { handle_generate(req, res, ApiRequest::Kind::chat); });
    handle("POST", "/v1/completions", Lane::worker,
           [this](const Request & req, Response & res) { handle_generate(req, res, ApiRequest::Kind::completion); });
    handle("POST", "/tokenize", Lane::worker,
           [this](const Request & req, Response & res) { handle_tokenize(req, res, false); });
    handle("POST", "/v1/feedback", Lane::worker,
           [this](const Request & req, Response & res) { handle_feedback(req, res); });
    handle("POST", "/detokenize", Lane::worker,
           [this](const Request & req, Response & res) { handle_tokenize(req, res, true); });
    handle("GET", "/tokenizer_info", Lane::worker,
           [this](const Request & req, Response & res) { handle_tokenizer_info(req, res); });
    handle("GET", "/v1/models", Lane::inline_io, [this](const Request & req, Response & res) {
        if (client_allowed(req, res))
            res.set_content(json_text(models_json(*current(), std::time(nullptr))), "application/json");
    });
    handle("GET", "/health", Lane::inline_io, [this](const Request &, Response & res) {
        res.set_content(json_text(health_json(*current(), server_->counters())), "application/json");
    });
    handle("GET", "/metrics", Lane::inline_io, [this](const Request &, Response & res) {
        update_gauges();
        res.set_content(metrics_.prometheus() + status_prometheus(*current(), server_->counters(), capture_counts()) +
                            residency_prometheus(*residency_),
                        "text/plain; version=0.0.4");
    });
    handle("GET", "/stats", Lane::inline_io, [this](const Request &, Response & res) {
        update_gauges();
        auto stats = stats_json(metrics_.to_json(), *current(), cooldown_, capture_counts());
        stats["residency"] = residency_json(*residency_);
        res.set_content(json_text(stats), "application/json");
    });
    server_->handle("GET", "/", Lane::inline_io, [](const Request &, Response & res) {
        res.set_content(dashboard_html(), "text/html; charset=utf-8");
    });
    handle("PUT", "/admin/portfolio", Lane::worker,
           [this](const Request & req, Response & res) { handle_admin_portfolio(req, res); });
    handle("GET", "/evidence", Lane::worker,
           [this](const Request & req, Response & res) { handle_evidence(req, res); });
    handle("POST", "/admin/rollout", Lane::worker,
           [this](const Request & req, Response & res) { handle_admin_rollout(req, res); });
    handle("GET", "/admin/portfolio", Lane::inline_io, [this](const Request & req, Response & res) {
        if (admin_allowed(req, res))
            res.set_content(model::portfolio_to_yaml(current()->portfolio, {}), "application/yaml");
    });
    handle("GET", "/admin/shadow", Lane::inline_io, [this](const Request & req, Response & res) {
        if (admin_allowed(req, res)) res.set_content(json_text(metrics_.to_json()["shadows"]), "application/json");
    });
    return server_->bind(settings_.host, settings_.port);
}

void Gateway::run() { server_->run(); }

void Gateway::stop() {
    if (server_) server_->stop();
}

void Gateway::reply(http::Response & res, const std::variant<json, ApiError> & answer) {
    if (const auto * e = std::get_if<ApiError>(&answer)) return send_error(res, *e);
    res.set_content(json_text(std::get<json>(answer)), "application/json");
}

void Gateway::handle_tokenize(const http::Request & req, http::Response & res, bool detokenize) {
    if (!client_allowed(req, res) || !body_type_allowed(req, res, {"application/json"})) return;
    reply(res, detokenize ? detokenize_answer(*current(), req.body) : tokenize_answer(*current(), req.body));
}

void Gateway::handle_tokenizer_info(const http::Request & req, http::Response & res) {
    if (client_allowed(req, res)) reply(res, tokenizer_info(*current(), req.query_param("model")));
}

const model::Capture * Gateway::capture_policy(const Deployment & dep, const std::string & route) const {
    const model::Route * r = route.empty() ? nullptr : dep.portfolio.find_route(route);
    return r != nullptr && r->capture ? &*r->capture : nullptr;
}

CaptureStore & Gateway::capture_store() {
    const std::lock_guard lock(capture_mutex_);
    if (!capture_) {
        const std::filesystem::path db =
            settings_.capture_db.empty() ? base_dir() / "captures.sqlite" : std::filesystem::path(settings_.capture_db);
        capture_ = std::make_unique<CaptureStore>(db);
        spdlog::info("capturing sampled traffic of routes with capture into {}", db.string());
    }
    return *capture_;
}

void Gateway::record(const model::Capture & policy, const std::string & route, const ApiRequest & r,
                     const Answer & answer, const Generation & g, double seconds) {
    try {
        capture_store().offer(captured_item(route, r, answer, g, seconds), policy);
    } catch (const Error & e) {
        spdlog::error("capture off for this request: {}", e.what());
    }
}

void Gateway::handle_feedback(const http::Request & req, http::Response & res) {
    if (!client_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/json"})) return;
    auto parsed = parse_feedback(req.body);
    if (const auto * e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const auto & fb = std::get<FeedbackRequest>(parsed);
    {
        const std::lock_guard lock(capture_mutex_);
        if (!capture_) {
            return send_error(
                res,
                ApiError{404, "nothing is captured here: no route has capture on, or none has answered yet",
                         "invalid_request_error", "id", "not_captured"});
        }
    }
    if (!capture_store().label(fb.id, fb.correct, fb.expected)) {
        return send_error(res,
                          ApiError{404,
                                   "no captured answer has the id '" + fb.id +
                                       "' (only a sample of the answers of routes with capture is kept)",
                                   "invalid_request_error", "id", "not_captured"});
    }
    res.set_content(json_text({{"status", "recorded"}}), "application/json");
}

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
    Resolution route = std::get<Resolution>(std::move(resolved));
    if (const auto * rt = dep->portfolio.find_route(route.route); rt != nullptr && rt->prefer_loaded && !route.cascade)
        prefer_loaded(*dep, route.chain);
    const AnswerContext ctx{metrics_, cooldown_, started,
                            started + std::chrono::milliseconds(settings_.request_timeout_ms)};
    if (r.echo) return answer_echo(*dep, r, route, res, ctx);
    if (route.cascade) return answer_cascade(*dep, r, route, res, ctx);
    if (r.choice_count() > 1) return answer_choices(*dep, r, route, req, res, ctx);
    if (route.canary) metrics_.canary(route.route);
    if (r.stream) {
        if (streams_.load() >= settings_.max_streams) {
            metrics_.rejected();
            return send_error(
                res,
                ApiError{503,
                         "too many open streams (max_streams " + std::to_string(settings_.max_streams) + ")",
                         "overloaded_error",
                         {},
                         "too_many_streams"});
        }
        in_flight->streaming(streams_);
    }
    GenerationInput input = r.input;
    if (!route.shadow.empty()) input.logprobs = std::max(input.logprobs, ShadowWorker::kTopK);
    // Drawn before generating, so a captured in-process answer comes with its log-probabilities.
    const model::Capture * capture = capture_policy(*dep, route.route);
    if (capture != nullptr && uniform_draw() >= capture->sample) capture = nullptr;
    if (capture != nullptr) input.logprobs = std::max(input.logprobs, 0);
    // What a whole answer is kept for: capture and the shadow. A route with neither copies nothing
    // (the request's JSON is most of a copy: 7% of the gateway's time at saturation).
    Delivered delivered;
    if (capture != nullptr || !route.shadow.empty()) {
        delivered = [this, dep, r, input, route, capture, started](const Answer & answer, Generation g) {
            if (capture != nullptr)
                record(*capture, route.route, r, answer, g,
                       std::chrono::duration<double>(Clock::now() - started).count());
            if (!route.shadow.empty())
                shadows_->enqueue({route.route, route.shadow, answer.model, dep, r, input, std::move(g)});
        };
    }
    answer_one(dep, r, input, route, req, res, ctx, std::move(delivered), std::move(in_flight));
}

}  // namespace switchyard::serve
