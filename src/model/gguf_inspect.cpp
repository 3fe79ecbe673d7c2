#include "model/engine_log.h"
#include "model/model_info.h"
#include "support/error.h"

#include <ggml-cpp.h>
#include <ggml.h>
#include <gguf.h>
#include <llama.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>

namespace switchyard::model {

namespace {

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
constexpr std::int32_t kTokenTypeByte = 6;  // llama_token_type LLAMA_TOKEN_TYPE_BYTE in gguf files

// ggml prefixes its messages with the function name ("gguf_init_from_file_impl: ..."): drop it.
std::string without_function_prefix(std::string message) {
    const auto colon = message.find(": ");
    if (colon != std::string::npos && std::all_of(message.begin(), message.begin() + colon, [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        })) {
        message.erase(0, colon + 2);
    }
    return message;
}

// Typed, checked access to metadata: gguf's own getters abort on a type mismatch,
// and a corrupt file can hold any type under any key.
class Metadata {
public:
    explicit Metadata(const gguf_context * ctx) : ctx_(ctx) {}

    std::optional<std::string> string(const std::string & key) const {
        const auto id = gguf_find_key(ctx_, key.c_str());
        if (id < 0 || gguf_get_kv_type(ctx_, id) != GGUF_TYPE_STRING) return std::nullopt;
        return std::string(gguf_get_val_str(ctx_, id));
    }

    std::optional<std::uint64_t> unsigned_integer(const std::string & key) const {
        const auto id = gguf_find_key(ctx_, key.c_str());
        if (id < 0) return std::nullopt;
        switch (gguf_get_kv_type(ctx_, id)) {
            case GGUF_TYPE_UINT8: return gguf_get_val_u8(ctx_, id);
            case GGUF_TYPE_UINT16: return gguf_get_val_u16(ctx_, id);
            case GGUF_TYPE_UINT32: return gguf_get_val_u32(ctx_, id);
            case GGUF_TYPE_UINT64: return gguf_get_val_u64(ctx_, id);
            case GGUF_TYPE_INT8: return non_negative(gguf_get_val_i8(ctx_, id));
            case GGUF_TYPE_INT16: return non_negative(gguf_get_val_i16(ctx_, id));
            case GGUF_TYPE_INT32: return non_negative(gguf_get_val_i32(ctx_, id));
            case GGUF_TYPE_INT64: return non_negative(gguf_get_val_i64(ctx_, id));
            default: return std::nullopt;
        }
    }

    bool flag(const std::string & key) const {
        const auto id = gguf_find_key(ctx_, key.c_str());
        return id >= 0 && gguf_get_kv_type(ctx_, id) == GGUF_TYPE_BOOL && gguf_get_val_bool(ctx_, id);
    }

