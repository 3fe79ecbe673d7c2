#include "decide/dry_run.h"

#include "decide/simulation.h"

#include "engine/llama_engine.h"
#include "eval/suite.h"
#include "eval/text_chunks.h"
#include "model/model_info.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/progress.h"

#include <fmt/format.h>
#include <ggml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include <unistd.h>

namespace switchyard::decide {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Calibration computes the importance matrix on top of the forward pass (llama-imatrix: about 15% more).
constexpr double kCalibrationOverhead = 1.15;

double over(double amount, double rate) { return rate > 0 ? amount / rate : 0.0; }

std::string count(double n) {
    if (n >= 1e9) return fmt::format("{:.1f}G", n / 1e9);
    if (n >= 1e6) return fmt::format("{:.1f}M", n / 1e6);
    if (n >= 1e4) return fmt::format("{:.0f}k", n / 1e3);
    return fmt::format("{:.0f}", n);
}

std::string joined(const std::vector<std::string> & names) {
    std::string out;
    for (const auto & n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace

std::vector<StageEstimate> estimate_stages(const PlanWork & w, const WorkRates & r) {
    std::vector<StageEstimate> out;
    const double quantize_one = over(static_cast<double>(w.base_parameters), r.quantize_weights_per_s);
    if (w.calibration_tokens > 0) {
        out.push_back({"calibrate", fmt::format("{} tokens through the base", count(w.calibration_tokens)),
                       kCalibrationOverhead * over(w.calibration_tokens, r.forward_tokens_per_s)});
    }
    if (!w.variants.empty() || !w.variants_kept.empty()) {
        std::string what = fmt::format("{} to build", w.variants.size());
        if (!w.variants.empty()) what += " (" + joined(w.variants) + ")";
        if (!w.variants_kept.empty())
            what += fmt::format(", {} already built ({})", w.variants_kept.size(), joined(w.variants_kept));
        if (w.mix_trials > 0)
            what += fmt::format("; mix: {} trial quantizations, each measured on the screen text", w.mix_trials);
        const double seconds = static_cast<double>(w.variants.size()) * quantize_one +
            static_cast<double>(w.mix_trials) * (quantize_one + over(w.screen_tokens, r.forward_tokens_per_s));
        out.push_back({"variants", what, seconds});
    }
    const std::size_t variants = w.variants.size() + w.variants_kept.size();
    if (variants > 0 && w.screen_tokens > 0) {
        const std::size_t models = 1 + variants;
        out.push_back({"screen", fmt::format("{} models × {} tokens", models, count(w.screen_tokens)),
                       over(static_cast<double>(models * w.screen_tokens), r.forward_tokens_per_s)});
    }
    std::size_t items = 0, score = 0, generate = 0;
    for (const auto & s : w.suites) {
        items += s.items;
        score += s.score_tokens;
        generate += s.generate_tokens;
    }
    if (!w.suites.empty()) {
        const std::size_t candidates = w.local_candidates + w.remote_candidates;
        std::string what = fmt::format("{} suites × {} candidates: {} items, {} tokens to score", w.suites.size(),
                                       candidates, count(items), count(score));
        if (generate > 0) what += fmt::format(" and up to {} to generate", count(generate));
        what += " per candidate";
        if (w.remote_candidates > 0) what += fmt::format(" ({} through endpoints, not estimated)", w.remote_candidates);
        const double per_candidate = over(score, r.forward_tokens_per_s) + over(generate, r.decode_tokens_per_s);
        const double every_item = static_cast<double>(w.local_candidates) * per_candidate;
        if (w.expected_share < 1.0)
            what += fmt::format(
                "; sequential tests: a candidate with no true drop is expected to read {:.0f}% of them, one near the limit all "
                "({} if every candidate read every item)",
                100 * w.expected_share, rough_duration(every_item));
        out.push_back({"tasks", what, every_item * w.expected_share});
    }
    if (w.local_candidates > 0 && w.speed_decode_tokens + w.speed_prefill_tokens > 0) {
        const std::size_t timed = w.local_candidates + w.drafted_candidates;
        out.push_back({"speed",
                       fmt::format("{} candidates{} × {} prompt and {} generated tokens", timed,
                                   w.drafted_candidates > 0 ? fmt::format(" ({} drafted)", w.drafted_candidates) : "",
                                   w.speed_prefill_tokens, w.speed_decode_tokens),
                       static_cast<double>(timed) *
                           (over(w.speed_prefill_tokens, r.forward_tokens_per_s) +
                            over(w.speed_decode_tokens, r.decode_tokens_per_s))});
    }
    return out;
}

std::string format_dry_run(const PlanWork & w, const WorkRates & r, const std::vector<StageEstimate> & stages) {
    std::string out = "dry run: nothing is built, measured or written\n";
    if (!w.base.empty())
        out += fmt::format("base: {}, {} parameters, chunks of {} tokens\n", w.base,
                           count(static_cast<double>(w.base_parameters)), w.context);
    out += fmt::format(
        "sample ({:.1f} s on the base): forward {:.0f} tokens/s, decode {:.1f} tokens/s, quantize {} weights/s\n",
        r.sample_seconds, r.forward_tokens_per_s, r.decode_tokens_per_s, count(r.quantize_weights_per_s));
    double total = 0;
    for (const auto & s : stages) {
        out += fmt::format("  {:<10} {:>8}  {}\n", s.stage, rough_duration(s.seconds), s.work);
        total += s.seconds;
    }
    out += fmt::format(
        "  {:<10} {:>8}  {}: the search skips runs that cannot change the answer, and results already in the store are reused\n",
        "total", rough_duration(total),
        w.expected_share < 1.0 ? "the tasks at their expected stopping, the rest at most" : "at most");
    return out;
}

namespace {

// Tokens a suite sends through the forward pass per candidate, and the most it generates.
SuiteWork count_suite(const eval::TaskSuite & suite, const engine::Engine & e) {
    SuiteWork w{.name = suite.settings.name, .items = suite.items.size()};
    const auto tokens = [&](const std::string & text) -> std::size_t {
        try {
            return e.tokenize(text, false).size();
        } catch (const std::exception &) {
            return text.size() / 4 + 1;  // the run reports it unencodable; count it roughly
        }
    };
    for (const auto & item : suite.items) {
        switch (item.kind) {
            case eval::ItemKind::multiple_choice:
                for (const auto & c : item.choices) w.score_tokens += tokens(item.context) + tokens(c);
                break;
            case eval::ItemKind::pair: w.score_tokens += tokens(item.good) + tokens(item.bad); break;
            case eval::ItemKind::loglikelihood:
                w.score_tokens += tokens(item.context) + tokens(item.continuation);
                break;
            case eval::ItemKind::generation:
                w.score_tokens += tokens(item.messages.empty() ? item.prompt : item.messages);
                w.generate_tokens += static_cast<std::size_t>(std::max(0, item.max_tokens));
                break;
            case eval::ItemKind::consistency:  // generated, then its reference scored after the prompt
                w.score_tokens +=
                    2 * tokens(item.messages.empty() ? item.prompt : item.messages) + tokens(item.reference);
                w.generate_tokens += static_cast<std::size_t>(std::max(0, item.max_tokens));
                break;
        }
    }
    return w;
}

// Forward and decode rates on the base, and the quantizer's rate on one matrix row block.
WorkRates sample(const std::filesystem::path & base, int context, int threads, std::uint64_t embedding) {
    const auto start = Clock::now();
    WorkRates r;
    engine::LlamaEngine e({.model_path = base, .threads = threads, .context_length = context, .parallel = 1});
    const int n = std::min(context, 128);
    std::vector<engine::Token> chunk(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) chunk[static_cast<std::size_t>(i)] = (i * 7919 + 11) % e.model().vocab_size;
    const std::vector<std::vector<engine::Token>> chunks{chunk};
    const auto none = [](std::size_t, std::size_t) { return false; };
    const auto ignore = [](std::size_t, std::size_t, std::span<const float>) {};
    e.forward(chunks, ignore, none);  // warm: the first pass pages the weights in
    const auto forward_start = Clock::now();
    e.forward(chunks, ignore, none);
    r.forward_tokens_per_s = n / std::max(1e-6, seconds_since(forward_start));
    engine::GenerateRequest request{.prompt = "Once upon a time", .max_tokens = 8};
    request.sampling.temperature = 0;
    const auto decode_start = Clock::now();
    const auto generated = e.generate(std::span(&request, 1));
    const double decode_seconds = seconds_since(decode_start);
    const std::size_t produced = generated.empty() ? 0 : static_cast<std::size_t>(generated.front().completion_tokens);
    r.decode_tokens_per_s =
        produced > 0 ? static_cast<double>(produced) / std::max(1e-6, decode_seconds) : r.forward_tokens_per_s / n;

    // Q4_K over 64 rows of the model's width: llama-quantize's work per weight, on every thread.
    const std::int64_t row = std::max<std::int64_t>(256, static_cast<std::int64_t>(embedding) / 256 * 256), rows = 64;
    std::vector<float> weights(static_cast<std::size_t>(row * rows));
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (auto & x : weights) x = normal(rng);
    std::vector<std::uint8_t> out(ggml_row_size(GGML_TYPE_Q4_K, row) * rows);
    const auto quantize_start = Clock::now();
    ggml_quantize_chunk(GGML_TYPE_Q4_K, weights.data(), out.data(), 0, rows, row, nullptr);
    const int workers = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    r.quantize_weights_per_s =
        static_cast<double>(row * rows) / std::max(1e-6, seconds_since(quantize_start)) * workers;
    r.sample_seconds = seconds_since(start);
    return r;
}

std::size_t weight_matrices(const model::ModelInfo & info) {
    std::size_t n = 0;
    for (const auto & t : info.tensors)
        n += t.shape.size() >= 2 && t.name.ends_with(".weight") && t.name.find("_norm") == std::string::npos;
    return n;
}

}  // namespace

// The drafted originals the plan will time, at most: variants (built from the base, so of its
// vocabulary) and the local alternatives and files whose vocabulary can draft for it. None where
// neither a budget nor a price judges speed (the search then times none).
std::size_t drafted_candidates(const Plan & plan) {
    if (!plan.policy.budgets.any() && plan.policy.deployment.price_per_hour <= 0) return 0;
    const auto can_draft = [&](const std::filesystem::path & path) {
        return engine::draft_incompatibility(plan.base->path, path).empty();
    };
    const auto is_variant = [&](const std::string & name) {
        return std::any_of(plan.variants.begin(), plan.variants.end(), [&](const VariantSpec & v) {
            return !v.kv_only() && variant_name(v) == name;
        });
    };
    std::size_t n = 0;
    if (plan.drafts.automatic) {
        for (const auto & v : plan.variants) n += !v.kv_only();
        for (const auto & a : plan.alternatives) n += a.endpoint.empty() && can_draft(a.path);
        return n;
    }
    for (const auto & d : plan.drafts.models) {
        const auto alternative = std::find_if(plan.alternatives.begin(), plan.alternatives.end(),
                                              [&](const ModelRef & m) { return m.name == d.name; });
        n += !d.path.empty() ? can_draft(d.path)
            : alternative != plan.alternatives.end() ? can_draft(alternative->path)
                                                     : is_variant(d.name);
    }
    return n;
}

std::string dry_run(const Plan & plan, const DryRunOptions & options) {
    PlanWork w;
    std::optional<model::ModelInfo> info;
    std::optional<engine::LlamaEngine> vocab;  // the base, to count tokens
    if (plan.base) {
        if (plan.base->path.empty())
            throw Error("{}: --dry-run times a sample on the base model, which needs a path (not an endpoint)",
                        plan.source.string());
        info = model::inspect_gguf(plan.base->path);
        w.base = plan.base->name;
        w.base_parameters = info->parameters;
        w.context = eval::default_chunk_context(info->context_length);
        vocab.emplace(engine::LlamaEngineOptions{
            .model_path = plan.base->path, .threads = 1, .context_length = w.context, .parallel = 1});
        ++w.local_candidates;
    } else {
        throw Error(
            "{}: --dry-run times a sample on the base model; this plan has none (its alternatives would be measured as they are)",
            plan.source.string());
    }
    bool imatrix = false;
    for (const auto & v : plan.variants) {
        VariantSpec named = v;  // named as the build names it: "+imatrix" only where a matrix is used
        named.imatrix = v.imatrix && plan.calibration.has_value();
        const auto name = variant_name(named);
        const bool kept =
            std::filesystem::exists(options.out_dir / "models" / (plan.base->name + "-" + name + ".gguf"));
        (kept ? w.variants_kept : w.variants).push_back(name);
        imatrix = imatrix || (v.imatrix && plan.calibration.has_value());
        if (!v.mix_budget.empty() && !kept)
            w.mix_trials += weight_matrices(*info) * 3 + 4;  // each matrix at each of 3 types, the mix, 3 uniform
        ++w.local_candidates;
    }
    if (imatrix && !std::filesystem::exists(options.out_dir / "models" / (plan.base->name + ".imatrix"))) {
        w.calibration_tokens = static_cast<std::size_t>(plan.calibration->chunks) *
            static_cast<std::size_t>(plan.calibration->context > 0 ? plan.calibration->context : w.context);
    }
    if (!plan.screen.files.empty()) {
        w.screen_tokens = static_cast<std::size_t>(plan.screen.chunks) *
            static_cast<std::size_t>(plan.screen.context > 0 ? plan.screen.context : w.context);
    }
    for (const auto & a : plan.alternatives) ++(a.endpoint.empty() ? w.local_candidates : w.remote_candidates);
    w.drafted_candidates = drafted_candidates(plan);
    // Built suites (cloze, capture) go where nothing of the plan's output lives, and are removed after counting.
    const auto built_file =
        std::filesystem::temp_directory_path() / fmt::format("switchyard-dry-run-{}.jsonl", ::getpid());
    struct Remove {
        std::filesystem::path path;
        ~Remove() {
            std::error_code ec;
            std::filesystem::remove(path, ec);
        }
    } remove_built{built_file};
    for (const auto & t : plan.tasks) {
        std::string spec = t.spec;
        if (t.built()) {
            write_file_atomically(built_file, build_task_suite(t));
            spec = built_file.string();
        }
        auto suite = eval::load_suite(spec);
        if (!t.name.empty()) suite.settings.name = t.name;
        w.suites.push_back(count_suite(suite, *vocab));
    }
    // The expected stopping time of a typical compression (no true drop, the original right on 80%,
    // one in ten of its misses recovered), at the share of alpha a candidate gets with one family
    // per variant ladder and alternative: an estimate, not a promise.
    if (plan.policy.sequential && !w.suites.empty()) {
        const std::size_t families =
            std::max<std::size_t>(1, (plan.variants.empty() ? 0 : 1) + plan.alternatives.size());
        double read = 0, total = 0;
        for (const auto & s : w.suites) {
            read += static_cast<double>(s.items) *
                expected_share_read(plan.policy, s.items, plan.policy.alpha / static_cast<double>(families), 0.0, 0.8,
                                    0.1);
            total += static_cast<double>(s.items);
        }
        w.expected_share = total > 0 ? read / total : 1.0;
    }
    // At most, for the candidate and the reference alike: a warm-up query, then the rounds (at least
    // 6, at most `repeats`: eval/speed.h), each two queries.
    const std::size_t queries = 2 * (1 + 2 * static_cast<std::size_t>(std::max(plan.speed.repeats, 6)));
    w.speed_prefill_tokens = queries * static_cast<std::size_t>(plan.speed.prompt_tokens);
    w.speed_decode_tokens = queries * static_cast<std::size_t>(plan.speed.generate_tokens);
    vocab.reset();
    const WorkRates rates = sample(plan.base->path, w.context, options.threads, info->embedding_length);
    return format_dry_run(w, rates, estimate_stages(w, rates));
}

}  // namespace switchyard::decide
