// The HTTP/1.1 edge of `serve`, on Boost.Beast: connections are asynchronous state (an idle,
// slow or hostile one costs no thread), and requests run on a bounded pool of workers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::serve::http {

struct Request {
    std::string method;
    std::string path;  // the target without its query string
    std::string query;  // after '?', as sent (not decoded)
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    // True once the client has hung up; cheap (one poll), so a waiting handler can ask often.
    std::function<bool()> client_gone = [] { return false; };

    // The first value of a header (names compare case-insensitively), "" when absent.
    std::string header(std::string_view name) const;
    // The first value of query parameter `name` (`?a=1&b=x%20y`), percent-decoded with '+' as a
    // space; "" when absent.
    std::string query_param(std::string_view name) const;
};

// Where a streamed body goes: write() returns false once the client is gone, too slow to read,
// or the server is stopping, and the provider should stop.
class Sink {
public:
    virtual ~Sink() = default;
    virtual bool write(std::string_view data) = 0;
};

struct Response {
    int status = 200;
    std::string content_type = "text/plain";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    // When set, the body is sent chunked as the provider writes it (on the worker thread).
    std::function<void(Sink &)> stream;

    void set_content(std::string content, std::string type);
    void set_header(std::string name, std::string value);
    void set_stream(std::string type, std::function<void(Sink &)> provider);
};

using Handler = std::function<void(const Request &, Response &)>;

// inline: answered on the I/O thread; for quick handlers that never block (/health,
// /metrics), so they answer even when every worker is busy. worker: on the pool.
enum class Lane { inline_io, worker };

struct ServerOptions {
    std::size_t max_body_bytes = 1 << 20;
    std::size_t max_header_bytes = 16 * 1024;  // request line and headers together
    // The whole request (headers and body) must arrive within this, and an idle keep-alive
    // connection is closed after it: a slow sender cannot hold anything for longer.
    std::chrono::milliseconds read_timeout{30000};
    std::chrono::milliseconds write_timeout{30000};  // per write; a client that stops reading is cut off
    int workers = 16;
    int queue = 64;  // requests waiting for a worker beyond this are answered 503 at once
    int max_connections = 20000;  // connections beyond this are closed on accept
};

// What the server itself says when it refuses a request (malformed HTTP, unknown path, busy):
// the gateway fills `res` in its own error shape.
using ErrorResponder =
    std::function<void(Response & res, int status, const std::string & code, const std::string & message)>;

struct ServerCounters {
    std::int64_t connections = 0;  // open now
    std::int64_t busy_workers = 0;
    std::int64_t queued = 0;
    std::uint64_t refused_busy = 0;  // 503: no worker and the queue full
    std::uint64_t refused_connections = 0;  // closed on accept: max_connections reached
    std::uint64_t bad_requests = 0;  // malformed, oversized or timed out before complete
};

class Server {
public:
    Server(ServerOptions options, ErrorResponder on_error);
    ~Server();
    Server(const Server &) = delete;
    Server & operator=(const Server &) = delete;

    void handle(std::string method, std::string path, Lane lane, Handler handler);

    // Binds host:port (port 0: any free port) and returns the port; throws switchyard::Error.
    int bind(const std::string & host, int port);
    void run();  // serves until stop()
    void stop();

    ServerCounters counters() const;

    struct Impl;  // the connections' shared state, in the .cpp

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace switchyard::serve::http
