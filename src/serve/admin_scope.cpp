#include "serve/admin_scope.h"

#include <algorithm>
#include <cctype>

namespace switchyard::serve {

namespace fs = std::filesystem;

namespace {

// Symbolic links resolved, so a link inside an allowed folder cannot point outside it.
fs::path resolved(const fs::path & p) {
    std::error_code ec;
    const fs::path r = fs::weakly_canonical(fs::absolute(p), ec);
    return ec ? fs::absolute(p).lexically_normal() : r;
}

bool lies_under(const fs::path & file, const fs::path & dir) {
    const fs::path rel = file.lexically_relative(dir);
    return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

std::string url_origin(const std::string & url) {
    std::string lower = url;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string scheme;
    if (lower.starts_with("http://")) scheme = "http";
    if (lower.starts_with("https://")) scheme = "https";
    if (scheme.empty()) return {};
    std::string authority = lower.substr(scheme.size() + 3);
    authority = authority.substr(0, authority.find_first_of("/?#"));
    if (const auto at = authority.rfind('@'); at != std::string::npos) authority = authority.substr(at + 1);
    if (authority.empty()) return {};
    // A port follows the last colon, unless that colon is inside an IPv6 literal's brackets.
    const auto colon = authority.rfind(':');
    const bool has_port = colon != std::string::npos && authority.find(']', colon) == std::string::npos;
    if (!has_port) authority += scheme == "https" ? ":443" : ":80";
    return scheme + "://" + authority;
}

AdminScope AdminScope::of(const model::Portfolio & started, const fs::path & file) {
    AdminScope scope;
    scope.key_env_prefix = started.server.admin_key_env_prefix;
    auto add_dir = [&](const fs::path & dir) {
        const fs::path r = resolved(dir);
        if (std::find(scope.model_dirs.begin(), scope.model_dirs.end(), r) == scope.model_dirs.end())
            scope.model_dirs.push_back(r);
    };
    if (!file.empty()) add_dir(fs::absolute(file).parent_path());
    for (const auto & dir : started.server.admin_model_dirs) add_dir(dir);
    for (const auto & m : started.models) {
        if (!m.path.empty()) add_dir(resolved(m.path).parent_path());
        if (!m.endpoint.empty()) scope.origins.insert(url_origin(m.endpoint));
        for (const auto & r : m.replicas) scope.origins.insert(url_origin(r.endpoint));
        for (const auto & e : m.rpc) scope.origins.insert("rpc://" + e);
        if (!m.api_key_env.empty()) scope.key_envs.insert(m.api_key_env);
    }
    for (const auto & url : started.server.admin_endpoints)
        scope.origins.insert(url.starts_with("rpc://") ? url : url_origin(url));
    return scope;
}

std::optional<std::string> AdminScope::violation(const model::Portfolio & pushed) const {
    // GET /evidence serves these files without a token: they must lie where models may.
    for (const auto & r : pushed.routes) {
        for (const std::string & evidence : {r.evidence, r.shadow ? r.shadow->evidence : std::string()}) {
            if (evidence.empty()) continue;
            const fs::path p = resolved(evidence);
            if (std::none_of(model_dirs.begin(), model_dirs.end(),
                             [&](const fs::path & dir) { return lies_under(p, dir); }))
                return "route '" + r.name + "': the evidence " + p.string() +
                    " lies outside the folders this server may load models from (server.admin_model_dirs)";
        }
    }
    for (const auto & m : pushed.models) {
        if (!m.path.empty()) {
            const fs::path p = resolved(m.path);
            const bool inside = std::any_of(model_dirs.begin(), model_dirs.end(),
                                            [&](const fs::path & dir) { return lies_under(p, dir); });
            if (!inside)
                return "model '" + m.name + "': " + p.string() +
                    " lies outside the folders this server may load models from (server.admin_model_dirs)";
        }
        std::vector<std::string> endpoints;
        if (!m.endpoint.empty()) endpoints.push_back(m.endpoint);
        for (const auto & r : m.replicas) endpoints.push_back(r.endpoint);
        for (const auto & url : endpoints) {
            if (!origins.contains(url_origin(url)))
                return "model '" + m.name + "': the endpoint " + url +
                    " is not at an origin this server may call (server.admin_endpoints)";
        }
        for (const auto & e : m.rpc)
            if (!origins.contains("rpc://" + e))
                return "model '" + m.name + "': the RPC worker " + e +
                    " is not one this server may use (server.admin_endpoints)";
        if (!m.api_key_env.empty() && !key_envs.contains(m.api_key_env) &&
            (key_env_prefix.empty() || !m.api_key_env.starts_with(key_env_prefix))) {
            return "model '" + m.name + "': api_key_env " + m.api_key_env +
                " is neither named by the portfolio serve started with nor starts with " +
                (key_env_prefix.empty() ? std::string("an allowed prefix") : key_env_prefix) +
                " (server.admin_key_env_prefix)";
        }
    }
    return std::nullopt;
}

}  // namespace switchyard::serve
