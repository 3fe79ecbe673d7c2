#include "eval/speed.h"

#include "model/model_info.h"
#include "support/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <sys/resource.h>

namespace switchyard::eval {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    const double at = q * (v.size() - 1);
    const auto lo = static_cast<std::size_t>(at);
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (at - lo);
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Peak resident memory of the process (VmHWM), after resetting it so that this pass's model is
// what it measures (writing 5 to clear_refs resets the peak, Linux 4.0+).
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

std::uint64_t peak_rss_bytes() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    }
    return 0;
}

// Package energy from Intel RAPL where the kernel exposes it to this user; nullopt otherwise.
std::optional<double> rapl_joules() {
    std::ifstream in("/sys/class/powercap/intel-rapl:0/energy_uj");
    unsigned long long microjoules = 0;
    if (!(in >> microjoules)) return std::nullopt;
    return microjoules / 1e6;
}

}  // namespace

SpeedResult measure_speed(const engine::LlamaEngineOptions & engine_options, const SpeedOptions & o) {
    if (o.prompt_tokens < 1 || o.generate_tokens < 1 || o.repeats < 1) throw Error("speed: prompt, generation and repeats must be positive");
    reset_peak_rss();
    engine::LlamaEngineOptions eo = engine_options;
    eo.parallel = 1;  // one request at a time: the latency a single user sees
    eo.repack = true;  // the kernels serving will run
    eo.context_length = std::max(eo.context_length, o.prompt_tokens + o.generate_tokens + 2);
    engine::LlamaEngine engine(eo);

    // A prompt of exactly prompt_tokens tokens made from the model's own vocabulary, so every
    // model gets the same amount of work whatever text it can encode.
    std::vector<engine::Token> prompt = engine.tokenize("", true);
    for (engine::Token t = 0; static_cast<int>(prompt.size()) < o.prompt_tokens; t = (t + 1) % engine.model().vocab_size) {
        if (!engine.token_text(t).empty()) prompt.push_back(t);
    }
    const std::vector<std::vector<engine::Token>> prefill_input = {prompt};
    const auto last_only = [&](std::size_t, std::size_t pos) { return pos + 1 == prompt.size(); };

    SpeedResult r;
    r.prompt_tokens = o.prompt_tokens;
    r.generate_tokens = o.generate_tokens;
    r.file_bytes = model::inspect_gguf(eo.model_path).file_bytes;
    std::vector<double> prefill_rates, decode_rates, ttft;
    double energy_joules = 0, cpu = 0;
    std::size_t generated = 0;
    bool measured_energy = rapl_joules().has_value();
    const std::string prompt_text = engine.detokenize(prompt);
    for (int rep = 0; rep < o.repeats; ++rep) {
        auto start = Clock::now();
        engine.forward(prefill_input, [](std::size_t, std::size_t, std::span<const float>) {}, last_only);
        prefill_rates.push_back(prompt.size() / seconds_since(start));

        engine::GenerateRequest request;
        request.prompt = prompt_text;
        request.max_tokens = o.generate_tokens;
        request.sampling.temperature = 0.0f;
        std::optional<double> first_piece;
        const auto energy_before = rapl_joules();
        const double cpu_before = cpu_seconds();
        start = Clock::now();
        const auto result = engine.generate(std::span(&request, 1), [&](std::size_t, std::string_view) {
            if (!first_piece) first_piece = seconds_since(start);
            return true;
        });
        const double total = seconds_since(start);
        cpu += cpu_seconds() - cpu_before;
        if (measured_energy) {
            const auto energy_after = rapl_joules();
            if (energy_before && energy_after && *energy_after >= *energy_before) {
                energy_joules += *energy_after - *energy_before;
            } else {
                measured_energy = false;  // counter wrapped or vanished: model it instead
            }
        }
        const double first = first_piece.value_or(total);
        ttft.push_back(first * 1000);
        const int n = result[0].completion_tokens;
        generated += static_cast<std::size_t>(n);
        if (n > 1 && total > first) decode_rates.push_back((n - 1) / (total - first));
    }
    r.peak_rss_bytes = peak_rss_bytes();
    r.prefill_tokens_per_s = percentile(prefill_rates, 0.5);
    r.decode_tokens_per_s = decode_rates.empty() ? 0 : percentile(decode_rates, 0.5);
    r.ttft_p50_ms = percentile(ttft, 0.5);
    r.ttft_p95_ms = percentile(ttft, 0.95);
    if (measured_energy) {
        r.joules_per_token = generated > 0 ? energy_joules / generated : 0;
        r.energy_source = "measured (RAPL package energy)";
    } else {
        r.joules_per_token = generated > 0 ? cpu * o.watts_per_busy_core / generated : 0;
        r.energy_source = fmt::format("modelled (CPU-seconds x {:g} W)", o.watts_per_busy_core);
    }
    if (o.price_per_hour > 0 && r.decode_tokens_per_s > 0 && r.prefill_tokens_per_s > 0) {
        r.cost_per_1k_tokens = o.price_per_hour / 3600.0 * 1000.0 / r.decode_tokens_per_s;
        r.cost_per_query = o.price_per_hour / 3600.0 * (o.prompt_tokens / r.prefill_tokens_per_s + o.generate_tokens / r.decode_tokens_per_s);
    }
    return r;
}

}  // namespace switchyard::eval
