// Gateway: the HTTP server behind `switchyard serve`: OpenAI endpoints, routing with fallback,
// cascades, canaries and shadows over a portfolio that can be swapped while requests run. It
// checks, parses and routes; serve/answer.h answers, gateway_admin.cpp holds the admin API.
#pragma once

#include "model/portfolio.h"
#include "serve/admin_scope.h"
#include "serve/backend.h"
#include "serve/capture.h"
#include "serve/openai_response.h"
#include "serve/deployment.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/residency.h"
#include "serve/router.h"
#include "serve/shadow_worker.h"

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace switchyard::serve {

// Makes the backend for a portfolio entry (loads local models); tests substitute stubs.
using BackendFactory =
    std::function<std::shared_ptr<Backend>(const model::PortfolioModel &, const model::ServerSettings &)>;
std::shared_ptr<Backend> make_backend(const model::PortfolioModel & entry, const model::ServerSettings & settings);

class Gateway {
public:
    // `portfolio.server` holds the effective settings (the CLI's flags already applied); they stay
    // fixed for the gateway's life. `file` is re-read by reload() (SIGHUP); empty when none.
    // Loads every model; throws switchyard::Error when one cannot be loaded.
    Gateway(model::Portfolio portfolio, std::filesystem::path file, BackendFactory factory = make_backend);
    ~Gateway();
    Gateway(const Gateway &) = delete;
    Gateway & operator=(const Gateway &) = delete;

    // Binds host:port (port 0: any free port) and returns the port; throws switchyard::Error.
    int bind();
    void run();  // serves until stop()
    void stop();

    // Loads `next` beside the current portfolio, reusing backends whose entry is unchanged, then
    // switches; the old one drains. Throws switchyard::Error (the current one stays).
    void swap(model::Portfolio next);
    // swap() to what `change` makes of the current portfolio, read under the same lock, so a
    // concurrent swap (PUT, SIGHUP) is never lost; `change` returns nullopt to keep it.
    void update(const std::function<std::optional<model::Portfolio>(const model::Portfolio &)> & change);
    // Re-reads the portfolio file (SIGHUP). Errors are logged; the current portfolio stays.
    void reload();

    std::shared_ptr<const Deployment> current() const;
    const Metrics & metrics() const { return metrics_; }
    const Residency & residency() const { return *residency_; }

private:
    struct InFlight;
    void handle_generate(const http::Request & req, http::Response & res, ApiRequest::Kind kind);
    void handle_tokenize(const http::Request & req, http::Response & res, bool detokenize);
    void handle_tokenizer_info(const http::Request & req, http::Response & res);
    void handle_admin_portfolio(const http::Request & req, http::Response & res);
    void handle_admin_rollout(const http::Request & req, http::Response & res);
    void handle_evidence(const http::Request & req, http::Response & res);
    void handle_feedback(const http::Request & req, http::Response & res);
    // The checks: each answers the refusal itself and returns false.
    bool client_allowed(const http::Request & req, http::Response & res);
    bool admin_allowed(const http::Request & req, http::Response & res);
    bool body_type_allowed(const http::Request & req, http::Response & res,
                           std::initializer_list<std::string_view> types);
    std::optional<ApiError> outside_admin_scope(const model::Portfolio & next) const;
    void reply(http::Response & res, const std::variant<nlohmann::json, ApiError> & answer);
    // Where relative paths resolve (a pushed portfolio's, a rollout's plan folder, the capture
    // database): beside the portfolio file serve was started with, else the working directory.
    std::filesystem::path base_dir() const;

    const model::Capture * capture_policy(const Deployment & dep, const std::string & route) const;
    CaptureStore & capture_store();  // opened on first use
    std::map<std::string, CaptureStore::Counts> capture_counts() const;
    void record(const model::Capture & policy, const std::string & route, const ApiRequest & r, const Answer & answer,
                const Generation & g, double seconds);

    // The backend of a portfolio entry: an in-process model under the residency, or the factory's.
    std::shared_ptr<Backend> make(const model::PortfolioModel & entry) const;
    void apply_verdict(const std::string & route, const std::string & candidate, bool promote);
    void update_gauges();

    model::ServerSettings settings_;
    std::filesystem::path file_;
    BackendFactory factory_;
    std::shared_ptr<Residency> residency_;  // before the deployments: their backends use it
    std::string admin_token_;
    std::vector<std::string> api_keys_;
    mutable std::mutex admin_scope_mutex_;
    AdminScope admin_scope_;  // widened only by re-reading the started file (SIGHUP)

    mutable std::mutex deployment_mutex_;
    std::shared_ptr<const Deployment> deployment_;
    std::mutex swap_mutex_;  // one swap at a time

    Metrics metrics_;
    Cooldown cooldown_;
    std::atomic<int> in_flight_{0};
    std::atomic<int> streams_{0};
    std::unique_ptr<http::Server> server_;

    std::unique_ptr<ShadowWorker> shadows_;
    mutable std::mutex capture_mutex_;
    std::unique_ptr<CaptureStore> capture_;
};

}  // namespace switchyard::serve
