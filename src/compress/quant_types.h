// The quantization types switchyard offers: llama.cpp's file types under the names llama-quantize
// uses, and per-tensor ggml types for overrides.
#pragma once

#include <llama.h>

#include <span>
#include <string>
#include <string_view>

namespace switchyard::compress {

struct QuantType {
    const char * name;  // as llama-quantize spells it
    llama_ftype ftype;
    const char * description;
};

// Every type llama_model_quantize accepts, mild to aggressive within each family.
std::span<const QuantType> quant_types();

// Case-insensitive lookup; throws switchyard::Error listing the valid names.
const QuantType & parse_quant_type(std::string_view name);

// A ggml tensor type by name ("q8_0", "F16"), for --tensor-type and friends; throws on unknown names.
ggml_type parse_tensor_type(std::string_view name);

}  // namespace switchyard::compress
