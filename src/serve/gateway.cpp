#include "serve/gateway.h"

#include "serve/dashboard.h"
#include "serve/local_backend.h"
#include "serve/remote_backend.h"
#include "serve/shadow.h"
#include "support/error.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <ctime>
#include <random>
#include <sstream>

#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

namespace switchyard::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kShadowTopK = 8;  // top-k kept per position for the shadow's KLD estimate
constexpr std::size_t kShadowQueue = 256;  // mirrored requests waiting beyond this are dropped

double uniform_draw() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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

std::string bearer_token(const httplib::Request & req) {
    const std::string h = req.get_header_value("Authorization");
    return h.starts_with("Bearer ") ? h.substr(7) : std::string();
}

std::string json_text(const json & j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Everything a response needs to say about one answer.
struct Answer {
    std::string id;
    std::time_t created = 0;
    std::string model;
};

json usage_json(const Generation & g) {
    return {{"prompt_tokens", g.prompt_tokens}, {"completion_tokens", g.completion_tokens}, {"total_tokens", g.prompt_tokens + g.completion_tokens}};
}

// The legacy completions `logprobs` object over tokens whose first one may have no log-probability.
struct LegacyLogprobs {
    json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), text_offset = json::array();
    std::size_t offset = 0;

    void add(Backend & backend, engine::Token token, const engine::TokenLogprob * lp) {
        const std::string text = backend.token_text(token);
        tokens.push_back(text);
        text_offset.push_back(offset);
        offset += text.size();
        if (lp == nullptr) {
            token_logprobs.push_back(nullptr);
            top_logprobs.push_back(nullptr);
            return;
        }
        token_logprobs.push_back(lp->logprob);
        json top = json::object();
        for (const auto & t : lp->top) top.emplace(backend.token_text(t.token), t.logprob);  // first (most likely) wins on equal text
        top_logprobs.push_back(top);
    }
    json to_json() const {
        return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", text_offset}};
    }
};

json chat_logprobs(Backend & backend, const Generation & g) {
    json content = json::array();
    for (const auto & t : g.logprobs) {
        json top = json::array();
        for (const auto & alt : t.top) top.push_back({{"token", backend.token_text(alt.token)}, {"logprob", alt.logprob}});
        content.push_back({{"token", backend.token_text(t.token)}, {"logprob", t.logprob}, {"top_logprobs", top}});
    }
    return {{"content", content}};
}

json whole_response(const ApiRequest & r, const Answer & a, Backend & backend, const Generation & g) {
    const bool chat = r.kind == ApiRequest::Kind::chat;
    json choice = {{"index", 0}, {"finish_reason", finish_reason_name(g.finish)}, {"logprobs", nullptr}};
    const bool with_logprobs = r.input.logprobs >= 0 && g.has_logprobs && backend.in_process();
    if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", g.text}};
        if (with_logprobs) choice["logprobs"] = chat_logprobs(backend, g);
    } else {
        choice["text"] = g.text;
        if (with_logprobs) {
            LegacyLogprobs lp;
            for (const auto & t : g.logprobs) lp.add(backend, t.token, &t);
            choice["logprobs"] = lp.to_json();
        }
    }
    return {{"id", a.id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", a.created}, {"model", a.model},
            {"choices", json::array({choice})}, {"usage", usage_json(g)}};
}

std::string sse(const json & j) { return "data: " + json_text(j) + "\n\n"; }

