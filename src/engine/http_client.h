// Kept-alive HTTP/1.1 connections to one origin (http:// or https://), for talking to
// OpenAI-compatible servers: the gateway's remote backends, `eval --endpoint`, replica health checks.
#pragma once

// Boost.Beast parses and serializes; the socket is a plain blocking one whose timeouts are the
// kernel's (SO_RCVTIMEO / SO_SNDTIMEO), and TLS is OpenSSL's on that socket. So a request is one
// send (head and body gathered) and its reads: no poll before each read or write, no event loop,
// no hand-off to another thread. A remote call through the gateway makes about half the system
// calls it made on cpp-httplib's client, and the server behind it wakes once per request, not
// twice (docs/serve.md, under bench/serve-overhead.sh).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::engine {

// Why an exchange gave no answer. `status` below is only meaningful when there is none.
enum class HttpFailure { none, connect, connect_timeout, send, read, timeout, tls, stopped };

// In words a user can act on: "cannot connect (is the server running, ...)".
std::string describe(HttpFailure failure);

struct HttpRequest {
    std::string method = "GET";  // GET or POST
    std::string target;  // the path and query
    std::string body;  // POST: sent as application/json
    bool event_stream = false;  // asks for text/event-stream (Accept), else for anything
};

struct HttpResult {
    HttpFailure failure = HttpFailure::none;
    int status = 0;
    std::string body;  // the whole body, unless a body callback took it
    std::string detail;  // what the system or TLS said, when it failed
    explicit operator bool() const { return failure == HttpFailure::none; }
    // Why it failed, with the detail: "cannot connect (...) (Connection refused)".
    std::string why() const;
};

// Receives the body as it arrives (chunked transfer decoded), with the answer's status; returns
// false to stop reading (the connection is then closed, not reused).
using BodyCallback = std::function<bool(int status, std::string_view data)>;

struct HttpOrigin;  // scheme, host, port and TLS settings, shared by a pool's connections
class HttpConnection {
public:
    explicit HttpConnection(std::shared_ptr<const HttpOrigin> origin);
    ~HttpConnection();
    HttpConnection(const HttpConnection &) = delete;
    HttpConnection & operator=(const HttpConnection &) = delete;

    // Connects first when not connected, or when the server closed a kept-alive connection.
    HttpResult exchange(const HttpRequest & request, const BodyCallback & on_body = {});
    // From any thread: a blocked exchange returns HttpFailure::stopped, now or, if it has not
    // sent yet, as soon as it tries. Idempotent.
    void stop();
    // Whether the last exchange left the connection fit for another request.
    bool reusable() const { return reusable_; }

private:
    struct Socket;
    HttpResult fail(HttpFailure failure, std::string detail);
    HttpFailure connect(std::string & detail);
    void close();

    std::shared_ptr<const HttpOrigin> origin_;
    std::unique_ptr<Socket> socket_;
    std::mutex socket_mutex_;  // stop() on another thread never shuts a socket being closed (its number may be reused)
    std::atomic<bool> stopped_ = false;
    bool reusable_ = false;
};

// One connection per request in flight: HTTP/1.1 serves one request at a time on a connection,
// and a new one (a TLS handshake, even) per request would cost more than a small model's answer.
class HttpClientPool {
public:
    // `origin`: scheme://host[:port]; throws switchyard::Error when it is not one. `timeout`
    // bounds each read and write, `connect_timeout` the connection (and its TLS handshake).
    HttpClientPool(const std::string & origin, const std::string & api_key, std::chrono::milliseconds timeout,
                   std::chrono::milliseconds connect_timeout);
    ~HttpClientPool();

    std::unique_ptr<HttpConnection> take();
    // Keeps it for the next request if its exchange completed (a failed or stopped one may hold
    // half an answer).
    void give_back(std::unique_ptr<HttpConnection> connection);
    // take, exchange, give back.
    HttpResult send(const HttpRequest & request, const BodyCallback & on_body = {});

private:
    std::shared_ptr<const HttpOrigin> origin_;
    std::mutex mutex_;
    std::vector<std::unique_ptr<HttpConnection>> idle_;
};

}  // namespace switchyard::engine
