#include "engine/normalize.h"

#include "support/error.h"
#include "support/utf8.h"

#include <unordered_map>

namespace switchyard::engine {

std::string normalize_for_vocabulary(const Engine & engine, std::string_view text, NormalizeStats * stats) {
    return normalize_for_vocabulary([&engine](std::string_view t) { return engine.tokenize(t, false); }, text, stats);
}

std::string normalize_for_vocabulary(const TokenizeText & tokenize, std::string_view text, NormalizeStats * stats) {
    std::unordered_map<char32_t, bool> encodable;  // one tokenizer call per distinct character
    std::string out;
    out.reserve(text.size());
    bool pending_space = false;
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t len = utf8::sequence_length(text, i);
        const char32_t cp = utf8::decode_at(text, i);
        const std::string_view ch = text.substr(i, len);
        i += len;
        if (cp == U' ' || cp == U'\n' || cp == U'\t' || cp == U'\r' || cp == U'\f' || cp == U'\v') {
            pending_space = !out.empty();
            continue;
        }
        auto [it, fresh] = encodable.try_emplace(cp, true);
        if (fresh) {
            try {
                tokenize(ch);
            } catch (const UnencodableText &) {
                it->second = false;
            }
        }
        if (!it->second) {
            if (stats != nullptr) ++stats->dropped;
            continue;
        }
        if (pending_space) out += ' ';
        pending_space = false;
        out += ch;
    }
    return out;
}

}  // namespace switchyard::engine
