#include "support/utf8.h"

#include <cstdio>

namespace switchyard::utf8 {

namespace {

std::size_t expected_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 1;  // continuation byte or invalid lead: treat as a unit of its own
}

}  // namespace

std::size_t sequence_length(std::string_view s, std::size_t i) {
    const std::size_t n = expected_length(static_cast<unsigned char>(s[i]));
    return std::min(n, s.size() - i);
}

std::size_t complete_prefix_length(std::string_view s) {
    // Only the last three bytes can belong to an unfinished sequence.
    const std::size_t first = s.size() > 3 ? s.size() - 3 : 0;
    for (std::size_t i = s.size(); i > first; --i) {
        const auto c = static_cast<unsigned char>(s[i - 1]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        const std::size_t need = expected_length(c);
        return (s.size() - (i - 1) < need) ? i - 1 : s.size();
    }
    return s.size();
}

char32_t decode_at(std::string_view s, std::size_t i) {
    const auto lead = static_cast<unsigned char>(s[i]);
    const std::size_t n = expected_length(lead);
    if (n == 1) return lead < 0x80 ? lead : U'\uFFFD';
    if (i + n > s.size()) return U'\uFFFD';
    char32_t cp = lead & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
        const auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xC0) != 0x80) return U'\uFFFD';
        cp = (cp << 6) | (c & 0x3F);
    }
    return cp;
}

std::string describe(char32_t cp) {
    char code[16];
    std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(cp));
    switch (cp) {
        case U'\n': return std::string(code) + " (newline)";
        case U'\r': return std::string(code) + " (carriage return)";
        case U'\t': return std::string(code) + " (tab)";
        default: break;
    }
    if (cp < 0x20 || cp == 0x7F) return std::string(code) + " (control character)";
    std::string glyph;
    if (cp < 0x80) {
        glyph = static_cast<char>(cp);
    } else if (cp < 0x800) {
        glyph += static_cast<char>(0xC0 | (cp >> 6));
        glyph += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        glyph += static_cast<char>(0xE0 | (cp >> 12));
        glyph += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        glyph += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        glyph += static_cast<char>(0xF0 | (cp >> 18));
        glyph += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        glyph += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        glyph += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return "'" + glyph + "' (" + code + ")";
}

}  // namespace switchyard::utf8