json chunk(const ApiRequest & r, const Answer & a, const std::string * piece, const char * finish, bool first) {
    const bool chat = r.kind == ApiRequest::Kind::chat;
    json choice = {{"index", 0}, {"finish_reason", finish ? json(finish) : json(nullptr)}};
    if (chat) {
        json delta = json::object();
        if (first) delta["role"] = "assistant";
        if (piece) delta["content"] = *piece;
        choice["delta"] = delta;
    } else {
        choice["text"] = piece ? *piece : std::string();
        choice["logprobs"] = nullptr;
    }
    return {{"id", a.id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", a.created}, {"model", a.model},
            {"choices", json::array({choice})}};
}

std::string stream_tail(const ApiRequest & r, const Answer & a, const Generation & g) {
    std::string out = sse(chunk(r, a, nullptr, finish_reason_name(g.finish), false));
    if (r.include_usage) {
        json u = {{"id", a.id}, {"object", r.kind == ApiRequest::Kind::chat ? "chat.completion.chunk" : "text_completion"}, {"created", a.created},
                  {"model", a.model}, {"choices", json::array()}, {"usage", usage_json(g)}};
        out += sse(u);
    }
    return out + "data: [DONE]\n\n";
}

// Collects a whole answer; the failed event when the backend fails on the way.
// Whether the client of a request still waits for its answer. cpp-httplib 0.11.4 tells a handler
// nothing of a hang-up before the answer is written, so the connection's socket is found among the
// process's descriptors by its two ports and polled for the peer's hang-up. Checked at most every
// 10 ms, so quick answers never look.
class ClientWatch {
public:
    explicit ClientWatch(const httplib::Request & req) : local_port_(req.local_port), remote_port_(req.remote_port) {}

    bool gone() {
        const auto now = Clock::now();
        if (now < next_check_) return false;
        next_check_ = now + std::chrono::milliseconds(10);
        if (fd_ < 0) fd_ = find_socket();
        if (fd_ < 0) return false;
        pollfd p{fd_, POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
    }

private:
    static int port_of(const sockaddr_storage & a) {
        if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in &>(a).sin_port);
        if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6 &>(a).sin6_port);
        return -1;
    }

    int find_socket() const {
        DIR * dir = ::opendir("/proc/self/fd");
        if (dir == nullptr) return -1;
        int found = -1;
        while (const dirent * entry = ::readdir(dir)) {
            const int fd = std::atoi(entry->d_name);
            if (fd <= 2) continue;
            sockaddr_storage local{}, peer{};
            socklen_t local_size = sizeof local, peer_size = sizeof peer;
            if (::getsockname(fd, reinterpret_cast<sockaddr *>(&local), &local_size) != 0 || port_of(local) != local_port_) continue;
            if (::getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &peer_size) != 0 || port_of(peer) != remote_port_) continue;
            found = fd;
            break;
        }
        ::closedir(dir);
        return found;
    }

    int local_port_;
    int remote_port_;
    int fd_ = -1;
    Clock::time_point next_check_ = Clock::now() + std::chrono::milliseconds(10);
};

// Waits for the whole answer; a failed event when the stream fails or `watch` sees the client go.
std::variant<Generation, Stream::Event> collect(Stream & stream, Clock::time_point deadline, Clock::time_point * first_at, ClientWatch * watch = nullptr) {
    for (;;) {
        Stream::Event e = stream.next(deadline);
        if (first_at && *first_at == Clock::time_point{}) *first_at = Clock::now();
        if (e.kind == Stream::Event::Kind::done) return std::move(e.result);
        if (e.kind == Stream::Event::Kind::failed) return e;
        if (watch != nullptr && watch->gone()) return Stream::Event{.kind = Stream::Event::Kind::failed, .failure = Failure::client_gone, .message = "the client hung up"};
    }
}

ApiError failure_error(Failure failure, const std::string & message) {
    switch (failure) {
        case Failure::rejected: return ApiError{400, message, "invalid_request_error", {}, {}};
        case Failure::overloaded: return ApiError{429, "every model for this request is busy: " + message, "overloaded_error", {}, "overloaded"};
        case Failure::timeout: return ApiError{504, message, "backend_error", {}, "timeout"};
        case Failure::client_gone: return ApiError{499, message, "client_closed_request", {}, {}};  // never reaches the client
        case Failure::failed: break;
    }
    return ApiError{502, message, "backend_error", {}, "backend_failed"};
}

}  // namespace

struct Gateway::ShadowJob {
    std::string route;
    std::string candidate;
    std::string incumbent;
    std::shared_ptr<const Deployment> deployment;
    ApiRequest request;
    GenerationInput input;
    Generation answer;
};

std::shared_ptr<Backend> make_backend(const model::PortfolioModel & entry, const model::ServerSettings & settings) {
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
    swap(std::move(portfolio));
    shadow_thread_ = std::thread([this] { shadow_loop(); });
}

Gateway::~Gateway() {
    stop();
    {
        const std::lock_guard lock(shadow_mutex_);
        stopping_ = true;
    }
    shadow_ready_.notify_all();
    if (shadow_thread_.joinable()) shadow_thread_.join();
}

std::shared_ptr<const Deployment> Gateway::current() const {
    const std::lock_guard lock(deployment_mutex_);
    return deployment_;
}

