// UTF-8 helpers for streaming text that arrives in arbitrary byte pieces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace switchyard::utf8 {

// Length of the longest prefix of `s` that does not end inside a multi-byte sequence.
// Bytes after it are an incomplete sequence that a later piece may complete.
std::size_t complete_prefix_length(std::string_view s);

// Length in bytes of the sequence starting at s[i] (1 for an invalid lead byte), clamped to the end.
std::size_t sequence_length(std::string_view s, std::size_t i);

// Decodes the code point at s[i]; returns U+FFFD for a malformed sequence.
char32_t decode_at(std::string_view s, std::size_t i);

// A readable name for a code point in an error message, e.g. "U+000A (newline)" or "'é' (U+00E9)".
std::string describe(char32_t cp);

}  // namespace switchyard::utf8
