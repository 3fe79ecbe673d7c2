#include "decide/variants.h"

#include "compress/awq.h"
#include "compress/calibrate.h"
#include "compress/imatrix.h"
#include "compress/mix.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "engine/llama_engine.h"
#include "model/model_info.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/sha256.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace switchyard::decide {

using nlohmann::json;

std::string tensor_data_hash(const std::filesystem::path & model) {
    const auto info = model::inspect_gguf(model);
    std::string index;
    for (const auto & t : info.tensors) {
        index += t.name + "=" + t.type;
        for (const auto d : t.shape) index += "," + std::to_string(d);
        index += ";";
    }
    return sha256_bytes(sha256_bytes(index) + cached_sha256_file(model, info.tensor_data_offset));
}

namespace {

// The calibration's importance matrix, computed once per base and data and kept beside the variants.
std::filesystem::path imatrix(const Plan & plan, const VariantBuildOptions & o) {
    const auto & cal = *plan.calibration;
    json key = {{"base", o.base_hash},
                {"chunks", cal.chunks},
                {"skip_chunks", cal.skip_chunks},
                {"context", cal.context},
                {"normalize", plan.normalize}};
    for (const auto & f : cal.files) key["files"].push_back(cached_sha256_file(f));
    const auto path = o.models_dir / (plan.base->name + ".imatrix");
    const auto key_path = path.string() + ".key.json";
    if (std::filesystem::exists(path) && std::filesystem::exists(key_path) &&
        json::parse(read_whole_file(key_path, "calibration key"), nullptr, false) == key) {
        o.note("calibration: reused " + path.string());
        return path;
    }
    const auto r = compress::calibrate({.model = plan.base->path,
                                        .data = cal.files,
                                        .chunks = cal.chunks,
                                        .skip_chunks = cal.skip_chunks,
                                        .context = cal.context,
                                        .normalize = plan.normalize,
                                        .threads = o.threads,
                                        .progress = o.progress});
    compress::save_imatrix(r.imatrix, path);
    write_file_atomically(key_path, key.dump(2) + "\n");
    o.note(fmt::format("calibration: {} chunks ({} tokens) of {} in {:.1f} s -> {}", r.chunks_used, r.tokens,
                       cal.files.front().filename().string(), r.seconds, path.string()));
    return path;
}

std::string describe(const VariantSpec & v, bool with_imatrix) {
    std::string d;
    if (!v.mix_budget.empty()) d = "mixed precision under " + v.mix_budget;
    if (!v.prune_method.empty())
        d += (d.empty() ? "" : ", ") + v.prune_method + " pruning" +
            (v.sparsity > 0 ? fmt::format(" to {:.0f}%", 100 * v.sparsity) : "") +
            (v.pattern.empty() ? "" : " (" + v.pattern + ")");
    if (!v.layers_drop.empty()) d += (d.empty() ? "" : ", ") + fmt::format("{} layers dropped", v.layers_drop.size());
    if (!v.type.empty() && v.mix_budget.empty()) d += (d.empty() ? "" : ", then ") + v.type;
    if (v.awq) d += " after AWQ channel scales (alpha searched per layer group)";
    if (with_imatrix) d += " with the calibration's importance matrix";
    if (!v.kv_cache.is_default())
        d += (d.empty() ? "the base's weights" : "") + fmt::format(", served with a {} KV cache", v.kv_cache.label());
    return d;
}

// The method ladder a variant belongs to, and how far along it is: quantization types by bits per
// weight, pruning by sparsity (same method, pattern and type after it), layer dropping by layers
// dropped, mixes by their budget's bits per weight. The search never orders across ladders: a
// 60%-pruned Q8_0 keeps 8.5 bits per weight but is no milder than a Q6_K.
std::pair<std::string, double> ladder_of(const VariantSpec & v, bool with_imatrix, double bits_per_weight) {
    const std::string imatrix = with_imatrix ? "+imatrix" : "";
    const std::string then = v.type.empty() ? "" : "+" + v.type;
    if (!v.mix_budget.empty()) return {"mix" + imatrix, -bits_per_weight};
    if (v.sparsity > 0 || !v.pattern.empty()) {
        const std::string pattern = v.pattern.empty() ? "unstructured" : v.pattern;
        double sparsity = v.sparsity;
        if (const auto colon = pattern.find(':'); colon != std::string::npos && sparsity <= 0)
            sparsity = 1.0 - std::stod(pattern.substr(0, colon)) / std::stod(pattern.substr(colon + 1));
        return {fmt::format("prune:{}/{}{}{}{}", v.prune_method.empty() ? "magnitude" : v.prune_method, pattern,
                            v.layers_drop.empty() ? "" : fmt::format("-{}layers", v.layers_drop.size()), then, imatrix),
                sparsity};
    }
    if (!v.layers_drop.empty()) return {"layers-drop" + then + imatrix, static_cast<double>(v.layers_drop.size())};
    return {(v.awq ? "quantize+awq" : "quantize") + imatrix, -bits_per_weight};
}

// KV caches are a ladder of their own: by the cache's bits per element (keys and values alike), and
// on top of a weight variant, that variant's ladder with the cache named.
std::pair<std::string, double> ladder_with_cache(const VariantSpec & v, bool with_imatrix, double bits_per_weight) {
    if (v.kv_cache.is_default()) return ladder_of(v, with_imatrix, bits_per_weight);
    const auto bits = [](ggml_type t) { return 8.0 * ggml_type_size(t) / ggml_blck_size(t); };
    const double cache_bits = (bits(v.kv_cache.k) + bits(v.kv_cache.v)) / 2;
    if (v.kv_only()) return {"kv-cache", -cache_bits};
    auto [ladder, severity] = ladder_of(v, with_imatrix, bits_per_weight);
    return {ladder + "+kv:" + v.kv_cache.label(), severity};
}

void build_one(const Plan & plan, const VariantSpec & v, const std::filesystem::path & out,
               const std::filesystem::path & imat, const VariantBuildOptions & o) {
    const int threads = o.threads;
    if (!v.mix_budget.empty()) {
        compress::MixOptions m{.input = plan.base->path, .output = out, .budget = v.mix_budget};
        m.data = compress::DriftData{.files = plan.screen.files,
                                     .context = plan.screen.context,
                                     .chunks = plan.screen.chunks,
                                     .skip_chunks = plan.screen.skip_chunks,
                                     .normalize = plan.normalize,
                                     .threads = threads,
                                     .progress = o.progress,
                                     .results = o.results};
        if (m.data.files.empty())
            throw Error("{}: variant {}: mix needs text to measure on ('screen' or 'calibration')",
                        plan.source.string(), variant_name(v));
        compress::mix(m);
    } else if (!v.prune_method.empty() || !v.layers_drop.empty()) {
        compress::PruneOptions p{
            .input = plan.base->path,
            .output = out,
            .method = compress::parse_method(v.prune_method.empty() ? "magnitude" : v.prune_method),
            .sparsity = v.sparsity,
            .pattern = compress::parse_pattern(v.pattern.empty() ? "unstructured" : v.pattern),
            .imatrix = imat,
            .layers_drop = v.layers_drop,
            .then_quantize = v.type,
            .threads = threads};
        compress::prune(p);
    } else if (v.awq) {
        compress::awq({.input = plan.base->path,
                       .output = out,
                       .imatrix = imat,
                       .type = v.type,
                       .quantize = true,
                       .threads = threads,
                       .progress = o.progress});
    } else {
        compress::quantize({.input = plan.base->path,
                            .output = out,
                            .type = v.type,
                            .imatrix = imat,
                            .threads = threads,
                            .progress = o.progress});
    }
}

// llama.cpp refuses some caches for some models (a block wider than the heads): said before anything
// is measured, naming the variant, by creating a small context with it.
void check_kv_cache(const Plan & plan, const std::string & name, const std::filesystem::path & model,
                    const model::KvCacheTypes & kv_cache) {
    if (kv_cache.is_default()) return;
    try {
        engine::LlamaEngine probe(
            {.model_path = model, .threads = 1, .context_length = 16, .parallel = 1, .kv_cache = kv_cache});
    } catch (const Error & e) {
        throw Error("{}: variant {}: {}", plan.source.string(), name, e.what());
    }
}

// The base's own file with another KV cache: nothing is built.
Candidate kv_variant(const Plan & plan, const VariantSpec & v, const std::string & name, const Candidate & original) {
    check_kv_cache(plan, name, plan.base->path, v.kv_cache);
    const auto [ladder, severity] = ladder_with_cache(v, false, original.bits_per_weight);
    Candidate c = original;
    c.name = name;
    c.kind = CandidateKind::variant;
    c.path = plan.base->path;
    c.description = describe(v, false);
    c.same_vocabulary = true;
    c.kv_cache = v.kv_cache;
    c.ladder = ladder;
    c.severity = severity;
    return c;
}

}  // namespace

