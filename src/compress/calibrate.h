// Calibration: runs a model over a user's own text and collects the importance matrix (per weight
// matrix and input column, the sum of squared activations) that quantization and pruning use.
#pragma once

#include "compress/imatrix.h"

#include <filesystem>
#include <vector>

namespace switchyard::compress {

struct CalibrateOptions {
    std::filesystem::path model;
    std::vector<std::filesystem::path> data;  // plain-text files, concatenated
    int chunks =
        200;  // calibration samples: chunks of `context` tokens, each starting with BOS (as llama-imatrix makes them)
    int skip_chunks = 0;  // chunks to skip first (keep them for testing, say)
    int context = 0;  // tokens per chunk; 0: min(512, the model's declared context)
    bool normalize = false;  // make the text encodable (collapse whitespace, drop unknown characters)
    bool include_output = false;  // also collect for output.weight (llama-imatrix's --process-output)
    int threads = 0;
    int parallel = 4;  // chunks decoded side by side (1 reproduces llama-imatrix's arithmetic exactly)
    bool progress = true;
};

struct CalibrateResult {
    Imatrix imatrix;
    int chunks_used = 0;
    int chunks_available = 0;  // in the data after skipping
    std::size_t tokens = 0;
    double seconds = 0.0;
    std::size_t dropped_characters = 0;  // by normalisation
    double logprob_sum =
        0.0;  // over each chunk's second half (llama-imatrix's): the calibration text's perplexity comes free
    std::size_t scored_tokens = 0;

    double perplexity() const;
};

// Throws switchyard::Error for unreadable data, text the vocabulary cannot encode (without
// `normalize`), too little data for one chunk, or non-finite activations.
CalibrateResult calibrate(const CalibrateOptions & options);

}  // namespace switchyard::compress
