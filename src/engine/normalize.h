// Makes text encodable by a model whose vocabulary lacks characters (no byte fallback), on request.
#pragma once

#include "engine/engine.h"

#include <functional>
#include <string>
#include <string_view>

namespace switchyard::engine {

struct NormalizeStats {
    std::size_t dropped = 0;  // code points removed because the vocabulary cannot encode them
};

// Collapses every run of whitespace (newlines included) into one space and drops characters the
// engine's vocabulary cannot encode. Only for models that need it: a user asks with --normalize.
std::string normalize_for_vocabulary(const Engine & engine, std::string_view text, NormalizeStats * stats = nullptr);

// The same, for a vocabulary reached through `tokenize` (text, no BOS), which throws
// UnencodableText for a character it cannot encode: what serve's batcher offers.
using TokenizeText = std::function<std::vector<Token>(std::string_view text)>;
std::string normalize_for_vocabulary(const TokenizeText & tokenize, std::string_view text,
                                     NormalizeStats * stats = nullptr);

}  // namespace switchyard::engine