void Gateway::swap(model::Portfolio next) {
    const std::lock_guard swap_lock(swap_mutex_);
    const auto old = current();
    auto dep = std::make_shared<Deployment>();
    dep->portfolio = std::move(next);
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
        swap(model::load_portfolio(file_));
        spdlog::warn("reloaded {}", file_.string());
    } catch (const Error & e) {
        spdlog::error("reload failed, the current portfolio stays: {}", e.what());
    }
}

void Gateway::update_gauges() {
    const auto dep = current();
    metrics_.set_gauges(in_flight_.load(), streams_.load(), dep ? dep->generation : 0);
}

void Gateway::send_error(httplib::Response & res, const ApiError & error) {
    res.status = error.status;
    res.set_content(error.body(), "application/json");
}

bool Gateway::client_allowed(const httplib::Request & req, httplib::Response & res) {
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

bool Gateway::admin_allowed(const httplib::Request & req, httplib::Response & res) {
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
    server_ = std::make_unique<httplib::Server>();
    auto & s = *server_;
    // Each open request holds a worker thread (generation blocks it), so size the pool for the
    // concurrent streams rather than the cores; requests beyond it wait for a thread.
    const int threads = std::max(16, settings_.max_streams + 16);
    s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    s.set_payload_max_length(settings_.max_body_bytes);
    s.set_read_timeout(std::chrono::seconds(30));
    s.set_write_timeout(std::chrono::seconds(30));
    s.set_error_handler([this](const httplib::Request & req, httplib::Response & res) {
        if (!res.body.empty()) return;
        if (res.status == 413) {
            metrics_.rejected();
            send_error(res, ApiError{413, "the body is larger than max_body_bytes (" + std::to_string(settings_.max_body_bytes) + ")", "invalid_request_error", {}, "body_too_large"});
        } else if (res.status == 404) {
            send_error(res, ApiError{404, "no such endpoint: " + req.method + " " + req.path, "invalid_request_error", {}, "unknown_url"});
        } else {
            send_error(res, ApiError{res.status, "the request could not be handled", res.status >= 500 ? "server_error" : "invalid_request_error", {}, {}});
        }
    });
    s.set_exception_handler([this](const httplib::Request &, httplib::Response & res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
            std::rethrow_exception(ep);
        } catch (const ApiError & e) {
            send_error(res, e);
            return;
        } catch (const std::exception & e) {
            what = e.what();
        } catch (...) {
        }
        spdlog::error("request failed: {}", what);
        send_error(res, ApiError{500, "internal error: " + what, "server_error", {}, {}});
    });

    s.Post("/v1/chat/completions", [this](const httplib::Request & req, httplib::Response & res) { handle_generate(req, res, ApiRequest::Kind::chat); });
    s.Post("/v1/completions", [this](const httplib::Request & req, httplib::Response & res) { handle_generate(req, res, ApiRequest::Kind::completion); });
    s.Post("/tokenize", [this](const httplib::Request & req, httplib::Response & res) { handle_tokenize(req, res, false); });
    s.Post("/detokenize", [this](const httplib::Request & req, httplib::Response & res) { handle_tokenize(req, res, true); });
    s.Get("/v1/models", [this](const httplib::Request & req, httplib::Response & res) {
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
    });
    s.Get("/health", [this](const httplib::Request &, httplib::Response & res) {
        const auto dep = current();
        json load = json::object();
        for (const auto & [name, b] : dep->backends) load[name] = b->load();
        res.set_content(json_text({{"status", "ok"}, {"portfolio_generation", dep->generation}, {"load", load}}), "application/json");
    });
    s.Get("/metrics", [this](const httplib::Request &, httplib::Response & res) {
        update_gauges();
        res.set_content(metrics_.prometheus(), "text/plain; version=0.0.4");
    });
    s.Get("/stats", [this](const httplib::Request &, httplib::Response & res) {
        update_gauges();
        const auto dep = current();
        json j = metrics_.to_json();
        json models = json::array(), routes = json::array();
        for (const auto & m : dep->portfolio.models) {
            models.push_back({{"name", m.name}, {"kind", m.endpoint.empty() ? "in_process" : "remote"}, {"note", m.note},
                              {"cost_per_1k_tokens", m.cost_per_1k_tokens}, {"resting", cooldown_.resting(m.name, Clock::now())}});
        }
        for (const auto & r : dep->portfolio.routes) {
            json route = {{"name", r.name}, {"model", r.model}, {"fallback", r.fallback}};
            if (r.cascade) route["cascade"] = r.cascade->models;
            if (r.canary) route["canary"] = {{"model", r.canary->model}, {"percent", r.canary->percent}};
            if (r.shadow) route["shadow"] = {{"model", r.shadow->model}, {"sample", r.shadow->sample}};
            routes.push_back(route);
        }
        j["portfolio"] = {{"models", models}, {"routes", routes}, {"default_route", dep->portfolio.default_route}};
        res.set_content(json_text(j), "application/json");
    });
    s.Get("/", [](const httplib::Request &, httplib::Response & res) { res.set_content(dashboard_html(), "text/html; charset=utf-8"); });
    s.Put("/admin/portfolio", [this](const httplib::Request & req, httplib::Response & res) { handle_admin_portfolio(req, res); });
    s.Get("/admin/portfolio", [this](const httplib::Request & req, httplib::Response & res) {
        if (!admin_allowed(req, res)) return;
        res.set_content(model::portfolio_to_yaml(current()->portfolio, {}), "application/yaml");
    });
    s.Get("/admin/shadow", [this](const httplib::Request & req, httplib::Response & res) {
        if (!admin_allowed(req, res)) return;
        res.set_content(json_text(metrics_.to_json()["shadows"]), "application/json");
    });

    // Latency: small SSE writes must not wait for Nagle; clients keep their connections; and
    // httplib's listen backlog of 5 (compiled into the library) is raised once bound, since a
    // burst of new connections beyond it waits a whole SYN retransmit (1 s).
    s.set_tcp_nodelay(true);
    s.set_keep_alive_max_count(100000);
    auto listen_fd = std::make_shared<int>(-1);
    s.set_socket_options([listen_fd](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        *listen_fd = sock;
    });
    int port = settings_.port;
    if (port == 0) {
        port = s.bind_to_any_port(settings_.host);
        if (port < 0) throw Error("cannot listen on " + settings_.host + " (no free port)");
    } else if (!s.bind_to_port(settings_.host, port)) {
        throw Error("cannot listen on " + settings_.host + ":" + std::to_string(port) + " (in use, or not an address of this machine)");
    }
    if (*listen_fd >= 0) ::listen(*listen_fd, SOMAXCONN);
    return port;
}

