// The KV cache's element types, by the names llama-server's -ctk/-ctv take ("f16", "q8_0", ...).
#pragma once

#include <ggml.h>

#include <string_view>

namespace switchyard::model {

// The types llama-server accepts (common/arg.cpp's kv_cache_types): f32, f16, bf16, q8_0, q4_0,
// q4_1, iq4_nl, q5_0, q5_1. Throws switchyard::Error naming them for any other name.
ggml_type parse_cache_type(std::string_view name);

}  // namespace switchyard::model
