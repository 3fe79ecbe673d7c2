#include "serve/status_json.h"

#include "serve/metrics.h"
#include "serve/replica_set.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

namespace switchyard::serve {

using nlohmann::json;

namespace {

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

// Every loaded model with a draft, as (model, what its draft did).
std::vector<std::pair<std::string, engine::DraftStats>> draft_states(const Deployment & dep) {
    std::vector<std::pair<std::string, engine::DraftStats>> out;
    for (const auto & [name, backend] : dep.backends)
        if (const auto stats = backend->draft_stats()) out.emplace_back(name, *stats);
    return out;
}

std::string draft_metrics(const std::vector<std::pair<std::string, engine::DraftStats>> & drafts) {
    std::string out;
    if (drafts.empty()) return out;
    const auto family = [&](const char * name, const char * type, const char * help, auto value) {
        prometheus_family(out, name, type, help);
        for (const auto & [model, stats] : drafts)
            out += fmt::format("{}{{model=\"{}\"}} {}\n", name, prometheus_label(model), value(stats));
    };
    family("switchyard_draft_tokens_total", "counter",
           "Tokens a model's draft proposed for it to verify (speculative decoding), since the model loaded.",
           [](const engine::DraftStats & s) { return s.drafted; });
    family("switchyard_draft_accepted_tokens_total", "counter",
           "Of the draft's tokens, those the model's own sampler took, since the model loaded.",
           [](const engine::DraftStats & s) { return s.accepted; });
    family("switchyard_draft_steps_total", "counter", "Decode steps that verified a draft, since the model loaded.",
           [](const engine::DraftStats & s) { return s.steps; });
    family("switchyard_draft_acceptance_ratio", "gauge", "Accepted over proposed draft tokens (0 before any).",
           [](const engine::DraftStats & s) { return s.acceptance(); });
    return out;
}

std::string edge_metrics(const http::ServerCounters & c) {
    std::string out;
    auto add = [&](const char * name, const char * type, const char * help, auto value) {
        prometheus_family(out, name, type, help);
        out += std::string(name) + " " + std::to_string(value) + "\n";
    };
    add("switchyard_http_connections", "gauge", "Client connections open now.", c.connections);
    add("switchyard_http_busy_workers", "gauge", "Workers handling a request now.", c.busy_workers);
    add("switchyard_http_queued_requests", "gauge", "Requests waiting for a worker.", c.queued);
    add("switchyard_http_refused_busy_total", "counter",
        "Requests answered 503 because every worker was busy and the queue full.", c.refused_busy);
    add("switchyard_http_refused_connections_total", "counter",
        "Connections closed on accept because max connections were open.", c.refused_connections);
    add("switchyard_http_bad_requests_total", "counter",
        "Requests that were malformed, too large or too slow to arrive.", c.bad_requests);
    return out;
}

std::string capture_metrics(const CaptureCounts & counts) {
    if (counts.empty()) return {};
    std::string stored, dropped;
    prometheus_family(stored, "switchyard_capture_items_total", "counter", "Answers captured and written.");
    prometheus_family(dropped, "switchyard_capture_dropped_total", "counter",
                      "Answers sampled for capture but dropped: the writer's queue was full.");
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
            out += std::string(name) + "{model=\"" + model + "\",replica=\"" + state.name + "\"} " +
                std::to_string(value(state)) + "\n";
        }
    };
    family("switchyard_replica_healthy", "gauge", "1 while the replica is in rotation.",
           [](const ReplicaState & s) { return s.healthy ? 1 : 0; });
    family("switchyard_replica_outstanding", "gauge", "Requests the replica is answering now.",
           [](const ReplicaState & s) { return s.outstanding; });
    family("switchyard_replica_requests_total", "counter", "Requests the replica answered.",
           [](const ReplicaState & s) { return s.requests; });
    family("switchyard_replica_failures_total", "counter", "Attempts on the replica that failed.",
           [](const ReplicaState & s) { return s.failures; });
    family("switchyard_replica_latency_seconds_sum", "counter", "Time the replica took over its answered requests.",
           [](const ReplicaState & s) { return s.latency_sum_s; });
    return out;
}

