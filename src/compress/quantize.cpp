#include "compress/quantize.h"

#include "compress/imatrix.h"
#include "compress/quant_types.h"
#include "compress/recipe.h"
#include "model/engine_log.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/progress.h"
#include "support/sha256.h"

#include <llama.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <optional>
#include <regex>
#include <thread>

namespace switchyard::compress {

namespace {

bool copies_only(const QuantType & type) { return std::string_view(type.name) == "COPY"; }

bool is_float_type(const std::string & type) { return type == "f32" || type == "f16" || type == "bf16"; }

void refuse_requantize(const model::ModelInfo & input) {
    std::string quantized;
    for (const auto & [type, count] : input.tensor_types) {
        if (!is_float_type(type)) quantized += (quantized.empty() ? "" : ", ") + type + " x " + std::to_string(count);
    }
    if (quantized.empty()) return;
    throw Error(
        "{} is already quantized ({}): quantizing it again compounds the error of both steps; start from the F32/F16/BF16 original, or pass --allow-requantize to do it anyway",
        input.path.string(), quantized);
}

}  // namespace

nlohmann::json quantize_parameters(const QuantizeOptions & o) {
    nlohmann::json p = {{"type", parse_quant_type(o.type).name}, {"allow_requantize", o.allow_requantize}};
    if (!o.imatrix.empty())
        p["imatrix"] = {{"path", std::filesystem::absolute(o.imatrix).string()},
                        {"sha256", cached_sha256_file(o.imatrix)}};
    if (!o.tensor_types.empty()) {
        p["tensor_types"] = nlohmann::json::array();
        for (const auto & [pattern, type] : o.tensor_types)
            p["tensor_types"].push_back({{"pattern", pattern}, {"type", type}});
    }
    if (!o.output_type.empty()) p["output_type"] = o.output_type;
    if (!o.embedding_type.empty()) p["embedding_type"] = o.embedding_type;
    if (!o.prune_layers.empty()) p["prune_layers"] = o.prune_layers;
    return p;
}

QuantizeOptions quantize_options_from_recipe(const nlohmann::json & recipe, const std::filesystem::path & input,
                                             const std::filesystem::path & output) {
    const auto & p = recipe.at("parameters");
    QuantizeOptions o;
    o.input = input;
    o.output = output;
    o.type = p.at("type").get<std::string>();
    o.allow_requantize = p.value("allow_requantize", false);
    if (p.contains("imatrix")) o.imatrix = p["imatrix"].at("path").get<std::string>();
    for (const auto & t : p.value("tensor_types", nlohmann::json::array())) {
        o.tensor_types.emplace_back(t.at("pattern").get<std::string>(), t.at("type").get<std::string>());
    }
    o.output_type = p.value("output_type", "");
    o.embedding_type = p.value("embedding_type", "");
    o.prune_layers = p.value("prune_layers", std::vector<int>{});
    return o;
}

QuantizeResult quantize(const QuantizeOptions & o) {
    QuantizeResult result;
    // The recipe's digests cost a whole read of the parent and of the output. The parent's is
    // computed while llama.cpp quantizes, in a thread of its own at a low priority: quantizing
    // leaves a core idle while it reads, validates and writes each tensor. The output's is then
    // computed here while the parent's finishes. Both stay in the hash cache for the plan.
    std::future<std::string> parent;
    result.written = quantize_without_recipe(o, [&] {
        parent = std::async(std::launch::async, [&o] {
            setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
            return cached_sha256_file(o.input);
        });
    });
    const std::string output = cached_sha256_file(o.output);
    result.recipe =
        write_recipe(o.input, o.output, "quantize", quantize_parameters(o), {.parent = parent.get(), .output = output});
    result.recipe_path = recipe_path_for(o.output);
    return result;
}

namespace {

// llama.cpp's parameters for `o`, with the arrays they point into (hence neither copied nor moved).
struct PreparedParams {
    llama_model_quantize_params params = llama_model_quantize_default_params();
    std::vector<llama_model_tensor_override> overrides;
    std::map<std::string, std::vector<float>> importance;
    std::vector<llama_model_imatrix_data> imatrix_data;
    std::vector<std::int32_t> prune;

