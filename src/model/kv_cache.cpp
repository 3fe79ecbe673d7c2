#include "model/kv_cache.h"

#include "support/error.h"

#include <fmt/ranges.h>

#include <vector>

namespace switchyard::model {

ggml_type parse_cache_type(std::string_view name) {
    static constexpr ggml_type kAccepted[] = {GGML_TYPE_F32,    GGML_TYPE_F16,  GGML_TYPE_BF16,
                                              GGML_TYPE_Q8_0,   GGML_TYPE_Q4_0, GGML_TYPE_Q4_1,
                                              GGML_TYPE_IQ4_NL, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1};
    std::vector<std::string_view> names;
    for (const ggml_type type : kAccepted) {
        if (name == ggml_type_name(type)) return type;
        names.emplace_back(ggml_type_name(type));
    }
    throw Error("unsupported KV cache type '{}': use one of {}", name, fmt::join(names, ", "));
}

}  // namespace switchyard::model
