#include "serve/metrics.h"

#include <fmt/format.h>

namespace switchyard::serve {

void Histogram::observe(double seconds) {
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (seconds <= bounds[i]) ++counts[i];
    }
    ++count;
    sum += seconds;
}

void Metrics::answered(const std::string & route, const std::string & model, int tokens_in, int tokens_out,
                       double cost_per_1k, double ttft_s, double total_s) {
    const std::lock_guard lock(mutex_);
    auto & m = models_[model];
    ++m.requests;
    m.tokens_in += static_cast<std::uint64_t>(std::max(tokens_in, 0));
    m.tokens_out += static_cast<std::uint64_t>(std::max(tokens_out, 0));
    m.cost += (tokens_in + tokens_out) * cost_per_1k / 1000.0;
    m.ttft.observe(ttft_s);
    m.total.observe(total_s);
    if (!route.empty()) ++routes_[route].requests;
}

void Metrics::attempt_failed(const std::string & model) {
    const std::lock_guard lock(mutex_);
    ++models_[model].errors;
}

void Metrics::route_failed(const std::string & route) {
    const std::lock_guard lock(mutex_);
    ++routes_[route].errors;
}

void Metrics::fallback(const std::string & route) {
    const std::lock_guard lock(mutex_);
    ++routes_[route].fallbacks;
}

void Metrics::escalated(const std::string & route) {
    const std::lock_guard lock(mutex_);
    ++routes_[route].escalations;
}

void Metrics::canary(const std::string & route) {
    const std::lock_guard lock(mutex_);
    ++routes_[route].canary;
}

void Metrics::rejected() {
    const std::lock_guard lock(mutex_);
    ++rejected_;
}

void Metrics::client_gone() {
    const std::lock_guard lock(mutex_);
    ++clients_gone_;
}

ShadowCounters Metrics::shadow_sample(const std::string & route, const std::string & candidate, bool failed,
                                      double exact, double agreement, const double * kld) {
    const std::lock_guard lock(mutex_);
    auto & s = shadows_[route];
    if (s.candidate != candidate) s = ShadowCounters{candidate};
    if (failed) {
        ++s.failures;
        return s;
    }
    ++s.samples;
    s.exact_sum += exact;
    s.agreement_sum += agreement;
    if (kld != nullptr) {
        ++s.kld_samples;
        s.kld_sum += *kld;
    }
    return s;
}

void Metrics::shadow_state(const std::string & route, const std::string & state) {
    const std::lock_guard lock(mutex_);
    shadows_[route].state = state;
}

void Metrics::shadow_dropped() {
    const std::lock_guard lock(mutex_);
    ++shadow_dropped_;
}

std::map<std::string, ShadowCounters> Metrics::shadows() const {
    const std::lock_guard lock(mutex_);
    return shadows_;
}

void Metrics::set_gauges(int in_flight, int streams, std::uint64_t generation) {
    const std::lock_guard lock(mutex_);
    in_flight_ = in_flight;
    streams_ = streams;
    generation_ = generation;
}

void prometheus_family(std::string & out, const char * name, const char * type, const char * help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void prometheus_histogram(std::string & out, const char * name, const std::string & labels, const Histogram & h) {
    for (std::size_t i = 0; i < Histogram::bounds.size(); ++i) {
        out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, Histogram::bounds[i], h.counts[i]);
    }
    out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, h.count,
                       name, labels, h.sum, name, labels, h.count);
}

std::string prometheus_label(const std::string & value) {
    std::string out;
    for (const char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        out += c == '\n' ? std::string("\\n") : std::string(1, c);
    }
    return out;
}

