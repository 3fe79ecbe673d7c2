// The devices of llama.cpp's RPC backend behind `rpc-server` endpoints: where a model's layers go
// when it is spread over other machines (eval --rpc, a portfolio model's `rpc:`, plan workers).
#pragma once

#include <ggml-backend.h>

#include <string>
#include <vector>

namespace switchyard::engine {

// Whether the engine was built with the RPC backend (SWITCHYARD_RPC, GGML_RPC).
bool rpc_available();

// Whether something accepts TCP connections at HOST:PORT within `timeout_ms`.
bool rpc_reachable(const std::string & endpoint, int timeout_ms = 2000);

// The devices of every endpoint, in order. Each endpoint is reached first, so that an absent
// worker is a clear error here rather than an abort inside the engine (llama.cpp's RPC client
// aborts the process when a server cannot be reached or goes away mid-run).
std::vector<ggml_backend_dev_t> rpc_devices(const std::vector<std::string> & endpoints);

}  // namespace switchyard::engine
