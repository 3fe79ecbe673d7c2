#include "compress/prune.h"

#include "compress/gguf_rewrite.h"
#include "compress/imatrix.h"
#include "compress/quantize.h"
#include "compress/recipe.h"
#include "model/engine_log.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/sha256.h"

#include <ggml.h>
#include <ggml-cpp.h>
#include <gguf.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>

namespace switchyard::compress {

const char * const kDenseStorageNote =
    "pruned weights are stored densely as zeros: file size and speed are unchanged until the model is quantized "
    "(--then-quantize) or run by a sparse kernel";

namespace {

bool selected(const ggml_tensor * t, const PruneOptions & o) {
    if (ggml_n_dims(t) < 2) return false;  // norms and biases
    const std::string name = t->name;
    if (name == "token_embd.weight") return o.include_embeddings;
    if (name == "output.weight") return o.include_output;
    return name.rfind("blk.", 0) == 0;
}

std::uint64_t count_zeros(const std::vector<float> & values) {
    return static_cast<std::uint64_t>(std::count(values.begin(), values.end(), 0.0f));
}

// Writes `input` to `output` with the selected weight matrices pruned, streaming one tensor at a time.
std::vector<TensorSparsity> write_pruned(const PruneOptions & o,
                                         const std::map<std::string, std::vector<float>> & importance,
                                         const std::filesystem::path & output) {
    std::vector<TensorSparsity> pruned;
    rewrite_gguf(o.input, output, [&](const ggml_tensor * t, std::vector<float> & values) {
        if (!selected(t, o)) return false;
        const auto columns = static_cast<std::size_t>(t->ne[0]);
        const std::size_t per_matrix = columns * static_cast<std::size_t>(t->ne[1]);
        const auto it = importance.find(t->name);
        for (std::size_t m = 0; m * per_matrix < values.size(); ++m) {
            std::span<const float> scale;
            if (it != importance.end()) scale = std::span<const float>(it->second).subspan(m * columns, columns);
            prune_rows(std::span<float>(values).subspan(m * per_matrix, per_matrix), columns, scale, o.sparsity,
                       o.pattern);
        }
        pruned.push_back({t->name, 0, values.size()});
        return true;
    });
    return pruned;
}

// Counts the zeros really stored in each pruned tensor.
void measure(const std::filesystem::path & path, std::vector<TensorSparsity> & pruned) {
    GgufReader reader(path);
    for (auto & p : pruned) p.zeros = count_zeros(reader.floats(p.name));
}

void validate(const PruneOptions & o, const model::ModelInfo & input) {
    if (o.pattern.structured()) {
        if (o.pattern.n < 1 || o.pattern.n >= o.pattern.m) throw Error("--pattern: N:M needs 0 < N < M");
        const double implied = 1.0 - static_cast<double>(o.pattern.n) / o.pattern.m;
        if (o.sparsity != 0.0 && std::abs(o.sparsity - implied) > 1e-9) {
            throw Error("--sparsity {} contradicts --pattern {}:{}, which zeroes {} of each row", o.sparsity,
                        o.pattern.n, o.pattern.m, implied);
        }
    } else if (o.sparsity < 0.0 || o.sparsity >= 1.0) {
        throw Error("--sparsity must be a fraction in [0, 1), e.g. 0.5");
    }
    if (o.sparsity == 0.0 && !o.pattern.structured() && o.layers_drop.empty()) {
        throw Error("nothing to prune: give --sparsity, --pattern or --layers-drop");
    }
    if (o.method == PruneMethod::wanda && o.imatrix.empty()) {
        throw Error("wanda scores weights by their input activations: pass --imatrix (from `switchyard calibrate`)");
    }
    if (o.method == PruneMethod::wanda && o.include_embeddings) {
        throw Error("wanda cannot prune token_embd.weight (a lookup table has no input activations); use magnitude");
    }
    for (const auto & [type, count] : input.tensor_types) {
        if (type != "f32" && type != "f16" && type != "bf16") {
            throw Error(
                "{} holds {} tensors: prune works on F32/F16/BF16 weights; prune the original and use --then-quantize",
                input.path.string(), type);
        }
    }
}

}  // namespace

void prune_rows(std::span<float> weights, std::size_t columns, std::span<const float> column_scale, double sparsity,
                NmPattern pattern) {
    if (columns == 0) return;
    std::vector<float> score(columns);
    std::vector<std::size_t> order(columns);
    const auto by_score = [&](std::size_t a, std::size_t b) {
        return score[a] != score[b] ? score[a] < score[b] : a < b;
    };
    const auto k = static_cast<std::size_t>(std::llround(sparsity * static_cast<double>(columns)));
    for (std::size_t row = 0; row * columns < weights.size(); ++row) {
        float * w = weights.data() + row * columns;
        for (std::size_t j = 0; j < columns; ++j)
            score[j] = std::abs(w[j]) * (column_scale.empty() ? 1.0f : std::sqrt(column_scale[j]));
        if (pattern.structured()) {
            const auto m = static_cast<std::size_t>(pattern.m);
            const auto drop = m - static_cast<std::size_t>(pattern.n);
            for (std::size_t g = 0; g + m <= columns; g += m) {
                std::iota(order.begin(), order.begin() + m, g);
                std::nth_element(order.begin(), order.begin() + drop, order.begin() + m, by_score);
                for (std::size_t i = 0; i < drop; ++i) w[order[i]] = 0.0f;
            }
        } else if (k > 0) {
            std::iota(order.begin(), order.end(), 0);
            std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), by_score);
            for (std::size_t i = 0; i < k; ++i) w[order[i]] = 0.0f;
        }
    }
}