std::string Metrics::prometheus() const {
    const std::lock_guard lock(mutex_);
    std::string out;
    prometheus_family(out, "switchyard_model_requests_total", "counter",
                      "Requests answered, by the model that answered.");
    for (const auto & [name, m] : models_)
        out += fmt::format("switchyard_model_requests_total{{model=\"{}\"}} {}\n", prometheus_label(name), m.requests);
    prometheus_family(out, "switchyard_model_errors_total", "counter",
                      "Attempts on a model that failed (then fallback or an error).");
    for (const auto & [name, m] : models_)
        out += fmt::format("switchyard_model_errors_total{{model=\"{}\"}} {}\n", prometheus_label(name), m.errors);
    prometheus_family(out, "switchyard_tokens_in_total", "counter", "Prompt tokens of answered requests.");
    for (const auto & [name, m] : models_)
        out += fmt::format("switchyard_tokens_in_total{{model=\"{}\"}} {}\n", prometheus_label(name), m.tokens_in);
    prometheus_family(out, "switchyard_tokens_out_total", "counter", "Generated tokens of answered requests.");
    for (const auto & [name, m] : models_)
        out += fmt::format("switchyard_tokens_out_total{{model=\"{}\"}} {}\n", prometheus_label(name), m.tokens_out);
    prometheus_family(out, "switchyard_cost_estimate_total", "counter",
                      "Estimated cost: tokens x cost_per_1k_tokens / 1000.");
    for (const auto & [name, m] : models_)
        out += fmt::format("switchyard_cost_estimate_total{{model=\"{}\"}} {}\n", prometheus_label(name), m.cost);
    prometheus_family(out, "switchyard_ttft_seconds", "histogram", "Time to the first piece of the answer.");
    for (const auto & [name, m] : models_)
        prometheus_histogram(out, "switchyard_ttft_seconds", fmt::format("model=\"{}\"", prometheus_label(name)),
                             m.ttft);
    prometheus_family(out, "switchyard_request_seconds", "histogram", "Time to the whole answer.");
    for (const auto & [name, m] : models_)
        prometheus_histogram(out, "switchyard_request_seconds", fmt::format("model=\"{}\"", prometheus_label(name)),
                             m.total);
    prometheus_family(out, "switchyard_route_requests_total", "counter", "Requests answered, by route.");
    for (const auto & [name, r] : routes_)
        out += fmt::format("switchyard_route_requests_total{{route=\"{}\"}} {}\n", prometheus_label(name), r.requests);
    prometheus_family(out, "switchyard_route_errors_total", "counter", "Requests a route could not answer.");
    for (const auto & [name, r] : routes_)
        out += fmt::format("switchyard_route_errors_total{{route=\"{}\"}} {}\n", prometheus_label(name), r.errors);
    prometheus_family(out, "switchyard_fallbacks_total", "counter",
                      "Times a request moved on to the route's next model.");
    for (const auto & [name, r] : routes_)
        out += fmt::format("switchyard_fallbacks_total{{route=\"{}\"}} {}\n", prometheus_label(name), r.fallbacks);
    prometheus_family(out, "switchyard_escalations_total", "counter", "Cascade steps to a larger model.");
    for (const auto & [name, r] : routes_)
        out += fmt::format("switchyard_escalations_total{{route=\"{}\"}} {}\n", prometheus_label(name), r.escalations);
    prometheus_family(out, "switchyard_canary_requests_total", "counter", "Requests sent to a route's canary.");
    for (const auto & [name, r] : routes_)
        out += fmt::format("switchyard_canary_requests_total{{route=\"{}\"}} {}\n", prometheus_label(name), r.canary);
    prometheus_family(out, "switchyard_shadow_samples_total", "counter", "Mirrored requests the candidate answered.");
    for (const auto & [name, s] : shadows_)
        out += fmt::format("switchyard_shadow_samples_total{{route=\"{}\",candidate=\"{}\"}} {}\n",
                           prometheus_label(name), prometheus_label(s.candidate), s.samples);
    prometheus_family(out, "switchyard_shadow_exact_match_ratio", "gauge",
                      "Share of mirrored requests answered with the same text.");
    for (const auto & [name, s] : shadows_)
        out += fmt::format("switchyard_shadow_exact_match_ratio{{route=\"{}\",candidate=\"{}\"}} {}\n",
                           prometheus_label(name), prometheus_label(s.candidate), s.exact_rate());
    prometheus_family(out, "switchyard_shadow_token_agreement_ratio", "gauge",
                      "Mean share of positions where both models produced the same token.");
    for (const auto & [name, s] : shadows_)
        out += fmt::format("switchyard_shadow_token_agreement_ratio{{route=\"{}\",candidate=\"{}\"}} {}\n",
                           prometheus_label(name), prometheus_label(s.candidate), s.agreement());
    prometheus_family(out, "switchyard_shadow_kld_mean", "gauge",
                      "Mean KLD of the candidate from the incumbent per token (in-process pairs).");
    for (const auto & [name, s] : shadows_) {
        if (s.kld_samples)
            out +=
                fmt::format("switchyard_shadow_kld_mean{{route=\"{}\",candidate=\"{}\"}} {}\n", prometheus_label(name),
                            prometheus_label(s.candidate), s.kld_sum / static_cast<double>(s.kld_samples));
    }
    prometheus_family(out, "switchyard_shadow_dropped_total", "counter",
                      "Mirrored requests dropped unanswered: the shadow queue was full.");
    out += fmt::format("switchyard_shadow_dropped_total {}\n", shadow_dropped_);
    prometheus_family(out, "switchyard_rejected_total", "counter",
                      "Requests refused before routing (bad input, limits, authentication).");
    out += fmt::format("switchyard_rejected_total {}\n", rejected_);
    prometheus_family(out, "switchyard_client_disconnects_total", "counter",
                      "Non-streamed requests whose client hung up before the answer; their generation was cancelled.");
    out += fmt::format("switchyard_client_disconnects_total {}\n", clients_gone_);
    prometheus_family(out, "switchyard_in_flight", "gauge", "Requests being answered now.");
    out += fmt::format("switchyard_in_flight {}\n", in_flight_);
    prometheus_family(out, "switchyard_streams_active", "gauge", "Streaming responses open now.");
    out += fmt::format("switchyard_streams_active {}\n", streams_);
    prometheus_family(out, "switchyard_portfolio_generation", "gauge",
                      "How many portfolios have been loaded (1 at start, +1 per swap).");
    out += fmt::format("switchyard_portfolio_generation {}\n", generation_);
    return out;
}