void Gateway::run() { server_->listen_after_bind(); }

void Gateway::stop() {
    if (server_) server_->stop();
}

std::shared_ptr<Backend> Gateway::backend_for_tools(const Deployment & dep, const std::string & model, httplib::Response & res) {
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

void Gateway::handle_tokenize(const httplib::Request & req, httplib::Response & res, bool detokenize) {
    if (!client_allowed(req, res)) return;
    const auto dep = current();
    if (detokenize) {
        auto parsed = parse_detokenize(req.body);
        if (const auto * e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
        const auto & r = std::get<DetokenizeRequest>(parsed);
        const auto backend = backend_for_tools(*dep, r.model, res);
        if (backend) res.set_content(json_text({{"content", backend->detokenize(r.tokens)}}), "application/json");
        return;
    }
    auto parsed = parse_tokenize(req.body);
    if (const auto * e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const auto & r = std::get<TokenizeRequest>(parsed);
    const auto backend = backend_for_tools(*dep, r.model, res);
    if (backend) res.set_content(json_text({{"tokens", backend->tokenize(r.content, r.add_special)}}), "application/json");
}

void Gateway::handle_admin_portfolio(const httplib::Request & req, httplib::Response & res) {
    if (!admin_allowed(req, res)) return;
    model::Portfolio next;
    try {
        // Relative paths in a pushed portfolio resolve against the file serve was started with.
        const auto base = file_.empty() ? std::filesystem::current_path() : std::filesystem::absolute(file_).parent_path();
        next = model::parse_portfolio(req.body, "PUT /admin/portfolio", base);
    } catch (const Error & e) {
        return send_error(res, bad_request(e.what()));
    }
    try {
        swap(std::move(next));
    } catch (const Error & e) {
        return send_error(res, ApiError{422, std::string("the portfolio could not be loaded, the current one stays: ") + e.what(), "invalid_request_error", {}, "load_failed"});
    }
    res.set_content(json_text({{"status", "swapped"}, {"portfolio_generation", current()->generation}}), "application/json");
}

namespace {

// Counts a request (or stream) while it is open; shared with a stream's content provider.
struct InFlight {
    std::atomic<int> & n;
    explicit InFlight(std::atomic<int> & c) : n(c) { ++n; }
    ~InFlight() { --n; }
};

}  // namespace

void Gateway::handle_generate(const httplib::Request & req, httplib::Response & res, ApiRequest::Kind kind) {
    const auto started = Clock::now();
    auto in_flight = std::make_shared<InFlight>(in_flight_);
    if (!client_allowed(req, res)) return;
    auto parsed = parse_request(kind, req.body, Limits{settings_.max_tokens});
    if (const auto * e = std::get_if<ApiError>(&parsed)) {
        metrics_.rejected();
        return send_error(res, *e);
    }
    auto r = std::get<ApiRequest>(std::move(parsed));
    const auto dep = current();
    std::string task = req.get_header_value("X-Switchyard-Task");
    if (task.empty()) task = r.task;
    auto resolved = dep->router->resolve(r.model, task, r.input.routing_text(), uniform_draw(), uniform_draw());
    if (const auto * e = std::get_if<ApiError>(&resolved)) {
        metrics_.rejected();
        return send_error(res, *e);
    }
    const Resolution route = std::get<Resolution>(std::move(resolved));
    if (r.echo) return handle_echo(dep, r, route, res);
    if (route.cascade) return handle_cascade(dep, r, route, res);
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
    if (!route.shadow.empty()) input.logprobs = std::max(input.logprobs, kShadowTopK);
    const auto deadline = started + std::chrono::milliseconds(settings_.request_timeout_ms);
    const auto chain = cooldown_.order(route.chain, started);
    std::optional<ApiError> last_error;
    ClientWatch watch(req);
    for (std::size_t i = 0; i < chain.size(); ++i) {
        const std::string & name = chain[i];
        if (i > 0) metrics_.fallback(route.route);
        const auto backend = dep->backends.at(name);
        const auto stream = backend->start(r, input);
        StreamGuard guard{stream};
        Clock::time_point first_at{};
        Stream::Event first = stream->next(deadline);
        first_at = Clock::now();
        if (first.kind == Stream::Event::Kind::failed) {
            if (first.failure == Failure::rejected) return send_error(res, failure_error(first.failure, first.message));
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
                auto rest = collect(*stream, deadline, nullptr, &watch);
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
            if (!route.shadow.empty()) enqueue_shadow({route.route, route.shadow, name, dep, r, input, std::move(g)});
            return;
        }
        // Streaming: committed to this model from here on.
        cooldown_.succeeded(name);
        res.set_header("X-Switchyard-Model", name);
        if (!route.route.empty()) res.set_header("X-Switchyard-Route", route.route);
        res.set_header("Cache-Control", "no-cache");
        guard.stream = nullptr;  // the provider owns cancellation now
        auto pending = std::make_shared<Stream::Event>(std::move(first));
        res.set_chunked_content_provider(
            "text/event-stream",
            [this, dep, backend, stream, pending, r, input, answer, route, cost, started, first_at, deadline, in_flight, stream_slot](std::size_t, httplib::DataSink & sink) {
                StreamGuard cancel_on_exit{stream};
                auto write = [&](const std::string & s) { return sink.write(s.data(), s.size()); };
                const std::string empty;
                if (r.kind == ApiRequest::Kind::chat && !write(sse(chunk(r, answer, &empty, nullptr, true)))) return false;
                Stream::Event e = std::move(*pending);
                for (;;) {
                    if (e.kind == Stream::Event::Kind::piece) {
                        if (!write(sse(chunk(r, answer, &e.text, nullptr, false)))) return false;  // client gone: the guard cancels
                    } else if (e.kind == Stream::Event::Kind::done) {
                        // Counted before the client sees [DONE], so what it reads next in /metrics includes it.
                        metrics_.answered(route.route, answer.model, e.result.prompt_tokens, e.result.completion_tokens, cost,
                                          std::chrono::duration<double>(first_at - started).count(), seconds_since(started));
                        write(stream_tail(r, answer, e.result));
                        sink.done();
                        cancel_on_exit.stream = nullptr;
                        if (!route.shadow.empty()) enqueue_shadow({route.route, route.shadow, answer.model, dep, r, input, std::move(e.result)});
                        return true;
                    } else {
                        // Too late to fall back: the client has the first bytes. Say so in the stream.
                        metrics_.attempt_failed(answer.model);
                        metrics_.route_failed(route.route);
                        write("data: " + failure_error(e.failure, answer.model + ": " + e.message).body() + "\n\n");
                        write("data: [DONE]\n\n");
                        sink.done();
                        return true;
                    }
                    e = stream->next(deadline);
                }
            });
        return;
    }
    metrics_.route_failed(route.route);
    send_error(res, last_error.value_or(ApiError{503, "no model is available for this request", "overloaded_error", {}, "unavailable"}));
}

void Gateway::handle_cascade(const std::shared_ptr<const Deployment> & dep, const ApiRequest & r, const Resolution & route, httplib::Response & res) {
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::milliseconds(settings_.request_timeout_ms);
    GenerationInput input = r.input;
    input.logprobs = std::max(input.logprobs, 0);
    std::optional<ApiError> last_error;
    for (std::size_t i = 0; i < route.chain.size(); ++i) {
        const std::string & name = route.chain[i];
        const auto backend = dep->backends.at(name);
        const auto stream = backend->start(r, input);
        StreamGuard guard{stream};
        Clock::time_point first_at{};
        auto got = collect(*stream, deadline, &first_at);
        if (auto * e = std::get_if<Stream::Event>(&got)) {
            if (e->failure == Failure::rejected) return send_error(res, failure_error(e->failure, e->message));
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
            const std::string body = sse(chunk(r, answer, &g.text, nullptr, true)) + stream_tail(r, answer, g);
            res.set_content(body, "text/event-stream");
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

void Gateway::handle_echo(const std::shared_ptr<const Deployment> & dep, const ApiRequest & r, const Resolution & route, httplib::Response & res) {
    const auto started = Clock::now();
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
    const std::vector<engine::Token> tokens = r.input.prompt_tokens.empty() ? backend->tokenize(r.input.prompt, true) : r.input.prompt_tokens;
    const std::string prompt_text = r.input.prompt_tokens.empty() ? r.input.prompt : backend->detokenize(tokens);
    Generation g;
    if (r.input.max_tokens > 0) {
        GenerationInput input = r.input;
        input.prompt = prompt_text;
        input.prompt_tokens.clear();
        const auto stream = backend->start(r, input);
        StreamGuard guard{stream};
        auto got = collect(*stream, started + std::chrono::milliseconds(settings_.request_timeout_ms), nullptr);
        if (auto * e = std::get_if<Stream::Event>(&got)) return send_error(res, failure_error(e->failure, name + ": " + e->message));
        g = std::get<Generation>(std::move(got));
    }
    json choice = {{"index", 0}, {"text", prompt_text + g.text}, {"finish_reason", finish_reason_name(g.finish)}, {"logprobs", nullptr}};
    if (r.input.logprobs >= 0) {
        const engine::ScoreResult scored = backend->score_prompt(tokens, r.input.logprobs);
        LegacyLogprobs lp;
        for (std::size_t i = 0; i < tokens.size(); ++i) lp.add(*backend, tokens[i], i == 0 ? nullptr : &scored.tokens.at(i - 1));
        for (const auto & t : g.logprobs) lp.add(*backend, t.token, &t);
        choice["logprobs"] = lp.to_json();
    }
    g.prompt_tokens = static_cast<int>(tokens.size());
    const Answer answer{new_response_id(r.kind), std::time(nullptr), name};
    res.set_header("X-Switchyard-Model", name);
    if (!route.route.empty()) res.set_header("X-Switchyard-Route", route.route);
    res.set_content(json_text({{"id", answer.id}, {"object", "text_completion"}, {"created", answer.created}, {"model", name},
                               {"choices", json::array({choice})}, {"usage", usage_json(g)}}),
                    "application/json");
    metrics_.answered(route.route, name, g.prompt_tokens, g.completion_tokens, dep->portfolio.find_model(name)->cost_per_1k_tokens,
                      seconds_since(started), seconds_since(started));
}

void Gateway::enqueue_shadow(ShadowJob job) {
    {
        const std::lock_guard lock(shadow_mutex_);
        // Shadowing must never slow the client down: a backlog means samples are dropped.
        if (shadow_queue_.size() >= kShadowQueue) return;
        shadow_queue_.push_back(std::move(job));
    }
    shadow_ready_.notify_one();
}

void Gateway::shadow_loop() {
    for (;;) {
        ShadowJob job;
        {
            std::unique_lock lock(shadow_mutex_);
            shadow_ready_.wait(lock, [&] { return stopping_ || !shadow_queue_.empty(); });
            if (stopping_) return;
            job = std::move(shadow_queue_.front());
            shadow_queue_.pop_front();
        }
        const auto & dep = *job.deployment;
        const auto candidate = dep.backends.at(job.candidate);
        const auto incumbent = dep.backends.at(job.incumbent);
        const auto stream = candidate->start(job.request, job.input);
        StreamGuard guard{stream};
        auto got = collect(*stream, Clock::now() + std::chrono::milliseconds(settings_.request_timeout_ms), nullptr);
        if (std::get_if<Stream::Event>(&got)) {
            metrics_.shadow_sample(job.route, job.candidate, true, 0, 0, nullptr);
            continue;
        }
        const Generation & shadow = std::get<Generation>(got);
        const Generation & answer = job.answer;
        const bool same_vocab = candidate->in_process() && incumbent->in_process() && candidate->vocab_size() == incumbent->vocab_size();
        double agreement;
        std::optional<double> kld;
        if (same_vocab && answer.has_logprobs && shadow.has_logprobs) {
            agreement = positional_agreement<engine::Token>(answer.tokens, shadow.tokens);
            // KLD on the incumbent's own tokens: the candidate scores the incumbent's answer.
            if (auto * local = dynamic_cast<LocalBackend *>(candidate.get()); local != nullptr && !answer.tokens.empty()) {
                try {
                    std::vector<engine::Token> seq = local->prompt_tokens(job.input);
                    seq.insert(seq.end(), answer.tokens.begin(), answer.tokens.end());
                    if (static_cast<int>(seq.size()) <= local->context_length()) {
                        const auto scored = local->score_prompt(seq, kShadowTopK);
                        const auto tail = std::span(scored.tokens).subspan(scored.tokens.size() - answer.tokens.size());
                        kld = topk_kld(answer.logprobs, tail, local->vocab_size());
                    }
                } catch (const ApiError & e) {
                    spdlog::debug("shadow KLD skipped: {}", e.message);
                }
            }
        } else {
            const auto a = words(answer.text), b = words(shadow.text);
            agreement = positional_agreement<std::string>(a, b);
        }
        const ShadowCounters totals = metrics_.shadow_sample(job.route, job.candidate, false, answer.text == shadow.text ? 1.0 : 0.0, agreement, kld ? &*kld : nullptr);
        const auto now_dep = current();
        const model::Route * route = now_dep->portfolio.find_route(job.route);
        if (route == nullptr || !route->shadow || route->shadow->model != job.candidate) continue;
        const auto verdict = shadow_verdict(*route->shadow, totals.samples, totals.agreement());
        if (verdict != ShadowVerdict::keep) apply_verdict(job.route, job.candidate, verdict == ShadowVerdict::promote);
    }
}

void Gateway::apply_verdict(const std::string & route_name, const std::string & candidate, bool promote) {
    model::Portfolio next = current()->portfolio;
    for (auto & route : next.routes) {
        if (route.name != route_name || !route.shadow || route.shadow->model != candidate) continue;
        route.shadow.reset();
        if (promote) {
            // The incumbent stays reachable as the first fallback.
            auto & fb = route.fallback;
            fb.erase(std::remove(fb.begin(), fb.end(), candidate), fb.end());
            if (std::find(fb.begin(), fb.end(), route.model) == fb.end()) fb.insert(fb.begin(), route.model);
            route.model = candidate;
        }
        try {
            swap(std::move(next));
            metrics_.shadow_state(route_name, promote ? "promoted" : "rolled back");
            spdlog::warn("route {}: shadow {} {}", route_name, candidate, promote ? "promoted" : "rolled back");
        } catch (const Error & e) {
            spdlog::error("route {}: shadow verdict not applied: {}", route_name, e.what());
        }
        return;
    }
}

}  // namespace switchyard::serve
