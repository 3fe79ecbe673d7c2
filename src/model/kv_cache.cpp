#include "model/kv_cache.h"

#include "model/model_info.h"
#include "support/error.h"
#include "support/yaml_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

namespace switchyard::model {

std::string KvCacheTypes::label() const { return fmt::format("{}/{}", ggml_type_name(k), ggml_type_name(v)); }

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

std::uint64_t kv_cache_bytes(const ModelInfo & info, std::uint64_t cells, const KvCacheTypes & types) {
    const auto heads = static_cast<std::int64_t>(info.head_count_kv);
    const std::uint64_t per_cell = ggml_row_size(types.k, heads * static_cast<std::int64_t>(info.key_length)) +
        ggml_row_size(types.v, heads * static_cast<std::int64_t>(info.value_length));
    return info.block_count * cells * per_cell;
}

KvCacheTypes read_kv_cache(const YamlMap & kv) {
    kv.reject_unknown({"k", "v"});
    KvCacheTypes types;
    for (const auto & [key, type] : {std::pair{"k", &types.k}, std::pair{"v", &types.v}}) {
        if (!kv.has(key)) continue;
        try {
            *type = parse_cache_type(kv.string(key));
        } catch (const Error & error) {
            kv.fail(key, error.what());
        }
    }
    return types;
}

}  // namespace switchyard::model
