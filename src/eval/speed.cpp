#include "eval/speed.h"

#include "engine/normalize.h"
#include "model/model_info.h"
#include "support/error.h"
#include "support/process_memory.h"
#include "support/utf8.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/resource.h>

namespace switchyard::eval {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
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

std::uint64_t peak_rss_bytes() { return process_status_bytes("VmHWM"); }

// Package energy from Intel RAPL where the kernel exposes it to this user; nullopt otherwise.
std::optional<double> rapl_joules() {
    std::ifstream in("/sys/class/powercap/intel-rapl:0/energy_uj");
    unsigned long long microjoules = 0;
    if (!(in >> microjoules)) return std::nullopt;
    return microjoules / 1e6;
}

// Where no text is given (`eval --speed`): plain English every tokenizer here can encode.
constexpr std::string_view kPassage =
    "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog, Max. One day, they found a big red ball "
    "under a tree. Lily threw the ball and Max ran after it. The sun was warm and the birds sang in the trees. When it was time to go home, "
    "Lily was tired but happy. Her mom made soup for dinner, and Lily told her about the ball and the birds. After dinner, they read a book "
    "about a brave little fox who lived in the forest. The fox helped his friends find food when the snow came. Lily fell asleep before the "
    "end of the story, and she dreamed of the park, the ball and the fox.";

// At most this much of the text is used: enough for the rounds' prompts and a steady characters-per-token figure.
constexpr std::size_t kTextBytes = 64 * 1024;

constexpr int kFewestRounds = 6;

std::string text_sample(const std::string & text) {
    std::string out = text.empty() ? std::string(kPassage) : text.substr(0, kTextBytes);
    out.resize(utf8::complete_prefix_length(out));
    return out;
}

std::size_t code_points(std::string_view s) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The prompts of the rounds: `chars` code points of the text each, consecutive windows (wrapping
// around), so that no prompt repeats and no round reuses the previous one's cached prefix.
class Prompts {
public:
    Prompts(const std::string & text, std::size_t chars) : chars_(std::max<std::size_t>(chars, 1)) {
        std::string t = text;
        while (code_points(t) < 2 * chars_ + 1) t += " " + text;
        for (std::size_t i = 0; i < t.size(); i += utf8::sequence_length(t, i)) starts_.push_back(i);
        text_ = std::move(t);
    }
    std::string at(int index) const {
        const std::size_t n = starts_.size();
        const std::size_t first = (static_cast<std::size_t>(index) * chars_) % (n - chars_);
        const std::size_t begin = starts_[first];
        const std::size_t end = first + chars_ < n ? starts_[first + chars_] : text_.size();
        return text_.substr(begin, end - begin);
    }

private:
    std::size_t chars_;
    std::string text_;
    std::vector<std::size_t> starts_;
};

// One model being timed: its engine, its query's answer length, and what its rounds measured.
struct Timed {
    std::string name;
    std::unique_ptr<engine::LlamaEngine> engine;
    int context = 0;
    int generate = 0;
    double chars_per_token = 0;
    std::vector<double> query_ms, ttft_ms, prefill_rates, decode_rates, prompt_tokens;
    std::vector<double> round_ms;  // per round: the faster of its two queries
    double cpu = 0, energy_joules = 0;
    std::size_t generated = 0;
    bool measured_energy = rapl_joules().has_value();
    std::string answer;  // the last query's
};

// The candidate's answers against the reference's to the same prompts (SpeedOptions::compare_answers).
struct AnswerTally {
    int compared = 0;
    int identical = 0;
    std::string first_difference;

    void add(const std::string & candidate, const std::string & reference) {
        ++compared;
        if (candidate == reference) {
            ++identical;
            return;
        }
        if (!first_difference.empty()) return;
        const auto parts = static_cast<std::size_t>(
            std::mismatch(candidate.begin(), candidate.end(), reference.begin(), reference.end()).first -
            candidate.begin());
        const auto from = utf8::complete_prefix_length(candidate.substr(0, parts));
        const auto shown = [&](const std::string & answer) {
            const auto tail = answer.substr(from, 24);
            return "\"" + tail.substr(0, utf8::complete_prefix_length(tail)) + "\"";
        };
        first_difference = fmt::format("query {} parts at byte {}: {} against the reference's {}", compared, from,
                                       shown(candidate), shown(reference));
    }
};

std::unique_ptr<engine::LlamaEngine> load(engine::LlamaEngineOptions eo, int context) {
    eo.parallel = 1;  // one request at a time: the latency a single user sees
    eo.repack = true;  // the kernels serving will run
    eo.context_length = std::max(eo.context_length, context);
    return std::make_unique<engine::LlamaEngine>(eo);
}

// One query: the prompt in, exactly t.generate tokens out (end-of-generation ignored). Recorded
// unless it is a warm-up. Returns its time in ms.
double run_query(Timed & t, const std::string & prompt, bool record) {
    engine::GenerateRequest request;
    request.prompt = prompt;
    request.max_tokens = t.generate;
    request.ignore_eos = true;
    request.sampling.temperature = 0.0f;
    std::optional<double> first_piece;
    const auto energy_before = rapl_joules();
    const double cpu_before = cpu_seconds();
    const auto start = Clock::now();
    const auto result = t.engine->generate(std::span(&request, 1), [&](std::size_t, std::string_view piece) {
        if (!first_piece && !piece.empty()) first_piece = seconds_since(start);
        return true;
    });
    const double total = seconds_since(start);
    const int n = result[0].completion_tokens;
    t.answer = result[0].text;
    if (n != t.generate)
        throw Error(
            "speed: {} generated {} of the {} tokens of a query (its context of {} tokens holds {} of prompt): a failed measurement",
            t.name, n, t.generate, t.context, result[0].prompt_tokens);
    if (!(total > 0)) throw Error("speed: {}: a query took no measurable time: a failed measurement", t.name);
    if (!record) return total * 1000;
    t.cpu += cpu_seconds() - cpu_before;
    if (t.measured_energy) {
        const auto energy_after = rapl_joules();
        if (energy_before && energy_after && *energy_after >= *energy_before) {
            t.energy_joules += *energy_after - *energy_before;
        } else {
            t.measured_energy = false;  // counter wrapped or vanished: model it instead
        }
    }
    t.query_ms.push_back(total * 1000);
    t.prompt_tokens.push_back(result[0].prompt_tokens);
    t.generated += static_cast<std::size_t>(n);
    // The first piece of text ends the prefill; the rest is decoding. A round whose answer starts
    // without text (end-of-generation tokens leave none) gives no split.
    if (first_piece && total > *first_piece) {
        t.ttft_ms.push_back(*first_piece * 1000);
        t.prefill_rates.push_back(result[0].prompt_tokens / *first_piece);
        t.decode_rates.push_back((n - 1) / (total - *first_piece));
    }
    return total * 1000;
}

SpeedResult summary(const Timed & t, const engine::LlamaEngineOptions & eo, const SpeedOptions & o) {
    if (t.decode_rates.empty())
        throw Error(
            "speed: {} produced no text before the end of any query: its decode rate cannot be measured (a failed measurement, not a rate of 0)",
            t.name);
    SpeedResult r;
    r.rounds = static_cast<int>(t.round_ms.size());
    r.file_bytes = model::inspect_gguf(eo.model_path).file_bytes;
    r.prefill_tokens_per_s = percentile(t.prefill_rates, 0.5);
    r.decode_tokens_per_s = percentile(t.decode_rates, 0.5);
    r.ttft_p50_ms = percentile(t.ttft_ms, 0.5);
    r.ttft_p95_ms = percentile(t.ttft_ms, 0.95);
    const auto q = median_interval(t.round_ms);
    r.query_ms = std::exp(q.center);
    r.query_ms_lo = std::exp(q.lo);
    r.query_ms_hi = std::exp(q.hi);
    r.query_p95_ms = percentile(t.query_ms, 0.95);
    r.generate_tokens = t.generate;
    double prompt = 0;
    for (const double p : t.prompt_tokens) prompt += p;
    r.prompt_tokens = static_cast<int>(std::lround(prompt / static_cast<double>(t.prompt_tokens.size())));
    r.chars_per_token = t.chars_per_token;
    if (t.measured_energy) {
        r.joules_per_token = t.generated > 0 ? t.energy_joules / t.generated : 0;
        r.energy_source = "measured (RAPL package energy)";
    } else {
        r.joules_per_token = t.generated > 0 ? t.cpu * o.watts_per_busy_core / t.generated : 0;
        r.energy_source = fmt::format("modelled (CPU-seconds x {:g} W)", o.watts_per_busy_core);
    }
    if (o.price_per_hour > 0) {
        r.cost_per_query = o.price_per_hour / 3600.0 * r.query_ms / 1000.0;
        r.cost_per_1k_tokens = r.cost_per_query * 1000.0 / (r.prompt_tokens + r.generate_tokens);
    }
    return r;
}

void check(const SpeedOptions & o) {
    if (o.prompt_tokens < 1 || o.generate_tokens < 2 || o.repeats < 1 || o.warmup < 0 || !(o.target_half_width > 0))
        throw Error(
            "speed: prompt tokens and rounds must be positive, and at least 2 tokens generated (a decode rate needs tokens after the first)");
}

// Context for one query: room for the prompt and answer of a tokenizer with up to 4 times the
// reference's tokens per character (a character-level model against a word-piece one).
int query_context(const SpeedOptions & o) { return 4 * (o.prompt_tokens + o.generate_tokens) + 16; }

void check_fits(const Timed & t, std::size_t prompt_chars) {
    const double prompt = static_cast<double>(prompt_chars) / t.chars_per_token;
    if (prompt + t.generate + 8 > t.context)
        throw Error(
            "speed: one query is about {:.0f} + {} tokens of {}, more than the {} its speed pass holds: lower speed.prompt_tokens or "
            "speed.generate_tokens",
            prompt, t.generate, t.name, t.context);
}

// Whether the rounds may stop: after min_rounds once the interval is within the target either
// side, else after `repeats`; never before 6 rounds, the fewest with a 95% interval of the median.
bool done(const std::vector<double> & samples, const SpeedOptions & o) {
    const int n = static_cast<int>(samples.size());
    if (n < kFewestRounds) return false;
    if (n >= o.repeats) return true;
    const auto i = median_interval(samples);
    return n >= o.min_rounds && i.hi - i.center <= std::log1p(o.target_half_width) &&
        i.center - i.lo <= std::log1p(o.target_half_width);
}

std::string name_of(const engine::LlamaEngineOptions & eo) { return eo.model_path.filename().string(); }

// What the draft proposed and the model took over the timed queries (the warm-up's left out).
void record_draft(SpeedResult & r, const engine::DraftStats & before, const engine::DraftStats & after) {
    r.draft_tokens = after.drafted - before.drafted;
    r.draft_accepted = after.accepted - before.accepted;
    r.draft_steps = after.steps - before.steps;
}

}  // namespace

LogInterval median_interval(std::span<const double> samples) {
    LogInterval out;
    std::vector<double> logs;
    for (const double s : samples) logs.push_back(std::log(s));
    std::sort(logs.begin(), logs.end());
    const std::size_t n = logs.size();
    if (n == 0) return out;
    out.center = n % 2 ? logs[n / 2] : (logs[n / 2 - 1] + logs[n / 2]) / 2;
    // The largest k with P(Binomial(n, 1/2) <= k - 1) <= 2.5%: [x_(k), x_(n+1-k)] covers the median with at least 95%.
    double below = 0, term = std::pow(0.5, static_cast<double>(n));
    std::size_t k = 0;
    for (std::size_t j = 0; j < n; ++j) {
        below += term;  // P(X <= j)
        if (below > 0.025) break;
        k = j + 1;
        term *= static_cast<double>(n - j) / static_cast<double>(j + 1);
    }
    if (k >= 1) {
        out.lo = logs[k - 1];
        out.hi = logs[n - k];
    }
    return out;
}

double chars_per_token(const engine::Engine & engine, std::string_view text) {
    if (text.empty()) return 0;
    const auto tokens = engine.tokenize(text, false);
    return tokens.empty() ? 0 : static_cast<double>(code_points(text)) / static_cast<double>(tokens.size());
}

SpeedResult measure_speed(const engine::LlamaEngineOptions & eo, const SpeedOptions & o) {
    check(o);
    reset_peak_rss();
    Timed t{.name = name_of(eo), .engine = load(eo, query_context(o))};
    t.context = t.engine->model().context_length;
    const std::string text = engine::normalize_for_vocabulary(*t.engine, text_sample(o.text));
    t.chars_per_token = chars_per_token(*t.engine, text);
    if (t.chars_per_token <= 0) throw Error("speed: {}: the text is empty once made encodable", t.name);
    t.generate = o.generate_tokens;
    const auto prompt_chars = static_cast<std::size_t>(std::lround(o.prompt_tokens * t.chars_per_token));
    check_fits(t, prompt_chars);
    const Prompts prompts(text, prompt_chars);
    int next = 0;
    for (int i = 0; i < o.warmup; ++i) run_query(t, prompts.at(next++), false);
    const auto drafted_before = t.engine->draft_stats();
    while (!done(t.round_ms, o)) {
        // Two prompts (the engine would reuse a repeated one's cached prefix); the faster counts.
        const double first = run_query(t, prompts.at(next++), true);
        t.round_ms.push_back(std::min(first, run_query(t, prompts.at(next++), true)));
    }
    auto r = summary(t, eo, o);
    r.peak_rss_bytes = peak_rss_bytes();
    r.kv_cache_bytes = t.engine->kv_cache_bytes();
    record_draft(r, drafted_before, t.engine->draft_stats());
    return r;
}

PairedSpeed measure_speed_against(const engine::LlamaEngineOptions & candidate,
                                  const engine::LlamaEngineOptions & reference, const SpeedOptions & o) {
    check(o);
    // The candidate alone: its peak memory, after one query of about the size it will run.
    reset_peak_rss();
    Timed c{.name = name_of(candidate), .engine = load(candidate, query_context(o))};
    c.context = c.engine->model().context_length;
    std::string text = engine::normalize_for_vocabulary(*c.engine, text_sample(o.text));
    c.generate = o.generate_tokens;
    run_query(c, Prompts(text, static_cast<std::size_t>(o.prompt_tokens)).at(0), false);
    const std::uint64_t candidate_peak = peak_rss_bytes();

    Timed ref{.name = name_of(reference), .engine = load(reference, query_context(o))};
    ref.context = ref.engine->model().context_length;
    // Text both can encode: what the candidate kept, less what the reference cannot encode.
    text = engine::normalize_for_vocabulary(*ref.engine, text);
    ref.chars_per_token = chars_per_token(*ref.engine, text);
    c.chars_per_token = chars_per_token(*c.engine, text);
    if (ref.chars_per_token <= 0 || c.chars_per_token <= 0)
        throw Error("speed: the text is empty once made encodable by both {} and {}", c.name, ref.name);
    // The same characters in, as many characters out: the reference's counts in each one's tokens.
    const auto prompt_chars = static_cast<std::size_t>(std::lround(o.prompt_tokens * ref.chars_per_token));
    ref.generate = o.generate_tokens;
    c.generate =
        std::max(2, static_cast<int>(std::lround(o.generate_tokens * ref.chars_per_token / c.chars_per_token)));
    check_fits(ref, prompt_chars);
    check_fits(c, prompt_chars);
    const Prompts prompts(text, prompt_chars);
    int next = 0;
    for (int i = 0; i < o.warmup; ++i) {
        run_query(c, prompts.at(next), false);
        run_query(ref, prompts.at(next++), false);
    }
    std::vector<double> ratios;
    AnswerTally answers;
    const auto drafted_before = c.engine->draft_stats();
    while (!done(ratios, o)) {
        // Two prompts, the same for both models, in the order ABBA or BAAB by turns: neither always
        // runs on a cooler or busier machine, and a drift within the round cancels. Each side's
        // faster query counts: a busy machine only ever adds time, so the faster is the nearer to
        // what the model itself costs. (A prompt never repeats on one engine, which would reuse
        // its cached prefix.)
        const std::string p1 = prompts.at(next++), p2 = prompts.at(next++);
        Timed & first = ratios.size() % 2 == 0 ? ref : c;
        Timed & second = ratios.size() % 2 == 0 ? c : ref;
        const double a1 = run_query(first, p1, true);
        const double b1 = run_query(second, p1, true);
        if (o.compare_answers) answers.add(c.answer, ref.answer);
        const double b2 = run_query(second, p2, true);
        const double a2 = run_query(first, p2, true);
        if (o.compare_answers) answers.add(c.answer, ref.answer);
        first.round_ms.push_back(std::min(a1, a2));
        second.round_ms.push_back(std::min(b1, b2));
        ratios.push_back(c.round_ms.back() / ref.round_ms.back());
    }
    PairedSpeed p;
    p.candidate = summary(c, candidate, o);
    p.candidate.peak_rss_bytes = candidate_peak;
    p.candidate.kv_cache_bytes = c.engine->kv_cache_bytes();
    record_draft(p.candidate, drafted_before, c.engine->draft_stats());
    p.answers_compared = answers.compared;
    p.answers_identical = answers.identical;
    p.first_difference = answers.first_difference;
    p.reference = summary(ref, reference, o);
    p.reference.peak_rss_bytes = 0;  // not measured here: the process held the candidate too
    p.reference.kv_cache_bytes = ref.engine->kv_cache_bytes();
    const auto r = median_interval(ratios);
    p.ratio = std::exp(r.center);
    p.ratio_lo = std::exp(r.lo);
    p.ratio_hi = std::exp(r.hi);
    p.rounds = static_cast<int>(ratios.size());
    return p;
}

}  // namespace switchyard::eval
