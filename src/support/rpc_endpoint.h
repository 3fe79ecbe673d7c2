// The address of a llama.cpp rpc-server, as plans, portfolios and flags name it.
#pragma once

#include <string>
#include <string_view>

namespace switchyard {

// "HOST:PORT" from "rpc://HOST:PORT" or "HOST:PORT"; throws switchyard::Error naming the text
// when it is neither.
std::string rpc_endpoint(std::string_view text);

}  // namespace switchyard
