// Gateway metrics per model and route: counters, latency histograms, cost and shadow agreement,
// as Prometheus text (GET /metrics) and JSON (GET /stats, read by the dashboard).
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace switchyard::serve {

// Cumulative buckets, Prometheus style.
struct Histogram {
    static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1,     2.5,  10,    60};
    std::array<std::uint64_t, bounds.size()> counts{};
    std::uint64_t count = 0;
    double sum = 0;
    void observe(double seconds);
};

struct ModelCounters {
    std::uint64_t requests = 0;  // answered by this model
    std::uint64_t errors = 0;  // attempts on this model that failed
    std::uint64_t tokens_in = 0;
    std::uint64_t tokens_out = 0;
    double cost = 0;  // tokens x cost_per_1k_tokens / 1000
    Histogram ttft;
    Histogram total;
};

struct RouteCounters {
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;  // requests the route could not answer
    std::uint64_t fallbacks = 0;  // times a request moved on to the next model
    std::uint64_t escalations = 0;  // cascade steps
    std::uint64_t canary = 0;
};

// Agreement between a route's model and its shadow candidate over the mirrored requests.
struct ShadowCounters {
    std::string candidate;
    std::uint64_t samples = 0;
    std::uint64_t failures = 0;  // the candidate could not answer
    double exact_sum = 0;
    double agreement_sum = 0;
    std::uint64_t kld_samples = 0;
    double kld_sum = 0;
    std::string state = "shadowing";  // shadowing, promoted, rolled back

    double exact_rate() const { return samples ? exact_sum / static_cast<double>(samples) : 0; }
    double agreement() const { return samples ? agreement_sum / static_cast<double>(samples) : 0; }
};

class Metrics {
public:
    void answered(const std::string & route, const std::string & model, int tokens_in, int tokens_out,
                  double cost_per_1k, double ttft_s, double total_s);
    void attempt_failed(const std::string & model);
    void route_failed(const std::string & route);
    void fallback(const std::string & route);
    void escalated(const std::string & route);
    void canary(const std::string & route);
    void rejected();  // requests refused before routing (bad input, limits)
    void client_gone();  // a client hung up before its (non-streamed) answer was ready
    // Returns the route's totals after adding this sample.
    ShadowCounters shadow_sample(const std::string & route, const std::string & candidate, bool failed, double exact,
                                 double agreement, const double * kld);
    void shadow_state(const std::string & route, const std::string & state);
    void shadow_dropped();  // a mirrored request dropped because the shadow queue was full
    std::map<std::string, ShadowCounters> shadows() const;

    void set_gauges(int in_flight, int streams, std::uint64_t generation);

    std::string prometheus() const;
    nlohmann::json to_json() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, ModelCounters> models_;
    std::map<std::string, RouteCounters> routes_;
    std::map<std::string, ShadowCounters> shadows_;
    std::uint64_t rejected_ = 0;
    std::uint64_t clients_gone_ = 0;
    std::uint64_t shadow_dropped_ = 0;
    int in_flight_ = 0;
    int streams_ = 0;
    std::uint64_t generation_ = 0;
};

// Appends a metric family's "# HELP" and "# TYPE" lines in the Prometheus text format.
void prometheus_family(std::string & out, const char * name, const char * type, const char * help);
// Appends a histogram's buckets, sum and count under `labels` ("model=\"a\"").
void prometheus_histogram(std::string & out, const char * name, const std::string & labels, const Histogram & h);
// A label value escaped: backslash, quote and newline.
std::string prometheus_label(const std::string & value);

}  // namespace switchyard::serve