    // Length of an array of `element` type under `key`, or nullopt.
    std::optional<std::size_t> array_length(const std::string & key, gguf_type element) const {
        const auto id = gguf_find_key(ctx_, key.c_str());
        if (id < 0 || gguf_get_kv_type(ctx_, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(ctx_, id) != element)
            return std::nullopt;
        return gguf_get_arr_n(ctx_, id);
    }

    bool int32_array_contains(const std::string & key, std::int32_t value) const {
        const auto n = array_length(key, GGUF_TYPE_INT32);
        if (!n) return false;
        const auto * data =
            static_cast<const std::int32_t *>(gguf_get_arr_data(ctx_, gguf_find_key(ctx_, key.c_str())));
        return std::find(data, data + *n, value) != data + *n;
    }

    bool string_array_contains(const std::string & key, const std::string & value) const {
        const auto n = array_length(key, GGUF_TYPE_STRING);
        if (!n) return false;
        const auto id = gguf_find_key(ctx_, key.c_str());
        for (std::size_t i = 0; i < *n; ++i) {
            if (value == gguf_get_arr_str(ctx_, id, i)) return true;
        }
        return false;
    }

    bool any_key_contains(const std::string & fragment) const {
        for (std::int64_t i = 0; i < gguf_get_n_kv(ctx_); ++i) {
            if (std::strstr(gguf_get_key(ctx_, i), fragment.c_str()) != nullptr) return true;
        }
        return false;
    }

private:
    template <typename T>
    static std::optional<std::uint64_t> non_negative(T v) {
        if (v < 0) return std::nullopt;
        return static_cast<std::uint64_t>(v);
    }

    const gguf_context * ctx_;
};

void check_magic(const void * data, std::size_t size, const std::string & name) {
    if (size < sizeof kMagic || std::memcmp(data, kMagic, sizeof kMagic) != 0) {
        throw Error("{}: not a GGUF file (it does not start with the bytes \"GGUF\")", name);
    }
}

// Fills everything except the file-level fields from an open gguf context.
ModelInfo describe(const gguf_context * ctx, std::uint64_t file_bytes, const std::string & name) {
    const Metadata meta(ctx);
    ModelInfo info;
    info.file_bytes = file_bytes;
    info.gguf_version = gguf_get_version(ctx);
    info.tensor_data_offset = gguf_get_data_offset(ctx);
    info.architecture = meta.string("general.architecture").value_or("");
    if (info.architecture.empty()) {
        throw Error("{}: GGUF file has no general.architecture string: not a model file llama.cpp can load", name);
    }
    info.name = meta.string("general.name").value_or("");

    // Tensor index: gguf has already checked shapes, types and that offsets are contiguous.
    std::map<ggml_type, std::uint64_t> weight_types;  // 2-D and larger tensors decide the file type
    std::uint64_t data_end = 0;
    const std::int64_t n_tensors = gguf_get_n_tensors(ctx);
    for (std::int64_t i = 0; i < n_tensors; ++i) {
        const ggml_type type = gguf_get_tensor_type(ctx, i);
        const std::size_t bytes = gguf_get_tensor_size(ctx, i);
        const std::int64_t * ne = gguf_get_tensor_ne(ctx, i);
        std::uint64_t elements = 1;
        int dims = 0;
        for (int d = 0; d < GGML_MAX_DIMS; ++d) {
            elements *= static_cast<std::uint64_t>(ne[d]);
            if (ne[d] > 1) dims = d + 1;
        }
        info.tensors.push_back({gguf_get_tensor_name(ctx, i), ggml_type_name(type),
                                std::vector<std::uint64_t>(ne, ne + std::max(dims, 1)), bytes});
        info.parameters += elements;
        info.tensor_data_bytes += bytes;
        info.tensor_types[ggml_type_name(type)] += 1;
        if (dims >= 2) weight_types[type] += 1;
        data_end = std::max<std::uint64_t>(data_end, gguf_get_tensor_offset(ctx, i) + bytes);
    }
    info.tensor_count = static_cast<std::uint64_t>(n_tensors);
    info.bits_per_weight =
        info.parameters > 0 ? 8.0 * static_cast<double>(info.tensor_data_bytes) / info.parameters : 0.0;

    if (const auto ftype = meta.unsigned_integer("general.file_type")) {
        info.file_type = llama_ftype_name(static_cast<llama_ftype>(*ftype));
    } else if (!weight_types.empty()) {
        const auto dominant = std::max_element(weight_types.begin(), weight_types.end(),
                                               [](const auto & a, const auto & b) { return a.second < b.second; });
        const bool uniform = weight_types.size() == 1 && info.tensor_types.size() == 1;
        std::string type = ggml_type_name(dominant->first);
        std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::toupper(c); });
        info.file_type = (uniform ? "all " : "mostly ") + type;
        info.file_type_derived = true;
    }

    const std::string & arch = info.architecture;
    info.context_length = meta.unsigned_integer(arch + ".context_length").value_or(0);
    info.embedding_length = meta.unsigned_integer(arch + ".embedding_length").value_or(0);
    info.block_count = meta.unsigned_integer(arch + ".block_count").value_or(0);
    info.head_count = meta.unsigned_integer(arch + ".attention.head_count").value_or(0);
    info.head_count_kv = meta.unsigned_integer(arch + ".attention.head_count_kv").value_or(info.head_count);
    const std::uint64_t head_length = info.head_count > 0 ? info.embedding_length / info.head_count : 0;
    info.key_length = meta.unsigned_integer(arch + ".attention.key_length").value_or(head_length);
    info.value_length = meta.unsigned_integer(arch + ".attention.value_length").value_or(head_length);