    PreparedParams(const QuantizeOptions & o, const model::ModelInfo & input);
    PreparedParams(const PreparedParams &) = delete;
    PreparedParams & operator=(const PreparedParams &) = delete;
};

PreparedParams::PreparedParams(const QuantizeOptions & o, const model::ModelInfo & input) {
    const QuantType & type = parse_quant_type(o.type);
    std::error_code ec;
    if (std::filesystem::equivalent(o.input, o.output, ec))
        throw Error("{}: the output would overwrite the input", o.output.string());
    if (!o.allow_requantize && !copies_only(type)) refuse_requantize(input);

    params.ftype = type.ftype;
    params.nthread = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    params.allow_requantize = o.allow_requantize;
    params.only_copy = copies_only(type);
    if (!o.output_type.empty()) params.output_tensor_type = parse_tensor_type(o.output_type);
    if (!o.embedding_type.empty()) params.token_embedding_type = parse_tensor_type(o.embedding_type);

    for (const auto & [pattern, name] : o.tensor_types) {
        try {
            std::regex check(pattern);
        } catch (const std::regex_error & e) {
            throw Error("--tensor-type: '{}' is not a valid regular expression: {}", pattern, e.what());
        }
        overrides.push_back({pattern.c_str(), parse_tensor_type(name)});
    }
    if (!overrides.empty()) {
        overrides.push_back({nullptr, GGML_TYPE_COUNT});
        params.tt_overrides = overrides.data();
    }

    if (!o.imatrix.empty()) {
        const Imatrix imatrix = load_imatrix(o.imatrix);
        check_imatrix_matches(imatrix, input, o.imatrix);
        importance = column_importance(imatrix);
        for (const auto & [name, values] : importance)
            imatrix_data.push_back({name.c_str(), values.data(), values.size()});
        imatrix_data.push_back({nullptr, nullptr, 0});
        params.imatrix = imatrix_data.data();
    }

    for (const int layer : o.prune_layers) {
        if (layer < 0 || static_cast<std::uint64_t>(layer) >= input.block_count) {
            throw Error("--prune-layers: layer {} does not exist (the model has {}, numbered from 0)", layer,
                        input.block_count);
        }
        prune.push_back(layer);
    }
    if (!prune.empty()) {
        prune.push_back(-1);
        params.prune_layers = prune.data();
    }
}

}  // namespace

std::map<std::string, std::string> planned_tensor_types(const QuantizeOptions & o) {
    model::init_llama_backend();
    const model::ModelInfo input = model::inspect_gguf(o.input);
    PreparedParams prepared(o, input);
    prepared.params.dry_run = true;
    // llama.cpp's dry run decides every tensor's type, as the real run would, and logs it per tensor:
    // "[  3/ 48] blk.0.attn_q.weight - [...], type = f32, size = ... MiB -> ... MiB (q4_0)".
    std::map<std::string, std::string> types;
    for (const auto & t : input.tensors) types[t.name] = t.type;
    {
        const model::EngineLineObserver lines([&types](std::string_view line) {
            char name[256] = {};
            if (std::sscanf(std::string(line).c_str(), "[%*u/%*u] %255s", name) != 1 || !types.contains(name)) return;
            const auto close = line.rfind(')');
            const auto open = line.rfind('(');
            if (close == line.size() - 1 && open != std::string_view::npos && line.find("->") != std::string_view::npos)
                types[name] = std::string(line.substr(open + 1, close - open - 1));
        });
        model::clear_engine_error();
        if (llama_model_quantize(o.input.c_str(), o.output.c_str(), &prepared.params) != 0) {
            const std::string detail = model::last_engine_error();
            throw Error("planning the quantization of {} to {} failed: {}", o.input.string(), o.type,
                        (detail.empty() ? "no detail from llama.cpp" : detail));
        }
    }
    return types;
}

model::ModelInfo quantize_without_recipe(const QuantizeOptions & o, const std::function<void()> & started) {
    model::init_llama_backend();
    const QuantType & type = parse_quant_type(o.type);
    const model::ModelInfo input = model::inspect_gguf(o.input);
    PreparedParams prepared(o, input);
    auto & params = prepared.params;

    AtomicFile out(o.output);
    if (started) started();
    model::clear_engine_error();
    // llama.cpp has no progress callback for quantizing, but logs a line per tensor as it starts it.
    std::optional<Progress> progress;
    unsigned tensor_count = 0;
    std::optional<model::EngineLineObserver> tensors;
    if (o.progress) {
        tensors.emplace([&progress, &tensor_count](std::string_view line) {
            unsigned tensor = 0;  // the one llama.cpp starts now, from 1
            if (std::sscanf(std::string(line.substr(0, 16)).c_str(), "[%u/%u]", &tensor, &tensor_count) != 2 ||
                tensor_count == 0 || tensor == 0)
                return;
            if (!progress) progress.emplace("quantize", tensor_count, "tensors");
            progress->update(tensor - 1);
        });
    }
    if (llama_model_quantize(o.input.c_str(), out.temp_path().c_str(), &params) != 0) {
        const std::string detail = model::last_engine_error();
        throw Error("quantizing {} to {} failed: {}", o.input.string(), type.name,
                    (detail.empty() ? "no detail from llama.cpp" : detail));
    }
    tensors.reset();
    if (progress) progress->update(tensor_count);
    progress.reset();
    model::ModelInfo written = model::inspect_gguf(out.temp_path());
    out.commit();
    written.path = o.output;
    return written;
}

}  // namespace switchyard::compress
