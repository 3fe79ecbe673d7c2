#include "compress/quant_types.h"

#include "support/error.h"

#include <ggml.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace switchyard::compress {

namespace {

// llama.cpp exposes the file types as an enum but keeps their command-line names inside the
// llama-quantize tool, so the same table lives here (tools/quantize/quantize.cpp, v0.5.0).
constexpr std::array kTypes = {
    QuantType{"F32", LLAMA_FTYPE_ALL_F32, "32-bit float (no quantization)"},
    QuantType{"F16", LLAMA_FTYPE_MOSTLY_F16, "16-bit float"},
    QuantType{"BF16", LLAMA_FTYPE_MOSTLY_BF16, "16-bit brain float"},
    QuantType{"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0, "8.5 bpw, 32-weight blocks"},
    QuantType{"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K, "6.56 bpw k-quant"},
    QuantType{"Q5_1", LLAMA_FTYPE_MOSTLY_Q5_1, "6 bpw, 32-weight blocks with offset"},
    QuantType{"Q5_0", LLAMA_FTYPE_MOSTLY_Q5_0, "5.5 bpw, 32-weight blocks"},
    QuantType{"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M, "k-quant mix, 5-bit medium"},
    QuantType{"Q5_K", LLAMA_FTYPE_MOSTLY_Q5_K_M, "alias for Q5_K_M"},
    QuantType{"Q5_K_S", LLAMA_FTYPE_MOSTLY_Q5_K_S, "k-quant mix, 5-bit small"},
    QuantType{"Q4_1", LLAMA_FTYPE_MOSTLY_Q4_1, "5 bpw, 32-weight blocks with offset"},
    QuantType{"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0, "4.5 bpw, 32-weight blocks"},
    QuantType{"IQ4_NL", LLAMA_FTYPE_MOSTLY_IQ4_NL, "4.5 bpw non-linear, 32-weight blocks"},
    QuantType{"IQ4_XS", LLAMA_FTYPE_MOSTLY_IQ4_XS, "4.25 bpw non-linear"},
    QuantType{"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M, "k-quant mix, 4-bit medium"},
    QuantType{"Q4_K", LLAMA_FTYPE_MOSTLY_Q4_K_M, "alias for Q4_K_M"},
    QuantType{"Q4_K_S", LLAMA_FTYPE_MOSTLY_Q4_K_S, "k-quant mix, 4-bit small"},
    QuantType{"MXFP4_MOE", LLAMA_FTYPE_MOSTLY_MXFP4_MOE, "MXFP4 for mixture-of-experts weights"},
    QuantType{"NVFP4", LLAMA_FTYPE_MOSTLY_NVFP4, "NVIDIA FP4"},
    QuantType{"Q3_K_L", LLAMA_FTYPE_MOSTLY_Q3_K_L, "k-quant mix, 3-bit large"},
    QuantType{"Q3_K_M", LLAMA_FTYPE_MOSTLY_Q3_K_M, "k-quant mix, 3-bit medium"},
    QuantType{"Q3_K", LLAMA_FTYPE_MOSTLY_Q3_K_M, "alias for Q3_K_M"},
    QuantType{"Q3_K_S", LLAMA_FTYPE_MOSTLY_Q3_K_S, "k-quant mix, 3-bit small"},
    QuantType{"IQ3_M", LLAMA_FTYPE_MOSTLY_IQ3_M, "3.66 bpw mix"},
    QuantType{"IQ3_S", LLAMA_FTYPE_MOSTLY_IQ3_S, "3.44 bpw"},
    QuantType{"IQ3_XS", LLAMA_FTYPE_MOSTLY_IQ3_XS, "3.3 bpw"},
    QuantType{"IQ3_XXS", LLAMA_FTYPE_MOSTLY_IQ3_XXS, "3.06 bpw"},
    QuantType{"Q2_K", LLAMA_FTYPE_MOSTLY_Q2_K, "k-quant mix, 2-bit"},
    QuantType{"Q2_K_S", LLAMA_FTYPE_MOSTLY_Q2_K_S, "k-quant mix, 2-bit small"},
    QuantType{"Q2_0", LLAMA_FTYPE_MOSTLY_Q2_0, "2.25 bpw, 64-weight groups"},
    QuantType{"IQ2_M", LLAMA_FTYPE_MOSTLY_IQ2_M, "2.7 bpw"},
    QuantType{"IQ2_S", LLAMA_FTYPE_MOSTLY_IQ2_S, "2.5 bpw"},
    QuantType{"IQ2_XS", LLAMA_FTYPE_MOSTLY_IQ2_XS, "2.31 bpw"},
    QuantType{"IQ2_XXS", LLAMA_FTYPE_MOSTLY_IQ2_XXS, "2.06 bpw"},
    QuantType{"TQ2_0", LLAMA_FTYPE_MOSTLY_TQ2_0, "2.06 bpw ternary"},
    QuantType{"TQ1_0", LLAMA_FTYPE_MOSTLY_TQ1_0, "1.69 bpw ternary"},
    QuantType{"IQ1_M", LLAMA_FTYPE_MOSTLY_IQ1_M, "1.75 bpw"},
    QuantType{"IQ1_S", LLAMA_FTYPE_MOSTLY_IQ1_S, "1.56 bpw"},
    QuantType{"Q1_0", LLAMA_FTYPE_MOSTLY_Q1_0, "1.125 bpw"},
    QuantType{"COPY", LLAMA_FTYPE_ALL_F32, "copy tensors as they are (with --prune-layers: drop layers only)"},
};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

std::span<const QuantType> quant_types() { return kTypes; }

const QuantType & parse_quant_type(std::string_view name) {
    for (const auto & t : kTypes) {
        if (iequals(t.name, name)) return t;
    }
    std::string valid;
    for (const auto & t : kTypes) valid += (valid.empty() ? "" : ", ") + std::string(t.name);
    throw Error("unknown quantization type '{}'; valid types: {}", std::string(name), valid);
}

ggml_type parse_tensor_type(std::string_view name) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const auto type = static_cast<ggml_type>(t);
        const char * type_name = ggml_type_name(type);
        // Removed types keep their slot in the enum with a placeholder name or a zero size.
        if (type_name != nullptr && ggml_type_size(type) > 0 && iequals(type_name, name)) return type;
    }
    throw Error("unknown tensor type '{}' (use a ggml type name such as f16, q8_0, q4_0, iq4_nl)", std::string(name));
}

}  // namespace switchyard::compress