nlohmann::json Metrics::to_json() const {
    const std::lock_guard lock(mutex_);
    nlohmann::json j = {{"models", nlohmann::json::object()},
                        {"routes", nlohmann::json::object()},
                        {"shadows", nlohmann::json::object()}};
    for (const auto & [name, m] : models_) {
        j["models"][name] = {{"requests", m.requests},
                             {"errors", m.errors},
                             {"tokens_in", m.tokens_in},
                             {"tokens_out", m.tokens_out},
                             {"cost", m.cost},
                             {"mean_ttft_s", m.ttft.count ? m.ttft.sum / static_cast<double>(m.ttft.count) : 0.0},
                             {"mean_total_s", m.total.count ? m.total.sum / static_cast<double>(m.total.count) : 0.0}};
    }
    for (const auto & [name, r] : routes_) {
        j["routes"][name] = {{"requests", r.requests},
                             {"errors", r.errors},
                             {"fallbacks", r.fallbacks},
                             {"escalations", r.escalations},
                             {"canary", r.canary}};
    }
    for (const auto & [name, s] : shadows_) {
        j["shadows"][name] = {
            {"candidate", s.candidate},
            {"samples", s.samples},
            {"failures", s.failures},
            {"exact_match", s.exact_rate()},
            {"token_agreement", s.agreement()},
            {"state", s.state},
            {"kld_mean",
             s.kld_samples ? nlohmann::json(s.kld_sum / static_cast<double>(s.kld_samples)) : nlohmann::json(nullptr)}};
    }
    j["rejected"] = rejected_;
    j["client_disconnects"] = clients_gone_;
    j["shadow_dropped"] = shadow_dropped_;
    j["in_flight"] = in_flight_;
    j["streams_active"] = streams_;
    j["portfolio_generation"] = generation_;
    return j;
}

}  // namespace switchyard::serve
