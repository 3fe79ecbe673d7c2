// Per-tensor sensitivity to quantization, and mixed precision chosen from it under a size budget:
// keep the tensors whose quantization moves the predictions most at higher precision.
#pragma once

#include "eval/drift.h"
#include "model/model_info.h"

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace switchyard::compress {

// Text and engine settings shared by sensitivity and mix.
struct DriftData {
    std::vector<std::filesystem::path> files;
    int context = 0;  // 0: min(512, the model's declared context)
    int chunks = 16;  // text chunks to measure on
    int skip_chunks = 0;  // e.g. past the chunks used for calibration
    bool normalize = false;
    int threads = 0;
    bool progress = true;
    // A results store (SQLite): each trial quantization's size and drift is kept there by model
    // and data, and read back instead of run again, so a second `sensitivity` or a `mix` under a
    // new budget quantizes only the mix itself. Empty: nothing kept.
    std::filesystem::path results;
};

// Drift of `variant` from `original` on the data (both must share a vocabulary).
eval::Drift compare_models(const std::filesystem::path & original, const std::filesystem::path & variant,
                           const DriftData & data);

struct Sensitivity {
    std::string tensor;
    std::string type;  // the type it was quantized to (after llama.cpp's fallbacks)
    std::uint64_t original_bytes = 0;
    std::uint64_t bytes = 0;
    eval::Drift drift;  // with only this tensor quantized
};

// Quantizes one weight matrix at a time to each of `types`, the rest left as they are, and
// measures the drift from the original on the data (or reads it back from `data.results`). Sorted
// by mean KLD, largest first.
std::vector<Sensitivity> measure_sensitivity(const std::filesystem::path & model,
                                             const std::vector<std::string> & types, const DriftData & data);

struct MixOptions {
    std::filesystem::path input;
    std::filesystem::path output;
    std::string budget;  // file size ("600K", "1.5M", "2G", bytes) or bits per weight ("4.5bpw")
    std::vector<std::string> types = {"Q8_0", "Q5_0", "Q4_0"};
    DriftData data;
};

struct UniformComparison {
    std::string type;
    std::uint64_t file_bytes = 0;
    eval::Drift drift;
};

struct MixResult {
    model::ModelInfo written;
    std::vector<std::pair<std::string, std::string>> choice;  // tensor -> type
    eval::Drift drift;  // of the written mix, measured
    std::vector<UniformComparison> uniform;  // each candidate type applied to all tensors
    std::filesystem::path recipe_path;
    nlohmann::json recipe;
    std::size_t quantized = 0;  // quantizations run: trials not found in the results store, and the mix
    std::size_t reused = 0;  // trials read back from the results store
};

// Throws switchyard::Error for a malformed budget or one below the smallest file the types allow.
MixResult mix(const MixOptions & options);

}  // namespace switchyard::compress
