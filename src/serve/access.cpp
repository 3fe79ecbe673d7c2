#include "serve/access.h"

#include "support/error.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

namespace switchyard::serve {

namespace {

// Compares without leaking, through timing, how much of a secret a guess got right.
bool constant_time_equal(const std::string & a, const std::string & b) {
    const std::size_t n = std::max(a.size(), b.size());
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (std::size_t i = 0; i < n; ++i) {
        const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned>(x ^ y);
    }
    return diff == 0;
}

std::string bearer_token(const http::Request & req) {
    const std::string h = req.header("Authorization");
    return h.starts_with("Bearer ") ? h.substr(7) : std::string();
}

}  // namespace

std::vector<std::string> api_keys_from_env(const std::string & env) {
    const char * keys = std::getenv(env.c_str());
    if (keys == nullptr || *keys == 0) throw Error("api_keys_env names {}, which is not set", env);
    std::vector<std::string> out;
    std::stringstream in(keys);
    for (std::string key; std::getline(in, key, ',');) {
        if (!key.empty()) out.push_back(key);
    }
    return out;
}

std::optional<ApiError> check_api_key(const http::Request & req, const std::vector<std::string> & keys) {
    if (keys.empty()) return std::nullopt;
    const std::string key = bearer_token(req);
    bool ok = false;
    for (const auto & k : keys) ok |= constant_time_equal(key, k);
    if (ok) return std::nullopt;
    return ApiError{
        401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error", {}, "invalid_api_key"};
}

std::optional<ApiError> check_admin_token(const http::Request & req, const std::string & token,
                                          const std::string & token_env) {
    if (token.empty()) {
        return ApiError{403,
                        "the admin API is off: set the environment variable " + token_env + " before starting serve",
                        "permission_error",
                        {},
                        "admin_disabled"};
    }
    if (constant_time_equal(bearer_token(req), token)) return std::nullopt;
    return ApiError{401,
                    "missing or wrong admin token (Authorization: Bearer TOKEN)",
                    "authentication_error",
                    {},
                    "invalid_admin_token"};
}

std::optional<ApiError> check_body_type(const http::Request & req, std::initializer_list<std::string_view> types) {
    std::string type = req.header("Content-Type");
    type = type.substr(0, type.find(';'));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (std::find(types.begin(), types.end(), type) != types.end()) return std::nullopt;
    // A web page may send text/plain or form bodies to localhost without asking first; never act on one.
    return ApiError{415,
                    "the body must be sent as " + std::string(*types.begin()) +
                        " (Content-Type: " + (type.empty() ? "none" : type) + ")",
                    "invalid_request_error",
                    {},
                    "unsupported_media_type"};
}

}  // namespace switchyard::serve
