// The KV cache's element types, by the names llama-server's -ctk/-ctv take ("f16", "q8_0", ...).
#pragma once

#include <ggml.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace switchyard {
class YamlMap;
}

namespace switchyard::model {

struct KvCacheTypes {
    ggml_type k = GGML_TYPE_F16;
    ggml_type v = GGML_TYPE_F16;
    bool is_default() const { return k == GGML_TYPE_F16 && v == GGML_TYPE_F16; }
    std::string label() const;  // "q8_0/q4_0"
    // What results and measurements with this cache are stored under, after the file's hash:
    // "+kv=q8_0/q4_0", empty at the default (so that the file's own records stay its own).
    std::string key_suffix() const { return is_default() ? "" : "+kv=" + label(); }
    bool operator==(const KvCacheTypes &) const = default;
};

// The types llama-server accepts (common/arg.cpp's kv_cache_types): f32, f16, bf16, q8_0, q4_0,
// q4_1, iq4_nl, q5_0, q5_1. Throws switchyard::Error naming them for any other name.
ggml_type parse_cache_type(std::string_view name);

struct ModelInfo;

// Bytes of a KV cache of `cells` cells as llama.cpp allocates it: every layer's keys and values at
// their types (llama-style models, whose layers all cache alike).
std::uint64_t kv_cache_bytes(const ModelInfo & info, std::uint64_t cells, const KvCacheTypes & types);

// `kv: {k: TYPE, v: TYPE}` (a portfolio model, a plan variant); a type left out stays f16. A bad
// name fails naming its key.
KvCacheTypes read_kv_cache(const YamlMap & kv);

}  // namespace switchyard::model
