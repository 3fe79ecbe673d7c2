#include "engine/http_client_pool.h"

#include <httplib.h>

namespace switchyard::engine {

namespace {

constexpr std::size_t kMaxIdle = 256;  // beyond this a burst's extra connections are closed

}  // namespace

HttpClientPool::HttpClientPool(std::string origin, std::string api_key, std::chrono::milliseconds timeout, std::chrono::milliseconds connect_timeout)
    : origin_(std::move(origin)), api_key_(std::move(api_key)), timeout_(timeout), connect_timeout_(connect_timeout) {}

HttpClientPool::~HttpClientPool() = default;

std::unique_ptr<httplib::Client> HttpClientPool::take() {
    {
        const std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            auto client = std::move(idle_.back());
            idle_.pop_back();
            return client;
        }
    }
    auto client = std::make_unique<httplib::Client>(origin_);
    client->set_connection_timeout(connect_timeout_);
    client->set_read_timeout(timeout_);
    client->set_write_timeout(timeout_);
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);  // small requests back to back: without it each waits for a delayed ACK
    if (!api_key_.empty()) client->set_bearer_token_auth(api_key_);
    return client;
}

void HttpClientPool::give_back(std::unique_ptr<httplib::Client> client) {
    const std::lock_guard lock(mutex_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(client));
}

}  // namespace switchyard::engine
