// Quantization of a GGUF model through llama.cpp's llama_model_quantize, with a report of what was
// really written and a recipe beside the output that says how to rebuild it.
#pragma once

#include "model/model_info.h"

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace switchyard::compress {

struct QuantizeOptions {
    std::filesystem::path input;
    std::filesystem::path output;
    std::string type;  // llama-quantize name, e.g. "Q4_0"; "COPY" copies tensors as they are
    std::filesystem::path imatrix;  // empty: none
    std::vector<std::pair<std::string, std::string>> tensor_types;  // regex -> ggml type, first match wins
    std::string output_type;  // output.weight type; empty: llama.cpp decides
    std::string embedding_type;  // token_embd.weight type; empty: llama.cpp decides
    std::vector<int> prune_layers;  // whole layers to drop
    bool allow_requantize = false;
    int threads = 0;  // 0: all
    bool progress = false;  // tensors done and the time left on stderr (support/progress.h)
};

struct QuantizeResult {
    model::ModelInfo written;  // read back from the output file
    std::filesystem::path recipe_path;
    nlohmann::json recipe;
};

// Quantizes, reads the output back and writes OUTPUT.recipe.json. Output files appear whole or
// not at all. Throws switchyard::Error on bad options, input, imatrix, or a failed write.
QuantizeResult quantize(const QuantizeOptions & options);

// The same without the recipe, for methods that quantize as one of their steps. `started` runs
// once the options and the input are checked, as llama.cpp begins: work to overlap with it.
model::ModelInfo quantize_without_recipe(const QuantizeOptions & options, const std::function<void()> & started = {});

// The type llama.cpp would give each tensor of `options.input` (lower-case ggml names, by tensor
// name), fallbacks included, from a dry run that writes nothing. Throws as quantize does.
std::map<std::string, std::string> planned_tensor_types(const QuantizeOptions & options);

// Options as a recipe records them, and back: a recipe rebuilds the same file.
nlohmann::json quantize_parameters(const QuantizeOptions & options);
QuantizeOptions quantize_options_from_recipe(const nlohmann::json & recipe, const std::filesystem::path & input,
                                             const std::filesystem::path & output);

}  // namespace switchyard::compress
