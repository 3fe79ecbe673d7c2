#include "compress/awq.h"

#include "compress/gguf_rewrite.h"
#include "compress/imatrix.h"
#include "compress/quant_types.h"
#include "compress/quantize.h"
#include "compress/recipe.h"
#include "model/engine_log.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/progress.h"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <set>

namespace switchyard::compress {

namespace {

// A llama block holds exactly these; anything else (biases, q/k norms, experts) has no fold here.
constexpr std::array<const char *, 9> kBlockTensors = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                                       "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};

std::string tensor_name(std::uint64_t block, const char * what) { return fmt::format("blk.{}.{}.weight", block, what); }

struct Heads {
    std::uint32_t heads = 0;
    std::uint32_t kv_heads = 0;
};

std::uint32_t head_count(const gguf_context * g, const std::string & key, const std::filesystem::path & path) {
    const auto id = gguf_find_key(g, key.c_str());
    if (id < 0) return 0;
    if (gguf_get_kv_type(g, id) != GGUF_TYPE_UINT32)
        throw Error("{}: {} is not one number (per-layer head counts are not supported by awq)", path.string(), key);
    return gguf_get_val_u32(g, id);
}

// Refuses what the fold cannot handle exactly, before any work.
Heads check_architecture(const GgufReader & reader, const model::ModelInfo & info) {
    const auto & path = info.path;
    if (info.architecture != "llama") {
        throw Error(
            "{}: awq supports the llama architecture only (RMSNorm times w, which absorbs 1/s exactly); '{}' is refused, as its norm or layout may not (Gemma's multiplies by 1 + w)",
            path.string(), info.architecture);
    }
    std::set<std::string> expected;
    for (std::uint64_t b = 0; b < info.block_count; ++b)
        for (const char * what : kBlockTensors) expected.insert(tensor_name(b, what));
    for (const auto & t : info.tensors) {
        if (t.name.rfind("blk.", 0) != 0) continue;
        if (!expected.contains(t.name))
            throw Error("{}: tensor {} has no exact AWQ fold (llama blocks without biases or extra norms only)",
                        path.string(), t.name);
        if (t.type != "f32" && t.type != "f16" && t.type != "bf16")
            throw Error("{}: {} is {}: awq works on F32/F16/BF16 weights; start from the original", path.string(),
                        t.name, t.type);
    }
    for (const auto & name : expected)
        if (!reader.find(name)) throw Error("{}: lacks {}, which every llama block has", path.string(), name);
    Heads h;
    h.heads = head_count(reader.gguf(), "llama.attention.head_count", path);
    h.kv_heads = head_count(reader.gguf(), "llama.attention.head_count_kv", path);
    if (h.kv_heads == 0) h.kv_heads = h.heads;
    if (h.heads == 0 || h.heads % h.kv_heads != 0)
        throw Error("{}: head counts {} / {} (kv) do not describe grouped-query attention", path.string(), h.heads,
                    h.kv_heads);
    return h;
}

// Per weight tensor: what its input columns are multiplied by, and for v and up what their output
// rows are divided by; per norm: what its weight is divided by.
struct Scales {
    std::map<std::string, std::vector<float>> columns;
    std::map<std::string, std::vector<float>> rows_divide;
    std::map<std::string, std::vector<float>> norms_divide;
};

struct Member {
    std::string name;
    std::vector<float> weights;
    std::size_t columns = 0;
    ggml_type type = GGML_TYPE_F32;
};

// One group: its channels' statistics (which set s), how channel scales spread over the members'
// columns (only o differs: a kv channel serves every query head of its group), and the members'
// own per-column statistics (which weigh the error).
struct GroupInput {
    std::string name;
    std::vector<float> channel_stats;
    std::function<std::vector<float>(const std::vector<float> &)> expand;
    std::vector<float> column_stats;
    std::vector<Member> members;
};

struct SearchContext {
    const AwqOptions & options;
    const std::vector<double> & grid;
    AwqResult & result;
};

// Returns the chosen scales per channel.
std::vector<float> search_group(const GroupInput & g, SearchContext & c) {
    const auto error_at = [&](double alpha) {
        const auto s = g.expand(awq_scales(g.channel_stats, alpha));
        double e = 0;
        for (const auto & m : g.members)
            e += awq_error(m.weights, m.columns, g.column_stats, s, m.type, c.options.threads);
        return e;
    };
    AwqGroup out{.name = g.name};
    bool quantized = false;
    for (const auto & m : g.members) quantized = quantized || ggml_is_quantized(m.type);
    if (!c.options.alphas.empty()) {
        const auto it = c.options.alphas.find(g.name);
        if (it == c.options.alphas.end()) throw Error("the recipe has no alpha for the group {}", g.name);
        out.alpha = it->second;
        if (quantized) out.error = error_at(out.alpha), out.error_unscaled = error_at(0);
    } else if (!quantized) {
        c.result.notes.push_back(fmt::format("{}: left unscaled: {} does not quantize these tensors ({})", g.name,
                                             c.options.type, ggml_type_name(g.members.front().type)));
    } else {
        out.error = std::numeric_limits<double>::infinity();
        for (const double alpha : c.grid) {
            const double e = error_at(alpha);
            if (alpha == 0) out.error_unscaled = e;
            if (e < out.error) out.error = e, out.alpha = alpha;  // ties keep the milder alpha
        }
        if (c.grid.front() != 0) out.error_unscaled = error_at(0);
    }
    c.result.groups.push_back(out);
    return awq_scales(g.channel_stats, out.alpha);
}

const std::vector<float> & stats_of(const std::map<std::string, std::vector<float>> & importance,
                                    const std::string & tensor, const std::filesystem::path & imatrix) {
    const auto it = importance.find(tensor);
    if (it == importance.end())
        throw Error("{}: has no activations for {}, which awq needs for every block's q/k/v, o, gate/up and down",
                    imatrix.string(), tensor);
    return it->second;
}

// Searches one block's four groups and records their scales.
void search_block(std::uint64_t b, GgufReader & reader, const Heads & heads,
                  const std::map<std::string, std::vector<float>> & importance,
                  const std::map<std::string, std::string> & types, SearchContext & c, Scales & scales) {
    const auto member = [&](const char * what) {
        const auto name = tensor_name(b, what);
        const ggml_tensor * t = reader.find(name);
        return Member{name, reader.floats(name), static_cast<std::size_t>(t->ne[0]), parse_tensor_type(types.at(name))};
    };
    const auto same = [](const std::vector<float> & s) { return s; };
    const auto & imatrix = c.options.imatrix;

    const auto & attn_in = stats_of(importance, tensor_name(b, "attn_q"), imatrix);
    const auto s_attn = search_group({fmt::format("blk.{}.attn_in", b),
                                      attn_in,
                                      same,
                                      attn_in,
                                      {member("attn_q"), member("attn_k"), member("attn_v")}},
                                     c);

    // o's input column h*d + i is head h's channel i, which kv head h / (heads / kv_heads) produces:
    // one scale per kv channel, from the mean statistics of the query heads sharing it.
    const auto & o_stats = stats_of(importance, tensor_name(b, "attn_output"), imatrix);
    const std::size_t head_dim = o_stats.size() / heads.heads;
    const std::uint32_t group = heads.heads / heads.kv_heads;
    std::vector<float> kv_stats(head_dim * heads.kv_heads, 0.0f);
    for (std::size_t col = 0; col < o_stats.size(); ++col)
        kv_stats[(col / head_dim / group) * head_dim + col % head_dim] += o_stats[col] / static_cast<float>(group);
    const auto spread = [head_dim, group](const std::vector<float> & s_kv) {
        std::vector<float> s(s_kv.size() * group);
        for (std::size_t col = 0; col < s.size(); ++col)
            s[col] = s_kv[(col / head_dim / group) * head_dim + col % head_dim];
        return s;
    };
    const auto s_kv =
        search_group({fmt::format("blk.{}.attn_out", b), kv_stats, spread, o_stats, {member("attn_output")}}, c);

    const auto & ffn_in = stats_of(importance, tensor_name(b, "ffn_gate"), imatrix);
    const auto s_ffn = search_group(
        {fmt::format("blk.{}.ffn_in", b), ffn_in, same, ffn_in, {member("ffn_gate"), member("ffn_up")}}, c);
    const auto & down = stats_of(importance, tensor_name(b, "ffn_down"), imatrix);
    const auto s_down = search_group({fmt::format("blk.{}.ffn_out", b), down, same, down, {member("ffn_down")}}, c);

    for (const char * what : {"attn_q", "attn_k", "attn_v"}) scales.columns[tensor_name(b, what)] = s_attn;
    scales.norms_divide[tensor_name(b, "attn_norm")] = s_attn;
    scales.columns[tensor_name(b, "attn_output")] = spread(s_kv);
    scales.rows_divide[tensor_name(b, "attn_v")] = s_kv;
    for (const char * what : {"ffn_gate", "ffn_up"}) scales.columns[tensor_name(b, what)] = s_ffn;
    scales.norms_divide[tensor_name(b, "ffn_norm")] = s_ffn;
    scales.columns[tensor_name(b, "ffn_down")] = s_down;
    scales.rows_divide[tensor_name(b, "ffn_up")] = s_down;
}

// Applies the scales to one tensor on its way to the output; false leaves it as it was.
bool apply(const Scales & scales, const ggml_tensor * t, std::vector<float> & values) {
    bool changed = false;
    const auto columns = static_cast<std::size_t>(t->ne[0]);
    if (const auto it = scales.norms_divide.find(t->name); it != scales.norms_divide.end()) {
        for (std::size_t j = 0; j < values.size(); ++j) values[j] /= it->second[j];
        changed = true;
    }
    if (const auto it = scales.columns.find(t->name); it != scales.columns.end()) {
        for (std::size_t k = 0; k < values.size(); ++k) values[k] *= it->second[k % columns];
        changed = true;
    }
    if (const auto it = scales.rows_divide.find(t->name); it != scales.rows_divide.end()) {
        for (std::size_t k = 0; k < values.size(); ++k) values[k] /= it->second[k / columns];
        changed = true;
    }
    return changed;
}

// A column whose weights are multiplied by s sees activations divided by s: E[x^2] / s^2.
void rescale(Imatrix & imatrix, const Scales & scales) {
    for (auto & [name, entry] : imatrix.entries) {
        const auto it = scales.columns.find(name);
        if (it == scales.columns.end()) continue;
        for (std::size_t j = 0; j < entry.sums.size(); ++j) {
            const float s = it->second[j % it->second.size()];
            entry.sums[j] /= s * s;
        }
    }
}

Scales search(const AwqOptions & o, const model::ModelInfo & info, const Heads & heads, GgufReader & reader,
              const Imatrix & imatrix, AwqResult & result) {
    const auto grid = parse_alpha_grid(o.alpha_grid);
    // The types llama.cpp will really give each tensor for this quantization, fallbacks included.
    const auto types = planned_tensor_types(
        {.input = o.input, .output = o.output, .type = o.type, .imatrix = o.imatrix, .threads = o.threads});
    const auto importance = column_importance(imatrix);
    const auto start = std::chrono::steady_clock::now();
    Scales scales;
    SearchContext context{o, grid, result};
    std::optional<Progress> progress;
    if (o.progress) progress.emplace("awq", info.block_count, "blocks");
    for (std::uint64_t b = 0; b < info.block_count; ++b) {
        search_block(b, reader, heads, importance, types, context, scales);
        if (progress) progress->update(b + 1);
    }
    result.search_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return scales;
}

}  // namespace

std::filesystem::path awq_imatrix_path(const std::filesystem::path & output) {
    return std::filesystem::path(output).replace_extension(".imatrix.gguf");
}

nlohmann::json awq_parameters(const AwqOptions & o, const AwqResult & r) {
    const Imatrix imatrix = load_imatrix(o.imatrix);
    nlohmann::json groups = nlohmann::json::array();
    for (const auto & g : r.groups)
        groups.push_back(
            {{"name", g.name}, {"alpha", g.alpha}, {"error", g.error}, {"error_unscaled", g.error_unscaled}});
    return {
        {"type", parse_quant_type(o.type).name},
        {"alpha_grid", o.alpha_grid},
        {"quantize", o.quantize},
        {"activation_statistic", "sqrt(E[x^2]) per input channel, from the importance matrix (AWQ proper uses E|x|)"},
        {"imatrix",
         {{"path", std::filesystem::absolute(o.imatrix).string()},
          {"sha256", cached_sha256_file(o.imatrix)},
          {"datasets", imatrix.datasets},
          {"chunk_count", imatrix.chunk_count},
          {"chunk_size", imatrix.chunk_size}}},
        {"groups", groups},
        {"notes", r.notes},
    };
}

AwqOptions awq_options_from_recipe(const nlohmann::json & recipe, const std::filesystem::path & input,
                                   const std::filesystem::path & output) {
    const auto & p = recipe.at("parameters");
    AwqOptions o{.input = input,
                 .output = output,
                 .imatrix = p.at("imatrix").at("path").get<std::string>(),
                 .type = p.at("type").get<std::string>(),
                 .alpha_grid = p.at("alpha_grid").get<std::string>(),
                 .quantize = p.at("quantize").get<bool>()};
    for (const auto & g : p.at("groups")) o.alphas[g.at("name").get<std::string>()] = g.at("alpha").get<double>();
    return o;
}

AwqResult awq(const AwqOptions & o) {
    model::init_llama_backend();
    const model::ModelInfo info = model::inspect_gguf(o.input);
    GgufReader reader(o.input);
    const Heads heads = check_architecture(reader, info);
    std::error_code ec;
    if (std::filesystem::equivalent(o.input, o.output, ec))
        throw Error("{}: the output would overwrite the input", o.output.string());
    Imatrix imatrix = load_imatrix(o.imatrix);
    check_imatrix_matches(imatrix, info, o.imatrix);

    AwqResult result;
    const Scales scales = search(o, info, heads, reader, imatrix, result);
    rescale(imatrix, scales);
    const auto change = [&scales](const ggml_tensor * t, std::vector<float> & values) {
        return apply(scales, t, values);
    };
    AtomicFile out(o.output);
    if (o.quantize) {
        AtomicFile scaled(o.output.string() + ".scaled");
        AtomicFile matrix(o.output.string() + ".imatrix");
        rewrite_gguf(o.input, scaled.temp_path(), change);
        save_imatrix(imatrix, matrix.temp_path());
        quantize_without_recipe({.input = scaled.temp_path(),
                                 .output = out.temp_path(),
                                 .type = o.type,
                                 .imatrix = matrix.temp_path(),
                                 .threads = o.threads,
                                 .progress = o.progress});
    } else {
        rewrite_gguf(o.input, out.temp_path(), change);
        result.imatrix_output = awq_imatrix_path(o.output);
        save_imatrix(imatrix, result.imatrix_output);
    }
    result.written = model::inspect_gguf(out.temp_path());
    out.commit();
    result.written.path = o.output;
    result.recipe = write_recipe(o.input, o.output, "awq", awq_parameters(o, result));
    result.recipe_path = recipe_path_for(o.output);
    return result;
}

}  // namespace switchyard::compress
