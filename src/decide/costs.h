// What serving a model costs and the budgets it must meet: the deployment, the measured cost of a
// candidate, and its one JSON form.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace switchyard::decide {

struct Budgets {
    std::optional<std::uint64_t> memory_bytes;      // peak resident memory while serving
    std::optional<double> p95_latency_ms;           // of one query (see CostScore::p95_latency_ms)
    std::optional<double> cost_per_1k_tokens;       // generated tokens, at the deployment's price
    bool any() const { return memory_bytes || p95_latency_ms || cost_per_1k_tokens; }
};

struct Deployment {
    double price_per_hour = 0;  // hardware price; 0: rank by size instead of cost
    double watts = 15;          // per busy core, for modelled energy
    std::string device = "cpu";
    int threads = 0;
};

struct CostScore {
    bool remote = false;  // served elsewhere: local memory does not apply, latency is the server's
    std::uint64_t file_bytes = 0;
    std::uint64_t peak_rss_bytes = 0;
    double prefill_tokens_per_s = 0;
    double decode_tokens_per_s = 0;
    double ttft_p95_ms = 0;
    double p95_latency_ms = 0;  // TTFT p95 plus the rest of the answer at the median decode speed
    double cost_per_1k_tokens = 0;
    double cost_per_query = 0;
    double joules_per_token = 0;
    std::string energy_source;
};


void to_json(nlohmann::json & out, const CostScore & cost);

}  // namespace switchyard::decide
