#include "compress/mix.h"

#include "compress/quant_types.h"
#include "compress/quantize.h"
#include "compress/recipe.h"
#include "eval/results_store.h"
#include "eval/text_chunks.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/units.h"
#include "support/progress.h"

#include <fmt/format.h>
#include <ggml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <random>

#include <unistd.h>

namespace switchyard::compress {

namespace {

// A private folder for the trial variants, removed with the object.
class ScratchFolder {
public:
    ScratchFolder() {
        std::random_device rd;
        path_ =
            std::filesystem::temp_directory_path() / fmt::format("switchyard-mix-{}-{}", ::getpid(), rd() % 1000000);
        std::filesystem::create_directories(path_);
    }
    ~ScratchFolder() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::filesystem::path file(const std::string & name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

std::string exact(const std::string & tensor) {
    std::string pattern = "^";
    for (const char c : tensor) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') pattern += '\\';
        pattern += c;
    }
    return pattern + "$";
}

// The ggml type a single-type quantization writes ("Q4_0" -> "q4_0"); mixes such as Q4_K_M have none.
std::string tensor_type_of(const std::string & quant_name) {
    std::string lower = parse_quant_type(quant_name).name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    try {
        parse_tensor_type(lower);
    } catch (const Error &) {
        throw Error(
            "'{}' is a mix of types; per-tensor choices need single types such as Q8_0, Q5_0, Q4_0, IQ4_NL, Q6_K",
            quant_name);
    }
    return lower;
}

bool is_weight_matrix(const model::TensorInfo & t) {
    return t.shape.size() >= 2 && t.name.ends_with(".weight") && t.name.find("_norm") == std::string::npos;
}

// Sets `tensor` to `type` in quantize options, through the option llama.cpp honours for it.
void assign(QuantizeOptions & q, const std::string & tensor, const std::string & type) {
    if (tensor == "token_embd.weight") {
        q.embedding_type = type;
    } else if (tensor == "output.weight") {
        q.output_type = type;
    } else {
        q.tensor_types.emplace_back(exact(tensor), type);
    }
}

// The original model, its measured reference distributions (recorded on first need), and trial
// variants measured against it. With a results store, a trial measured before on the same model
// and data is read back instead of quantized and run again.
class DriftBench {
public:
    DriftBench(const std::filesystem::path & model, const DriftData & data)
        : model_(model), data_(data), info_(model::inspect_gguf(model)) {
        context_ = data.context > 0 ? data.context : eval::default_chunk_context(info_.context_length);
        if (!data.results.empty()) {
            store_.emplace(data.results);
            model_hash_ = store_->model_hash(model);
            data_key_ = {{"format", 1},
                         {"context", context_},
                         {"chunks", data.chunks},
                         {"skip_chunks", data.skip_chunks},
                         {"normalize", data.normalize},
                         {"top_k", kTopK}};
            for (const auto & f : data.files) data_key_["files"].push_back(cached_sha256_file(f));
        }
    }

    const model::ModelInfo & info() const { return info_; }
    std::size_t trials_run() const { return trials_run_; }
    std::size_t trials_reused() const { return trials_reused_; }

    // What one trial wrote and how far it drifted: the file's size and, for `tensor`, its type and bytes.
    struct Trial {
        std::uint64_t file_bytes = 0;
        std::string tensor_type;
        std::uint64_t tensor_bytes = 0;
        eval::Drift drift;
    };

    // Quantizes with `q` into the scratch folder and measures the result; `what` names the trial
    // in the results store.
    Trial trial(QuantizeOptions q, const std::string & name, const nlohmann::json & what,
                const std::string & tensor = {}) {
        std::string key;
        if (store_) {
            key = nlohmann::json({{"trial", what}, {"data", data_key_}}).dump();
            if (const auto found = store_->find_measurement(model_hash_, "mix-trial", key)) {
                const auto j = nlohmann::json::parse(*found);
                ++trials_reused_;
                return {j.at("file_bytes").get<std::uint64_t>(), j.at("tensor_type").get<std::string>(),
                        j.at("tensor_bytes").get<std::uint64_t>(), j.at("drift").get<eval::Drift>()};
            }
        }
        q.input = model_;
        q.output = scratch_.file(name);
        q.threads = data_.threads;
        const model::ModelInfo written = quantize_without_recipe(q);
        Trial t{.file_bytes = written.file_bytes, .drift = measure(q.output)};
        const auto it = std::find_if(written.tensors.begin(), written.tensors.end(),
                                     [&](const auto & w) { return w.name == tensor; });
        if (it != written.tensors.end()) {
            t.tensor_type = it->type;
            t.tensor_bytes = it->bytes;
        }
        std::filesystem::remove(q.output);
        ++trials_run_;
        if (store_) {
            store_->record_measurement(model_hash_, "mix-trial", key,
                                       nlohmann::json({{"file_bytes", t.file_bytes},
                                                       {"tensor_type", t.tensor_type},
                                                       {"tensor_bytes", t.tensor_bytes},
                                                       {"drift", t.drift}})
                                           .dump());
        }
        return t;
    }