json route_json(const model::Route & r) {
    json route = {{"name", r.name}, {"model", r.model}, {"fallback", r.fallback}};
    if (r.cascade) route["cascade"] = r.cascade->models;
    if (r.canary) route["canary"] = {{"model", r.canary->model}, {"percent", r.canary->percent}};
    if (r.shadow) {
        route["shadow"] = {{"model", r.shadow->model},
                           {"sample", r.shadow->sample},
                           {"min_samples", r.shadow->min_samples},
                           {"promote_at", r.shadow->promote_at ? json(*r.shadow->promote_at) : json()},
                           {"rollback_below", r.shadow->rollback_below ? json(*r.shadow->rollback_below) : json()},
                           {"decision", r.shadow->decision},
                           {"evidence", r.shadow->evidence}};
    }
    if (r.capture) {
        route["capture"] = {{"sample", r.capture->sample},
                            {"max_items", r.capture->max_items},
                            {"retention_days", r.capture->retention_days},
                            {"redact", r.capture->redact}};
    }
    if (!r.note.empty()) route["note"] = r.note;
    if (!r.evidence.empty()) route["evidence"] = r.evidence;
    return route;
}

}  // namespace

json models_json(const Deployment & dep, std::time_t created) {
    json data = json::array();
    for (const auto & m : dep.portfolio.models) {
        const auto & b = *dep.backend(m.name);
        json meta = {{"kind", b.in_process() ? "in_process" : "remote"}};
        if (b.context_length() > 0) meta["n_ctx"] = b.context_length();
        if (b.vocab_size() > 0) meta["n_vocab"] = b.vocab_size();
        data.push_back(
            {{"id", m.name}, {"object", "model"}, {"created", created}, {"owned_by", "switchyard"}, {"meta", meta}});
    }
    for (const auto & r : dep.portfolio.routes) {
        if (dep.portfolio.find_model(r.name) != nullptr) continue;
        data.push_back({{"id", r.name},
                        {"object", "model"},
                        {"created", created},
                        {"owned_by", "switchyard"},
                        {"meta", {{"kind", "route"}}}});
    }
    return {{"object", "list"}, {"data", data}};
}

json health_json(const Deployment & dep, const http::ServerCounters & edge) {
    json load = json::object();
    for (const auto & [name, b] : dep.backends) load[name] = b->load();
    return {{"status", "ok"},
            {"portfolio_generation", dep.generation},
            {"load", load},
            {"connections", edge.connections},
            {"busy_workers", edge.busy_workers},
            {"queued", edge.queued}};
}

json stats_json(json metrics, const Deployment & dep, const Cooldown & cooldown, const CaptureCounts & captured) {
    json models = json::array(), routes = json::array();
    const auto now = Cooldown::Clock::now();
    for (const auto & m : dep.portfolio.models) {
        models.push_back({{"name", m.name},
                          {"kind",
                           !m.replicas.empty()      ? "replicas"
                               : m.endpoint.empty() ? "in_process"
                                                    : "remote"},
                          {"note", m.note},
                          {"cost_per_1k_tokens", m.cost_per_1k_tokens},
                          {"resting", cooldown.resting(m.name, now)}});
        if (const auto draft = dep.backend(m.name)->draft_stats())
            models.back()["draft"] = {{"model", m.draft},
                                      {"drafted_tokens", draft->drafted},
                                      {"accepted_tokens", draft->accepted},
                                      {"steps", draft->steps},
                                      {"acceptance", draft->acceptance()}};
    }
    for (const auto & r : dep.portfolio.routes) routes.push_back(route_json(r));
    metrics["portfolio"] = {{"models", models}, {"routes", routes}, {"default_route", dep.portfolio.default_route}};
    json replicas = json::array();
    for (const auto & [model, state] : replica_states(dep)) {
        replicas.push_back(
            {{"model", model},
             {"replica", state.name},
             {"healthy", state.healthy},
             {"outstanding", state.outstanding},
             {"requests", state.requests},
             {"failures", state.failures},
             {"mean_latency_ms",
              state.requests ? 1000.0 * state.latency_sum_s / static_cast<double>(state.requests) : 0.0}});
    }
    metrics["replicas"] = replicas;
    json by_route = json::object();
    for (const auto & [route, c] : captured) by_route[route] = {{"stored", c.stored}, {"dropped", c.dropped}};
    metrics["capture"] = by_route;
    return metrics;
}

std::string status_prometheus(const Deployment & dep, const http::ServerCounters & edge,
                              const CaptureCounts & captured) {
    return edge_metrics(edge) + replica_metrics(replica_states(dep)) + capture_metrics(captured) +
        draft_metrics(draft_states(dep));
}

}  // namespace switchyard::serve
