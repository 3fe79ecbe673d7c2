#include "engine/rpc_devices.h"

#include "model/engine_log.h"
#include "support/error.h"
#include "support/rpc_endpoint.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace switchyard::engine {

namespace {

struct HostPort {
    std::string host;
    std::string port;
};

HostPort split(const std::string & endpoint) {
    const auto colon = endpoint.rfind(':');
    return {endpoint.substr(0, colon), endpoint.substr(colon + 1)};
}

using RpcAddServer = ggml_backend_reg_t (*)(const char * endpoint);

RpcAddServer rpc_add_server() {
    model::init_llama_backend();
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
    if (reg == nullptr) return nullptr;
    return reinterpret_cast<RpcAddServer>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_add_server"));
}

}  // namespace

bool rpc_available() { return rpc_add_server() != nullptr; }

bool rpc_reachable(const std::string & endpoint, int timeout_ms) {
    const auto [host, port] = split(endpoint);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * found = nullptr;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return false;
    const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
    for (const addrinfo * a = found; a != nullptr; a = a->ai_next) {
        const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        bool connected = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
        if (!connected && errno == EINPROGRESS) {
            pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
            int error = 0;
            socklen_t len = sizeof error;
            connected =
                poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0;
        }
        close(fd);
        if (connected) return true;
    }
    return false;
}

std::vector<ggml_backend_dev_t> rpc_devices(const std::vector<std::string> & endpoints) {
    std::vector<ggml_backend_dev_t> devices;
    if (endpoints.empty()) return devices;
    const RpcAddServer add_server = rpc_add_server();
    if (add_server == nullptr)
        throw Error(
            "this engine was built without llama.cpp's RPC backend: rebuild with SWITCHYARD_CMAKE_ARGS=-DSWITCHYARD_RPC=ON to use RPC workers");
    for (const auto & given : endpoints) {
        const auto endpoint = rpc_endpoint(given);
        if (!rpc_reachable(endpoint))
            throw Error(
                "RPC worker {} is not reachable: start llama.cpp's rpc-server there (rpc-server --host 0.0.0.0 --port PORT)",
                endpoint);
        ggml_backend_reg_t reg = add_server(endpoint.c_str());
        if (reg == nullptr || ggml_backend_reg_dev_count(reg) == 0)
            throw Error("RPC worker {} offers no device", endpoint);
        for (std::size_t i = 0; i < ggml_backend_reg_dev_count(reg); ++i)
            devices.push_back(ggml_backend_reg_dev_get(reg, i));
    }
    return devices;
}

}  // namespace switchyard::engine
