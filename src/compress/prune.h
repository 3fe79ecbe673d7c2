// Pruning: zero the least important weights of each output row (magnitude or Wanda scores,
// unstructured or N:M), drop whole layers, optionally quantize the result.
#pragma once

#include "model/model_info.h"

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace switchyard::compress {

enum class PruneMethod { magnitude, wanda };

// Keep the n largest of every m consecutive weights in a row; {0, 0} is unstructured.
struct NmPattern {
    int n = 0;
    int m = 0;
    bool structured() const { return m > 0; }
};

struct PruneOptions {
    std::filesystem::path input;
    std::filesystem::path output;
    PruneMethod method = PruneMethod::magnitude;
    double sparsity = 0.0;  // fraction of each row to zero; 0 with no pattern: no weight pruning
    NmPattern pattern;
    std::filesystem::path imatrix;  // required by wanda
    std::vector<int> layers_drop;
    bool include_embeddings = false;  // token_embd.weight (magnitude only: it has no input activations)
    bool include_output = false;  // output.weight (wanda needs it in the imatrix: calibrate --include-output)
    std::string then_quantize;  // quantization type for the pruned model; empty: keep the input's types
    int threads = 0;
};

struct TensorSparsity {
    std::string name;
    std::uint64_t zeros = 0;
    std::uint64_t elements = 0;
    double sparsity() const { return elements > 0 ? static_cast<double>(zeros) / elements : 0.0; }
};

struct PruneResult {
    model::ModelInfo written;
    std::vector<TensorSparsity> pruned;  // measured by reading the pruned weights back
    double overall_sparsity = 0.0;  // over the pruned tensors
    std::filesystem::path recipe_path;
    nlohmann::json recipe;
};

// The storage note every report and recipe carries: zeros in dense tensors cost as much as any weight.
extern const char * const kDenseStorageNote;

// Throws switchyard::Error on bad options (sparsity out of range, wanda without a matching imatrix,
// quantized input); the output appears whole or not at all.
PruneResult prune(const PruneOptions & options);

nlohmann::json prune_parameters(const PruneOptions & options);
PruneOptions prune_options_from_recipe(const nlohmann::json & recipe, const std::filesystem::path & input,
                                       const std::filesystem::path & output);

// Zeroes weights in place, row by row (rows of `columns` values). Scores are |w| times the column's
// scale (empty `column_scale`: magnitude). Unstructured: the round(sparsity * columns) lowest per
// row; N:M: all but the n highest of each group of m. Ties go to the lower column index.
void prune_rows(std::span<float> weights, std::size_t columns, std::span<const float> column_scale, double sparsity,
                NmPattern pattern);

NmPattern parse_pattern(const std::string & text);  // "unstructured", "2:4", "4:8"
PruneMethod parse_method(const std::string & text);

}  // namespace switchyard::compress