    eval::Drift measure(const std::filesystem::path & variant_path) {
        if (!reference_) {
            engine::LlamaEngine original(engine_options(model_));
            const eval::TextChunks text = eval::tokenize_chunks(original,
                                                                {.files = data_.files,
                                                                 .context = context_,
                                                                 .skip_chunks = data_.skip_chunks,
                                                                 .max_chunks = data_.chunks,
                                                                 .normalize = data_.normalize});
            reference_ = eval::record_reference(original, text.chunks, kTopK);
        }
        engine::LlamaEngine variant(engine_options(variant_path));
        return eval::measure_drift(*reference_, variant);
    }

private:
    // Full distributions for small vocabularies; the 1024 most likely tokens otherwise.
    static constexpr int kTopK = 1024;

    engine::LlamaEngineOptions engine_options(const std::filesystem::path & path) const {
        return {.model_path = path, .threads = data_.threads, .context_length = context_, .parallel = 4};
    }

    std::filesystem::path model_;
    DriftData data_;
    model::ModelInfo info_;
    int context_ = 0;
    std::optional<eval::Reference> reference_;
    std::optional<eval::ResultsStore> store_;
    std::string model_hash_;
    nlohmann::json data_key_;
    std::size_t trials_run_ = 0, trials_reused_ = 0;
    ScratchFolder scratch_;
};

std::vector<Sensitivity> sensitivity_on(DriftBench & bench, const std::vector<std::string> & types,
                                        bool show_progress) {
    std::vector<const model::TensorInfo *> weights;
    for (const auto & t : bench.info().tensors) {
        if (is_weight_matrix(t)) weights.push_back(&t);
    }
    std::vector<Sensitivity> out;
    std::optional<Progress> progress;
    if (show_progress) progress.emplace("sensitivity", weights.size() * types.size(), "trials");
    for (const auto & type : types) {
        const std::string tensor_type = tensor_type_of(type);
        for (const auto * target : weights) {
            QuantizeOptions q;
            q.type = type;
            assign(q, target->name, tensor_type);
            for (const auto * other : weights) {
                if (other != target) assign(q, other->name, other->type);
            }
            const auto t = bench.trial(q, "trial.gguf", {{"tensor", target->name}, {"type", type}}, target->name);
            out.push_back({target->name, t.tensor_type, target->bytes, t.tensor_bytes, t.drift});
            if (progress) progress->update(out.size());
        }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const Sensitivity & a, const Sensitivity & b) { return a.drift.kld.mean > b.drift.kld.mean; });
    return out;
}

struct Budget {
    double bytes = 0;  // file size; 0 when bits per weight are given
    double bpw = 0;
};

Budget parse_budget(const std::string & text) {
    const std::string kBpw = "bpw";
    if (text.size() > kBpw.size() && text.compare(text.size() - kBpw.size(), kBpw.size(), kBpw) == 0) {
        if (const auto bpw = parse_size(text.substr(0, text.size() - kBpw.size()))) return {0, *bpw};
    } else if (const auto bytes = parse_size(text)) {
        return {*bytes, 0};
    }
    throw Error(
        "--budget '{}': expected a size (e.g. 600K, 1.5M, 2G; K, M, G, KB, MB, GB) or bits per weight (e.g. 4.5bpw)",
        text);
}

}  // namespace

eval::Drift compare_models(const std::filesystem::path & original, const std::filesystem::path & variant,
                           const DriftData & data) {
    DriftBench bench(original, data);
    return bench.measure(variant);
}

std::vector<Sensitivity> measure_sensitivity(const std::filesystem::path & model,
                                             const std::vector<std::string> & types, const DriftData & data) {
    if (types.empty()) throw Error("no quantization type given");
    for (const auto & t : types) tensor_type_of(t);
    DriftBench bench(model, data);
    return sensitivity_on(bench, types, data.progress);
}

MixResult mix(const MixOptions & o) {
    if (o.types.empty()) throw Error("--types: give at least one quantization type");
    const Budget budget = parse_budget(o.budget);
    std::vector<std::string> tensor_types;
    for (const auto & t : o.types) tensor_types.push_back(tensor_type_of(t));
    // A lower bound first (every matrix at the smallest type's nominal size), so an impossible
    // budget is refused before minutes of measurement.
    const model::ModelInfo input = model::inspect_gguf(o.input);
    double smallest = static_cast<double>(input.file_bytes);
    for (const auto & t : input.tensors) {
        if (!is_weight_matrix(t)) continue;
        double least = static_cast<double>(t.bytes);
        const std::uint64_t rows =
            t.bytes / ggml_row_size(parse_tensor_type(t.type), static_cast<std::int64_t>(t.shape[0]));
        for (const auto & type : tensor_types)
            least = std::min(least,
                             static_cast<double>(
                                 rows * ggml_row_size(parse_tensor_type(type), static_cast<std::int64_t>(t.shape[0]))));
        smallest -= static_cast<double>(t.bytes) - least;
    }
    const double smallest_bpw =
        8.0 * (smallest - static_cast<double>(input.file_bytes - input.tensor_data_bytes)) / input.parameters;
    if (budget.bpw > 0 ? smallest_bpw > budget.bpw : smallest > budget.bytes) {
        throw Error("--budget {} is below the smallest file these types allow: {:.0f} bytes, {:.2f} bits per weight",
                    o.budget, smallest, smallest_bpw);
    }

    DriftBench bench(o.input, o.data);
    const auto & info = bench.info();
    const std::vector<Sensitivity> measured = sensitivity_on(bench, o.types, o.data.progress);

    // Per tensor, its options ordered by size: the smallest first, which is where the search starts.
    std::map<std::string, std::vector<const Sensitivity *>> options;
    for (const auto & s : measured) options[s.tensor].push_back(&s);
    for (auto & [name, list] : options) {
        std::sort(list.begin(), list.end(),
                  [](const Sensitivity * a, const Sensitivity * b) { return a->bytes < b->bytes; });
    }
    std::map<std::string, std::size_t> pick;
    double tensor_bytes = static_cast<double>(info.tensor_data_bytes);
    for (const auto & [name, list] : options) {
        pick[name] = 0;
        tensor_bytes += static_cast<double>(list[0]->bytes) - static_cast<double>(list[0]->original_bytes);
    }
    const double overhead = static_cast<double>(info.file_bytes - info.tensor_data_bytes);
    const auto fits = [&](double bytes) {
        return budget.bpw > 0 ? 8.0 * bytes / info.parameters <= budget.bpw + 1e-9 : bytes + overhead <= budget.bytes;
    };
    if (!fits(tensor_bytes)) {
        throw Error("--budget {} is below the smallest file these types allow: {:.0f} bytes, {:.2f} bits per weight",
                    o.budget, tensor_bytes + overhead, 8.0 * tensor_bytes / info.parameters);
    }
    // Greedy: repeatedly take the upgrade that removes the most KLD per extra byte and still fits.
    while (true) {
        const Sensitivity * best_from = nullptr;
        std::string best_tensor;
        std::size_t best_index = 0;
        double best_ratio = 0;
        for (const auto & [name, list] : options) {
            const Sensitivity * now = list[pick[name]];
            for (std::size_t i = pick[name] + 1; i < list.size(); ++i) {
                const double gain = now->drift.kld.mean - list[i]->drift.kld.mean;
                const double cost = static_cast<double>(list[i]->bytes) - static_cast<double>(now->bytes);
                if (gain <= 0 || !fits(tensor_bytes + cost)) continue;
                const double ratio = gain / std::max(cost, 1.0);
                if (ratio > best_ratio) {
                    best_ratio = ratio;
                    best_from = now;
                    best_tensor = name;
                    best_index = i;
                }
            }
        }
        if (best_from == nullptr) break;
        tensor_bytes +=
            static_cast<double>(options[best_tensor][best_index]->bytes) - static_cast<double>(best_from->bytes);
        pick[best_tensor] = best_index;
    }

    MixResult result;
    QuantizeOptions final_options;
    final_options.input = o.input;
    final_options.output = o.output;
    final_options.type = o.types.back();
    final_options.threads = o.data.threads;
    for (const auto & [name, list] : options) {
        const std::string & type = list[pick[name]]->type;
        assign(final_options, name, type);
        result.choice.emplace_back(name, type);
    }
    result.written = quantize_without_recipe(final_options);
    result.drift = bench.measure(o.output);
    ++result.quantized;
    for (const auto & type : o.types) {
        QuantizeOptions uniform;
        uniform.type = type;
        const auto t = bench.trial(uniform, "uniform.gguf", {{"uniform", type}});
        result.uniform.push_back({type, t.file_bytes, t.drift});
    }
    result.quantized += bench.trials_run();
    result.reused = bench.trials_reused();
    nlohmann::json parameters = quantize_parameters(final_options);
    parameters["budget"] = o.budget;
    parameters["types"] = o.types;
    nlohmann::json files = nlohmann::json::array();
    for (const auto & f : o.data.files) files.push_back(std::filesystem::absolute(f).string());
    parameters["data"] = {{"files", files},
                          {"chunks", o.data.chunks},
                          {"skip_chunks", o.data.skip_chunks},
                          {"normalize", o.data.normalize}};
    parameters["measured_kld_mean"] = result.drift.kld.mean;
    result.recipe = write_recipe(o.input, o.output, "mix", parameters);
    result.recipe_path = recipe_path_for(o.output);
    return result;
}

}  // namespace switchyard::compress
