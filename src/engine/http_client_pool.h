// Kept-alive HTTP clients for one origin, for talking to OpenAI-compatible servers.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace httplib {
class Client;
}

namespace switchyard::engine {

// One client per request in flight: a cpp-httplib client serves one request at a time, and a
// new connection (a TLS handshake, even) per request would cost more than a small model's answer.
class HttpClientPool {
public:
    HttpClientPool(std::string origin, std::string api_key, std::chrono::milliseconds timeout, std::chrono::milliseconds connect_timeout);
    ~HttpClientPool();

    std::unique_ptr<httplib::Client> take();
    // Only clients whose last exchange completed: a failed or cancelled one may hold half an answer.
    void give_back(std::unique_ptr<httplib::Client> client);

private:
    std::string origin_;
    std::string api_key_;
    std::chrono::milliseconds timeout_;
    std::chrono::milliseconds connect_timeout_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<httplib::Client>> idle_;
};

}  // namespace switchyard::engine
