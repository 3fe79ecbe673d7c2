#include "support/rpc_endpoint.h"

#include "support/error.h"

#include <charconv>

namespace switchyard {

std::string rpc_endpoint(std::string_view text) {
    std::string_view rest = text;
    if (rest.starts_with("rpc://")) rest.remove_prefix(6);
    while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    const auto colon = rest.rfind(':');
    int port = 0;
    const auto digits = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (colon == std::string_view::npos || colon == 0 || digits.empty() || ec != std::errc{} ||
        end != digits.data() + digits.size() || port <= 0 || port > 65535)
        throw Error("'{}' is not an RPC worker endpoint: expected rpc://HOST:PORT (an rpc-server's address)",
                    std::string(text));
    return std::string(rest);
}

}  // namespace switchyard