BuiltVariants build_variants(const Plan & plan, const Candidate & original, const VariantBuildOptions & o) {
    BuiltVariants result;
    std::filesystem::path imat;
    for (const auto & v : plan.variants) {
        const bool wants_imatrix = v.imatrix && plan.calibration.has_value();
        if (wants_imatrix && imat.empty()) imat = imatrix(plan, o);
        const auto used = wants_imatrix ? imat : std::filesystem::path();
        if ((v.prune_method == "wanda" || v.awq) && used.empty())
            throw Error("{}: variant {}: {} needs 'calibration'", plan.source.string(), variant_name(v),
                        v.awq ? "AWQ" : "wanda pruning");
        VariantSpec named = v;
        named.imatrix = wants_imatrix;
        const auto name = variant_name(named);
        if (v.kv_only()) {
            result.variants.push_back(kv_variant(plan, v, name, original));
            continue;
        }
        const auto out = o.models_dir / (plan.base->name + "-" + name + ".gguf");
        const json key = {{"base", o.base_hash},
                          {"name", name},
                          {"type", v.type},
                          {"prune", v.prune_method},
                          {"sparsity", v.sparsity},
                          {"pattern", v.pattern},
                          {"layers_drop", v.layers_drop},
                          {"mix", v.mix_budget},
                          {"awq", v.awq},
                          {"imatrix", used.empty() ? "" : cached_sha256_file(used)}};
        const auto key_path = out.string() + ".key.json";
        if (std::filesystem::exists(out) && std::filesystem::exists(key_path) &&
            json::parse(read_whole_file(key_path, "variant key"), nullptr, false) == key) {
            ++result.reused;
        } else {
            build_one(plan, v, out, used, o);
            write_file_atomically(key_path, key.dump(2) + "\n");
            ++result.built;
        }
        check_kv_cache(plan, name, out, v.kv_cache);
        const auto info = model::inspect_gguf(out);
        const auto [ladder, severity] = ladder_with_cache(v, wants_imatrix, info.bits_per_weight);
        result.variants.push_back(Candidate{.name = name,
                                            .kind = CandidateKind::variant,
                                            .path = out,
                                            .description = describe(v, wants_imatrix),
                                            .capabilities = original.capabilities,
                                            .context_length = static_cast<int>(info.context_length),
                                            .file_bytes = info.file_bytes,
                                            .bits_per_weight = info.bits_per_weight,
                                            .parameters = info.parameters,
                                            .same_vocabulary = true,
                                            .kv_cache = v.kv_cache,
                                            .ladder = ladder,
                                            .severity = severity});
    }
    // For display, more bits per weight first; the search orders each ladder by its own measure.
    std::stable_sort(result.variants.begin(), result.variants.end(), [](const Candidate & a, const Candidate & b) {
        return a.bits_per_weight > b.bits_per_weight + 1e-9;
    });
    // Identical weights give identical answers: small models often end up so (llama.cpp keeps a
    // tensor at another type when a type cannot hold its shape). Only identical bytes count: the
    // same types can hold different weights (pruned or not, with or without the importance matrix).
    std::map<std::string, std::string> by_bytes;
    for (auto & c : result.variants) {
        // The same weights with another KV cache answer differently: not a duplicate.
        const auto hash = tensor_data_hash(c.path) + c.kv_cache.label();
        if (const auto same = by_bytes.find(hash); same != by_bytes.end()) {
            c.skipped = "tensor data byte-identical to " + same->second + ": evaluated once, as " + same->second;
        } else {
            by_bytes[hash] = c.name;
        }
    }
    o.note(fmt::format("variants: {} built, {} reused from {}", result.built, result.reused, o.models_dir.string()));
    return result;
}

}  // namespace switchyard::decide
