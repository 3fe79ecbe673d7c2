// What the gateway's status endpoints say, as pure functions of the deployment and its counters:
// GET /v1/models, /health and /stats as JSON, and the figures GET /metrics adds to Metrics' own.
#pragma once

#include "serve/capture.h"
#include "serve/deployment.h"
#include "serve/http_server.h"
#include "serve/router.h"

#include <nlohmann/json.hpp>

#include <ctime>
#include <map>
#include <string>

namespace switchyard::serve {

using CaptureCounts = std::map<std::string, CaptureStore::Counts>;  // per route

// GET /v1/models: every model, then every route that is not also a model's name.
nlohmann::json models_json(const Deployment & dep, std::time_t created);

nlohmann::json health_json(const Deployment & dep, const http::ServerCounters & edge);

// GET /stats (the dashboard's): `metrics` (Metrics::to_json()) with the portfolio, its replicas
// and its captures added.
nlohmann::json stats_json(nlohmann::json metrics, const Deployment & dep, const Cooldown & cooldown,
                          const CaptureCounts & captured);

// The HTTP edge's, the replicas' and the captures' figures, in the Prometheus text format.
std::string status_prometheus(const Deployment & dep, const http::ServerCounters & edge,
                              const CaptureCounts & captured);

}  // namespace switchyard::serve
