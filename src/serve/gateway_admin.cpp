// The gateway's admin API: the portfolio read and swapped (PUT/GET /admin/portfolio), a plan's
// choice rolled out as a shadow (POST /admin/rollout), the shadows' verdicts applied, and the
// plan report behind a route (GET /evidence). The rest of the Gateway is in gateway.cpp.
#include "serve/gateway.h"

#include "serve/access.h"
#include "serve/admin_api.h"
#include "serve/answer.h"
#include "serve/rollout.h"
#include "support/atomic_file.h"
#include "support/error.h"

#include <spdlog/spdlog.h>

namespace switchyard::serve {

bool Gateway::admin_allowed(const http::Request & req, http::Response & res) {
    const auto refused = check_admin_token(req, admin_token_, settings_.admin_token_env);
    if (refused) send_error(res, *refused);
    return !refused;
}

std::optional<ApiError> Gateway::outside_admin_scope(const model::Portfolio & next) const {
    const std::lock_guard lock(admin_scope_mutex_);
    if (auto outside = admin_scope_.violation(next))
        return ApiError{403, *outside, "permission_error", {}, "outside_admin_scope"};
    return std::nullopt;
}

// The plan report behind a route's shadow, or behind its model once promoted: what the dashboard links to.
void Gateway::handle_evidence(const http::Request & req, http::Response & res) {
    const std::string route_name = req.query_param("route");
    const model::Route * route = current()->portfolio.find_route(route_name);
    const std::string file = route == nullptr               ? ""
        : route->shadow && !route->shadow->evidence.empty() ? route->shadow->evidence
                                                            : route->evidence;
    // A plan's report only: what a portfolio names here is served without a token.
    if (file.empty() || std::filesystem::path(file).extension() != ".html")
        return send_error(res,
                          ApiError{404, "no plan report for route '" + route_name + "' (GET /evidence?route=NAME)",
                                   "invalid_request_error", "route", "not_found"});
    try {
        res.set_content(read_whole_file(file, "plan report"), "text/html; charset=utf-8");
    } catch (const Error & e) {
        send_error(res, ApiError{404, e.what(), "invalid_request_error", "route", "not_found"});
    }
}

void Gateway::handle_admin_portfolio(const http::Request & req, http::Response & res) {
    if (!admin_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/yaml", "application/x-yaml", "text/yaml", "application/json"}))
        return;
    model::Portfolio next;
    try {
        // Relative paths in a pushed portfolio resolve against the file serve was started with.
        next = model::parse_portfolio(req.body, "PUT /admin/portfolio", base_dir());
    } catch (const Error & e) {
        return send_error(res, bad_request(e.what()));
    }
    if (const auto outside = outside_admin_scope(next)) return send_error(res, *outside);
    try {
        swap(std::move(next));
    } catch (const Error & e) {
        return send_error(res,
                          ApiError{422,
                                   std::string("the portfolio could not be loaded, the current one stays: ") + e.what(),
                                   "invalid_request_error",
                                   {},
                                   "load_failed"});
    }
    res.set_content(json_text({{"status", "swapped"}, {"portfolio_generation", current()->generation}}),
                    "application/json");
}

void Gateway::handle_admin_rollout(const http::Request & req, http::Response & res) {
    if (!admin_allowed(req, res)) return;
    if (!body_type_allowed(req, res, {"application/json"})) return;
    auto parsed = parse_rollout(req.body);
    if (const auto * e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const auto & ask = std::get<RolloutRequest>(parsed);
    Recommendation rec;
    try {
        // Relative folders resolve as a pushed portfolio's paths do.
        rec = read_recommendation((base_dir() / ask.plan).lexically_normal(), ask.task_class);
    } catch (const Error & e) {
        return send_error(res, bad_request(e.what(), "plan"));
    }
    std::string incumbent;
    try {
        update([&](const model::Portfolio & now) -> std::optional<model::Portfolio> {
            model::Portfolio next = with_rollout(now, ask.route, rec, ask.thresholds);
            if (auto outside = outside_admin_scope(next)) throw *outside;
            incumbent = next.find_route(ask.route)->model;
            return next;
        });
    } catch (const ApiError & e) {
        return send_error(res, e);
    } catch (const RolloutConflict & e) {
        return send_error(res, ApiError{409, e.what(), "invalid_request_error", {}, "rollout_conflict"});
    } catch (const Error & e) {
        return send_error(res,
                          ApiError{422,
                                   std::string("the candidate could not be loaded, the portfolio stays: ") + e.what(),
                                   "invalid_request_error",
                                   {},
                                   "load_failed"});
    }
    spdlog::warn("route {}: shadowing {} (plan's choice for class {}) against {}", ask.route, rec.model.name,
                 ask.task_class, incumbent);
    const model::Shadow & t = ask.thresholds;
    res.set_content(json_text({{"status", "shadowing"},
                               {"route", ask.route},
                               {"candidate", rec.model.name},
                               {"incumbent", incumbent},
                               {"decision", rec.decision},
                               {"evidence", rec.evidence.string()},
                               {"min_samples", t.min_samples},
                               {"promote_at", *t.promote_at},
                               {"rollback_below", *t.rollback_below},
                               {"portfolio_generation", current()->generation}}),
                    "application/json");
}

void Gateway::apply_verdict(const std::string & route_name, const std::string & candidate, bool promote) {
    bool applied = false;
    try {
        update([&](const model::Portfolio & now) {
            const auto counters = metrics_.shadows();
            const auto c = counters.find(route_name);
            auto next = with_verdict(now, route_name, candidate, promote, c == counters.end() ? nullptr : &c->second);
            applied = next.has_value();
            return next;
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
