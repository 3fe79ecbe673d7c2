// http::Request::query_param, apart from the server: a pure function of the query string.
// (Boost 1.74, Debian's, predates Boost.URL.)
#include "serve/http_server.h"

#include <algorithm>
#include <cctype>

namespace switchyard::serve::http {

namespace {

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    return std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

// A '%' not followed by two hex digits is kept as it is, as browsers do.
std::string percent_decoded(std::string_view raw) {
    std::string value;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
            value += static_cast<char>(hex_digit(raw[i + 1]) * 16 + hex_digit(raw[i + 2]));
            i += 2;
        } else {
            value += raw[i] == '+' ? ' ' : raw[i];
        }
    }
    return value;
}

}  // namespace

std::string Request::query_param(std::string_view name) const {
    const std::string_view q = query;
    for (std::size_t at = 0; at <= q.size();) {
        const std::size_t end = std::min(q.find('&', at), q.size());
        const std::string_view pair = q.substr(at, end - at);
        at = end + 1;
        if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=')
            return percent_decoded(pair.substr(name.size() + 1));
    }
    return {};
}

}  // namespace switchyard::serve::http