NmPattern parse_pattern(const std::string & text) {
    if (text.empty() || text == "unstructured") return {};
    int n = 0, m = 0;
    char tail = 0;
    if (std::sscanf(text.c_str(), "%d:%d%c", &n, &m, &tail) != 2 || n < 1 || m <= n) {
        throw Error("--pattern '{}': expected unstructured or N:M with 0 < N < M, e.g. 2:4", text);
    }
    return {n, m};
}

PruneMethod parse_method(const std::string & text) {
    if (text == "magnitude") return PruneMethod::magnitude;
    if (text == "wanda") return PruneMethod::wanda;
    throw Error("--method '{}': expected magnitude or wanda", text);
}

nlohmann::json prune_parameters(const PruneOptions & o) {
    nlohmann::json p = {
        {"method", o.method == PruneMethod::wanda ? "wanda" : "magnitude"},
        {"sparsity", o.sparsity},
        {"pattern",
         o.pattern.structured() ? std::to_string(o.pattern.n) + ":" + std::to_string(o.pattern.m) : "unstructured"},
        {"include_embeddings", o.include_embeddings},
        {"include_output", o.include_output},
        {"note", kDenseStorageNote},
    };
    if (!o.imatrix.empty())
        p["imatrix"] = {{"path", std::filesystem::absolute(o.imatrix).string()}, {"sha256", sha256_file(o.imatrix)}};
    if (!o.layers_drop.empty()) p["layers_drop"] = o.layers_drop;
    if (!o.then_quantize.empty()) p["then_quantize"] = o.then_quantize;
    return p;
}

PruneOptions prune_options_from_recipe(const nlohmann::json & recipe, const std::filesystem::path & input,
                                       const std::filesystem::path & output) {
    const auto & p = recipe.at("parameters");
    PruneOptions o;
    o.input = input;
    o.output = output;
    o.method = parse_method(p.at("method").get<std::string>());
    o.sparsity = p.at("sparsity").get<double>();
    o.pattern = parse_pattern(p.at("pattern").get<std::string>());
    o.include_embeddings = p.value("include_embeddings", false);
    o.include_output = p.value("include_output", false);
    if (p.contains("imatrix")) o.imatrix = p["imatrix"].at("path").get<std::string>();
    o.layers_drop = p.value("layers_drop", std::vector<int>{});
    o.then_quantize = p.value("then_quantize", "");
    return o;
}

PruneResult prune(const PruneOptions & o) {
    model::init_llama_backend();
    const model::ModelInfo input = model::inspect_gguf(o.input);
    validate(o, input);
    std::error_code ec;
    if (std::filesystem::equivalent(o.input, o.output, ec))
        throw Error("{}: the output would overwrite the input", o.output.string());

    std::map<std::string, std::vector<float>> importance;
    if (o.method == PruneMethod::wanda) {
        const Imatrix imatrix = load_imatrix(o.imatrix);
        check_imatrix_matches(imatrix, input, o.imatrix);
        importance = column_importance(imatrix);
        for (const auto & t : input.tensors) {
            const bool wanted = t.shape.size() >= 2 &&
                ((t.name.rfind("blk.", 0) == 0) || (o.include_output && t.name == "output.weight"));
            if (wanted && !importance.contains(t.name)) {
                throw Error("{} has no activations for {}{}", o.imatrix.string(), t.name,
                            (t.name == "output.weight" ? " (calibrate with --include-output)" : ""));
            }
        }
    }

    PruneResult result;
    const bool then_quantize = !o.then_quantize.empty() || !o.layers_drop.empty();
    AtomicFile out(o.output);
    // With a second step, the pruned weights go to a scratch file that step reads.
    AtomicFile stage(std::filesystem::path(o.output.string() + ".pruned"));
    const std::filesystem::path pruned_path = then_quantize ? stage.temp_path() : out.temp_path();
    result.pruned = write_pruned(o, importance, pruned_path);
    measure(pruned_path, result.pruned);
    std::uint64_t zeros = 0, elements = 0;
    for (const auto & p : result.pruned) {
        zeros += p.zeros;
        elements += p.elements;
    }
    result.overall_sparsity = elements > 0 ? static_cast<double>(zeros) / elements : 0.0;

    if (then_quantize) {
        QuantizeOptions q;
        q.input = pruned_path;
        q.output = out.temp_path();
        q.type = o.then_quantize.empty() ? "COPY" : o.then_quantize;
        q.prune_layers = o.layers_drop;
        q.threads = o.threads;
        quantize_without_recipe(q);
    }
    result.written = model::inspect_gguf(out.temp_path());
    out.commit();
    result.written.path = o.output;
    nlohmann::json parameters = prune_parameters(o);
    parameters["measured_sparsity"] = result.overall_sparsity;
    result.recipe = write_recipe(o.input, o.output, "prune", parameters);
    result.recipe_path = recipe_path_for(o.output);
    return result;
}

}  // namespace switchyard::compress
