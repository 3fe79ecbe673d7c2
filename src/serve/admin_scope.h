// What the admin API may point a pushed portfolio at: model files under known folders, remote
// endpoints at known origins, API keys from known variables. An admin token must not become a
// way to read any file or any environment variable of the server.
#pragma once

#include "model/portfolio.h"

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace switchyard::serve {

struct AdminScope {
    std::vector<std::filesystem::path> model_dirs;  // canonical; a model file must lie under one
    std::set<std::string> origins;  // "scheme://host:port", lower case
    std::set<std::string> key_envs;  // variables allowed by name
    std::string key_env_prefix;  // and any variable with this prefix

    // The scope of a server started on `started` (read from `file`, empty when none): the
    // folders of its models and of its file, its endpoints' origins and its key variables, plus
    // what its `server` settings add (admin_model_dirs, admin_endpoints, admin_key_env_prefix).
    static AdminScope of(const model::Portfolio & started, const std::filesystem::path & file);

    // The first model (or route evidence file) of `pushed` that reaches outside the scope, as a
    // sentence naming it and the setting that would allow it; nullopt when everything lies inside.
    std::optional<std::string> violation(const model::Portfolio & pushed) const;
};

// "scheme://host:port" of an http(s) URL, lower case, with the scheme's default port filled in;
// empty when `url` is not one.
std::string url_origin(const std::string & url);

}  // namespace switchyard::serve
