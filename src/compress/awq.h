// AWQ (activation-aware weight quantization): per input channel, scale a linear layer's weights up
// by s = a^alpha before rounding and fold 1/s exactly into the op before it, with alpha searched per
// group of layers against the quantizer the model will really meet. a is the channel's activation
// RMS, sqrt(E[x^2]) from the importance matrix (AWQ proper uses E|x|; the matrix holds E[x^2] only).
#pragma once

#include "model/model_info.h"

#include <ggml.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace switchyard::compress {

struct AwqOptions {
    std::filesystem::path input;  // llama architecture, F32/F16/BF16 weights
    std::filesystem::path output;
    std::filesystem::path imatrix;  // from `switchyard calibrate` or llama-imatrix
    std::string type = "Q4_K_M";  // the quantization the scales are searched for
    std::string alpha_grid = "0:1:0.05";  // FROM:TO:STEP
    // true: OUT is the quantized model (the scaled one and its matrix are scratch files);
    // false: OUT is the scaled model and the rescaled matrix goes to awq_imatrix_path(OUT).
    bool quantize = false;
    std::map<std::string, double> alphas;  // fixed alpha per group (a rebuild): no search
    int threads = 0;  // 0: all
    bool progress = false;
};

// One group of linear layers sharing an input, and the scale chosen for it.
struct AwqGroup {
    std::string
        name;  // "blk.3.attn_in" (q, k, v), "blk.3.attn_out" (o), "blk.3.ffn_in" (gate, up), "blk.3.ffn_out" (down)
    double alpha = 0;
    double error = 0;  // activation-weighted quantization error at alpha
    double error_unscaled = 0;  // the same at alpha = 0 (plain imatrix quantization)
};

struct AwqResult {
    model::ModelInfo written;
    std::vector<AwqGroup> groups;
    std::vector<std::string> notes;  // groups left unscaled and why
    std::filesystem::path imatrix_output;  // empty with `quantize`
    double search_seconds = 0;
    std::filesystem::path recipe_path;
    nlohmann::json recipe;
};

// Throws switchyard::Error on a refused architecture (one whose norms cannot absorb the scale, or
// tensors with no exact fold), a quantized input, a mismatched imatrix, or a bad grid. The outputs
// appear whole or not at all, with a recipe beside OUT.
AwqResult awq(const AwqOptions & options);

// Where `awq` without `quantize` writes the rescaled importance matrix: OUT with .imatrix.gguf.
std::filesystem::path awq_imatrix_path(const std::filesystem::path & output);

nlohmann::json awq_parameters(const AwqOptions & options, const AwqResult & result);
AwqOptions awq_options_from_recipe(const nlohmann::json & recipe, const std::filesystem::path & input,
                                   const std::filesystem::path & output);

// "0:1:0.05" -> 0, 0.05, ..., 1. Throws switchyard::Error naming the text.
std::vector<double> parse_alpha_grid(const std::string & text);

// s_j = a_j^alpha with a_j = sqrt(mean_sq_j) (floored at 1e-6 of the largest), normalised by
// sqrt(max s * min s) as AWQ does; alpha = 0 gives exactly 1 everywhere.
std::vector<float> awq_scales(std::span<const float> mean_sq, double alpha);

// sum_j mean_sq_j * sum_i (W_ij - Q(W_ij s_j) / s_j)^2 for a row-major matrix of `columns`, with Q
// ggml's own quantize (importance mean_sq / s^2, as the rescaled matrix gives it) and to_float for
// `type`. Zero for types that are not quantized.
double awq_error(std::span<const float> weights, std::size_t columns, std::span<const float> mean_sq,
                 std::span<const float> scales, ggml_type type, int threads);

}  // namespace switchyard::compress
