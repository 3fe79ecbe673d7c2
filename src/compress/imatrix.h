// Importance matrices: per weight matrix, per input column, the sum of squared activations seen
// on calibration data and how many rows were summed. llama.cpp's GGUF format is written; both
// its GGUF and legacy .dat formats are read, so files move freely between switchyard and llama.cpp.
#pragma once

#include "model/model_info.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace switchyard::compress {

struct ImatrixEntry {
    std::vector<float> sums;  // n_matrices x columns, row-major by matrix (experts have one each)
    std::vector<std::int64_t> counts;  // rows summed, one per matrix
};

struct Imatrix {
    std::map<std::string, ImatrixEntry> entries;  // by weight tensor name, e.g. "blk.0.attn_q.weight"
    std::vector<std::string> datasets;
    std::int32_t chunk_count = 0;
    std::int32_t chunk_size = 0;
    bool legacy = false;  // read from the old .dat format, whose sums are pre-normalised
};

// Reads either format; throws switchyard::Error for unreadable or inconsistent files.
Imatrix load_imatrix(const std::filesystem::path & path);

// Writes llama.cpp's GGUF imatrix format (<tensor>.in_sum2, <tensor>.counts), atomically.
void save_imatrix(const Imatrix & imatrix, const std::filesystem::path & path);

// Mean squared activation per column, as llama-quantize derives it before quantizing
// (columns never seen get 1, which leaves those weights unweighted).
std::map<std::string, std::vector<float>> column_importance(const Imatrix & imatrix);

// Throws switchyard::Error unless every entry names a tensor of `model` with a matching input
// width: an imatrix collected on another model would silently steer quantization wrongly.
void check_imatrix_matches(const Imatrix & imatrix, const model::ModelInfo & model,
                           const std::filesystem::path & imatrix_path);

}  // namespace switchyard::compress
