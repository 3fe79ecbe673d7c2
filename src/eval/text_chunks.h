// Text as a model sees it in calibration, perplexity and drift measurements: files tokenized into chunks of
// the context length, each starting with BOS, cut the way llama.cpp's imatrix and perplexity tools cut them.
#pragma once

#include "engine/engine.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace switchyard::eval {

struct TextChunkOptions {
    std::vector<std::filesystem::path> files;  // plain text, or task suites (.jsonl: the items' text)
    int context = 0;  // tokens per chunk
    int skip_chunks = 0;  // leave this many chunks out first (held out for another use)
    int max_chunks = 0;  // 0: all that remain
    bool normalize = false;  // collapse whitespace, drop characters the vocabulary lacks
};

struct TextChunks {
    std::vector<std::vector<engine::Token>> chunks;
    std::vector<engine::Token> stream;  // the whole tokenized text, BOS first (for sliding windows)
    std::size_t available = 0;  // chunks the data holds after skipping
    std::size_t dropped_characters = 0;
    std::vector<std::string> sources;  // file names, for the record
};

// The chunk length when none is given: the model's declared context, at most 512 tokens (long
// declared contexts would make few, slow chunks of small models).
int default_chunk_context(std::uint64_t declared_context);

// Throws switchyard::Error for unreadable files, text the vocabulary cannot encode (naming the
// file and suggesting --normalize), or data too short for one chunk after skipping.
TextChunks tokenize_chunks(const engine::Engine & engine, const TextChunkOptions & options);

}  // namespace switchyard::eval
