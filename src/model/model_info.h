// ModelInfo: what a GGUF file says about a model, as a deployer needs it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace switchyard::model {

struct TensorInfo {
    std::string name;
    std::string type;  // lower-case ggml type name
    std::vector<std::uint64_t> shape;  // ggml order: shape[0] is the row length (input columns)
    std::uint64_t bytes = 0;
};

struct ModelInfo {
    std::filesystem::path path;
    std::uint64_t file_bytes = 0;
    std::uint32_t gguf_version = 0;

    std::string architecture;
    std::string name;  // general.name, empty when absent

    std::uint64_t parameters = 0;  // elements over all tensors, as stored
    std::uint64_t tensor_count = 0;
    std::uint64_t tensor_data_bytes = 0;  // bytes of tensor data, without alignment padding
    std::uint64_t tensor_data_offset = 0;  // where the tensor data starts in the file (after the metadata)
    double bits_per_weight = 0.0;  // tensor_data_bytes * 8 / parameters
    std::map<std::string, std::uint64_t> tensor_types;  // lower-case ggml type name -> tensor count
    std::vector<TensorInfo> tensors;  // in file order

    // llama.cpp's name for the file type: from general.file_type, else derived from the tensors.
    std::string file_type;
    bool file_type_derived = false;

    std::uint64_t context_length = 0;  // <arch>.context_length (what the file declares)
    std::uint64_t embedding_length = 0;
    std::uint64_t block_count = 0;
    // Attention shape, what the KV cache is sized by. head_count is 0 where the file does not say;
    // the others default as llama.cpp's do (head_count, and embedding_length / head_count).
    std::uint64_t head_count = 0;
    std::uint64_t head_count_kv = 0;
    std::uint64_t key_length = 0;
    std::uint64_t value_length = 0;

    std::uint64_t vocab_size = 0;
    std::string tokenizer;  // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), ...
    bool byte_fallback = false;  // can every byte be encoded (SentencePiece byte tokens, or byte-level BPE)?
    bool has_chat_template = false;

    std::vector<std::string> capabilities;  // "text", "vision", "audio"
};

// Reads the metadata and tensor index of a GGUF file without loading tensor data.
// Throws switchyard::Error with a one-line reason for a missing, non-GGUF, truncated or corrupt file.
ModelInfo inspect_gguf(const std::filesystem::path & path);

// The same over bytes already in memory (`display_name` names them in errors); used by the fuzzer.
ModelInfo inspect_gguf_bytes(const void * data, std::size_t size, const std::string & display_name);

void to_json(nlohmann::json & out, const TensorInfo & tensor);
void to_json(nlohmann::json & out, const ModelInfo & info);

}  // namespace switchyard::model
