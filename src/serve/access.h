// Who may call what: the clients' API keys, the admin token (both compared in constant time) and
// the media types a body may come in. Pure checks of a request; the gateway sends their errors.
#pragma once

#include "serve/api.h"
#include "serve/http_server.h"

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::serve {

// The comma-separated keys in environment variable `env`; throws switchyard::Error when it is
// unset or empty (a gateway meant to be closed must not start open).
std::vector<std::string> api_keys_from_env(const std::string & env);

// A 401 unless the request's bearer token is one of `keys` (none: everyone may call).
std::optional<ApiError> check_api_key(const http::Request & req, const std::vector<std::string> & keys);

// A 403 while there is no admin token (read from `token_env`), a 401 when the request's differs.
std::optional<ApiError> check_admin_token(const http::Request & req, const std::string & token,
                                          const std::string & token_env);

// A 415 unless the body's media type (its parameters aside, any case) is one of `types`.
std::optional<ApiError> check_body_type(const http::Request & req, std::initializer_list<std::string_view> types);

}  // namespace switchyard::serve
