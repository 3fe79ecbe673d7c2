#include "decide/costs.h"

#include <nlohmann/json.hpp>

namespace switchyard::decide {

void to_json(nlohmann::json & out, const CostScore & c) {
    out = {{"remote", c.remote}, {"file_bytes", c.file_bytes}, {"peak_rss_bytes", c.peak_rss_bytes}, {"prefill_tokens_per_s", c.prefill_tokens_per_s},
           {"decode_tokens_per_s", c.decode_tokens_per_s}, {"ttft_p95_ms", c.ttft_p95_ms}, {"p95_latency_ms", c.p95_latency_ms},
           {"cost_per_1k_tokens", c.cost_per_1k_tokens}, {"cost_per_query", c.cost_per_query}, {"joules_per_token", c.joules_per_token},
           {"energy_source", c.energy_source}};
}

}  // namespace switchyard::decide