    info.tokenizer = meta.string("tokenizer.ggml.model").value_or("");
    info.vocab_size = meta.array_length("tokenizer.ggml.tokens", GGUF_TYPE_STRING)
                          .value_or(meta.unsigned_integer(arch + ".vocab_size").value_or(0));
    // Byte-level BPE maps every byte by construction; other tokenizers need explicit byte tokens.
    info.byte_fallback = info.tokenizer == "gpt2" ||
        meta.int32_array_contains("tokenizer.ggml.token_type", kTokenTypeByte) ||
        meta.string_array_contains("tokenizer.ggml.tokens", "<0x0A>");
    info.has_chat_template = meta.string("tokenizer.chat_template").has_value();

    // A projector file (arch "clip") carries an encoder, not a language model.
    if (arch != "clip") info.capabilities.push_back("text");
    if (meta.flag("clip.has_vision_encoder") || meta.any_key_contains(".vision."))
        info.capabilities.push_back("vision");
    if (meta.flag("clip.has_audio_encoder") || meta.any_key_contains(".audio.")) info.capabilities.push_back("audio");

    // gguf reads only the index; checked last so that a cut file still exercises everything above.
    const std::uint64_t needed = gguf_get_data_offset(ctx) + data_end;
    if (n_tensors > 0 && needed > file_bytes) {
        throw Error("{}: truncated GGUF file: its tensors need {} bytes but the file has {}", name, needed, file_bytes);
    }
    return info;
}

[[noreturn]] void throw_unreadable(const std::string & name) {
    std::string detail = without_function_prefix(last_engine_error());
    if (detail.empty()) detail = "the gguf reader rejected it";
    throw Error("{}: corrupt or truncated GGUF file: {}", name, detail);
}

}  // namespace

ModelInfo inspect_gguf(const std::filesystem::path & path) {
    install_engine_log();
    const std::string name = path.string();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) throw Error("{}: no such file", name);
    if (std::filesystem::is_directory(status)) throw Error("{}: is a directory, not a GGUF file", name);
    const std::uint64_t file_bytes = std::filesystem::file_size(path, ec);
    if (ec) throw Error("{}: cannot read: {}", name, ec.message());

    char head[sizeof kMagic] = {};
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("{}: cannot open for reading", name);
    in.read(head, sizeof head);
    check_magic(head, static_cast<std::size_t>(in.gcount()), name);

    clear_engine_error();
    gguf_context_ptr ctx(gguf_init_from_file(path.c_str(), {.no_alloc = true, .ctx = nullptr}));
    if (!ctx) throw_unreadable(name);
    ModelInfo info = describe(ctx.get(), file_bytes, name);
    info.path = path;
    return info;
}

ModelInfo inspect_gguf_bytes(const void * data, std::size_t size, const std::string & display_name) {
    install_engine_log();
    check_magic(data, size, display_name);
    clear_engine_error();
    gguf_context_ptr ctx(gguf_init_from_buffer(data, size, {.no_alloc = true, .ctx = nullptr}));
    if (!ctx) throw_unreadable(display_name);
    return describe(ctx.get(), size, display_name);
}

void to_json(nlohmann::json & out, const TensorInfo & t) {
    out = {{"name", t.name}, {"type", t.type}, {"shape", t.shape}, {"bytes", t.bytes}};
}

void to_json(nlohmann::json & out, const ModelInfo & info) {
    out = {
        {"path", info.path.string()},
        {"file_bytes", info.file_bytes},
        {"gguf_version", info.gguf_version},
        {"architecture", info.architecture},
        {"name", info.name},
        {"parameters", info.parameters},
        {"tensor_count", info.tensor_count},
        {"tensor_data_bytes", info.tensor_data_bytes},
        {"bits_per_weight", info.bits_per_weight},
        {"tensor_types", info.tensor_types},
        {"file_type", info.file_type},
        {"file_type_derived", info.file_type_derived},
        {"context_length", info.context_length},
        {"embedding_length", info.embedding_length},
        {"block_count", info.block_count},
        {"head_count", info.head_count},
        {"head_count_kv", info.head_count_kv},
        {"key_length", info.key_length},
        {"value_length", info.value_length},
        {"vocab_size", info.vocab_size},
        {"tokenizer", info.tokenizer},
        {"byte_fallback", info.byte_fallback},
        {"chat_template", info.has_chat_template},
        {"capabilities", info.capabilities},
        {"tensors", info.tensors},
    };
}

}  // namespace switchyard::model
