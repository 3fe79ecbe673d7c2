#include "serve/http_server.h"

#include "support/bounded_queue.h"
#include "support/error.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cerrno>
#include <cstdio>
#include <future>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/resource.h>

namespace switchyard::serve::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string Request::header(std::string_view name) const {
    for (const auto & [k, v] : headers) {
        if (beast::iequals(beast::string_view(k.data(), k.size()), beast::string_view(name.data(), name.size())))
            return v;
    }
    return {};
}

void Response::set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
}

void Response::set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
}

void Response::set_stream(std::string type, std::function<void(Sink &)> provider) {
    content_type = std::move(type);
    stream = std::move(provider);
}

namespace {

// Runs jobs on a fixed set of threads and refuses, rather than queues, work beyond `queue`
// waiting jobs: a flood is answered at once instead of piling up unanswered.
class WorkerPool {
public:
    WorkerPool(int threads, int queue) : jobs_(static_cast<std::size_t>(std::max(queue, 0)), OnClose::drop) {
        for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { loop(); });
    }
    // Queued jobs are dropped: their connections close with them.
    ~WorkerPool() { jobs_.close(); }

    bool try_submit(std::function<void()> job) { return jobs_.try_push(std::move(job)); }
    std::int64_t busy() const { return static_cast<std::int64_t>(threads_.size() - jobs_.idle()); }
    std::int64_t queued() const { return static_cast<std::int64_t>(jobs_.size()); }

private:
    void loop() {
        // Each job goes before the next wait, and with it the connection it holds.
        while (auto job = jobs_.pop()) (*job)();
    }

    BoundedQueue<std::function<void()>> jobs_;
    std::vector<std::jthread> threads_;  // last: joined before the queue goes
};

// Open files bound how many clients can connect at once; the soft limit is often 1024.
void raise_open_file_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
}

}  // namespace

struct Route {
    Lane lane;
    Handler handler;
};

struct Server::Impl {
    ServerOptions options;
    ErrorResponder on_error;
    std::map<std::pair<std::string, std::string>, Route> routes;  // (method, path); fixed once serving

    std::atomic<bool> stopping{false};
    std::atomic<std::int64_t> connections{0};
    std::atomic<std::uint64_t> refused_busy{0}, refused_connections{0}, bad_requests{0};

    // Declared in this order so that destruction joins the workers first, then closes the
    // acceptor, then destroys pending I/O (and with it the connections).
    net::io_context io{1};
    tcp::acceptor acceptor{io};
    net::steady_timer accept_pause{io};
    std::unique_ptr<WorkerPool> pool;

    Response error(int status, const std::string & code, const std::string & message) const {
        Response res;
        on_error(res, status, code, message);
        return res;
    }
    void accept();
};

namespace {

// One client connection: reads a request, hands it to its handler, writes the answer, and
// waits for the next one. Only the I/O thread touches the socket, except the poll that
// tells a handler the client is gone.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(Server::Impl & server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {
        ++server_.connections;
    }
    ~Session() { --server_.connections; }

    void start() {
        net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
    }

private:
    const ServerOptions & options() const { return server_.options; }

    void read_header() {
        parser_.emplace();
        parser_->header_limit(
            static_cast<std::uint32_t>(std::min<std::size_t>(options().max_header_bytes, UINT32_MAX)));
        parser_->body_limit(options().max_body_bytes);
        stream_.expires_after(options().read_timeout);
        bhttp::async_read_header(stream_, buffer_, *parser_,
                                 [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                     if (ec) return self->on_read_error(ec);
                                     self->on_header();
                                 });
    }

    void on_header() {
        const auto & msg = parser_->get();
        if (!beast::iequals(msg[bhttp::field::expect], "100-continue")) return read_body();
        auto proceed = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, msg.version());
        bhttp::async_write(stream_, *proceed, [self = shared_from_this(), proceed](beast::error_code ec, std::size_t) {
            if (ec) return self->close();
            self->read_body();
        });
    }

    void read_body() {
        bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->on_read_error(ec);
            self->dispatch();
        });
    }

    void on_read_error(beast::error_code ec) {
        const bool quiet = ec == bhttp::error::end_of_stream || ec == net::error::eof ||
            ec == net::error::connection_reset || ec == net::error::operation_aborted ||
            (ec == beast::error::timeout && !parser_->got_some());
        if (quiet) return close();
        ++server_.bad_requests;
        keep_alive_ = false;
        // The timer closed the socket: nothing can be answered.
        if (ec == beast::error::timeout) return close();
        if (ec == bhttp::error::header_limit) {
            return write(server_.error(431, "headers_too_large",
                                       "the request line and headers are larger than " +
                                           std::to_string(options().max_header_bytes) + " bytes"));
        }
        if (ec == bhttp::error::body_limit) {
            return write(server_.error(
                413, "body_too_large",
                "the body is larger than max_body_bytes (" + std::to_string(options().max_body_bytes) + ")"));
        }
        write(server_.error(400, "bad_http", "malformed HTTP request: " + ec.message()));
    }

    void dispatch() {
        auto & msg = parser_->get();
        keep_alive_ = msg.keep_alive();
        auto req = std::make_shared<Request>();
        req->method = std::string(msg.method_string());
        const std::string target(msg.target().data(), msg.target().size());
        const auto question = target.find('?');
        req->path = target.substr(0, question);
        if (question != std::string::npos) req->query = target.substr(question + 1);
        for (const auto & field : msg)
            req->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
        req->body = std::move(msg.body());
        // The worker holds the session, so the descriptor stays this connection's while it asks.
        req->client_gone = [fd = stream_.socket().native_handle()] {
            pollfd p{fd, POLLRDHUP, 0};
            return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
        };
        const auto route = server_.routes.find({req->method, req->path});
        if (route == server_.routes.end())
            return write(server_.error(404, "unknown_url", "no such endpoint: " + req->method + " " + req->path));
        const Route & r = route->second;
        if (r.lane == Lane::inline_io) {
            Response res;
            run_handler(r.handler, *req, res);
            return write(std::move(res));
        }
        const bool queued = server_.pool->try_submit([self = shared_from_this(), req, handler = &r.handler] {
            Response res;
            self->run_handler(*handler, *req, res);
            if (res.stream) return self->stream_from_worker(res);
            auto msg = self->message_of(std::move(res));
            std::ostringstream bytes;
            bytes << msg;
            const bool ok = self->send_from_worker(std::move(bytes).str());
            net::post(self->stream_.get_executor(), [self, ok] { self->after_response(ok); });
        });
        if (!queued) {
            ++server_.refused_busy;
            write(server_.error(503, "server_busy", "every worker is busy and the queue is full; retry shortly"));
        }
    }

    void run_handler(const Handler & handler, const Request & req, Response & res) {
        try {
            handler(req, res);
        } catch (const std::exception & e) {
            res = server_.error(500, "internal_error", std::string("internal error: ") + e.what());
        }
    }

    template <typename Message>
    void fill_head(Message & msg, const Response & res) const {
        msg.version(11);
        msg.result(static_cast<unsigned>(res.status));
        msg.set(bhttp::field::content_type, res.content_type);
        for (const auto & [name, value] : res.headers) msg.insert(name, value);
        msg.keep_alive(keep_alive_);
    }

    bhttp::response<bhttp::string_body> message_of(Response res) const {
        bhttp::response<bhttp::string_body> msg;
        fill_head(msg, res);
        msg.body() = std::move(res.body);
        msg.prepare_payload();
        return msg;
    }

    void write(Response res) {
        auto msg = std::make_shared<bhttp::response<bhttp::string_body>>(message_of(std::move(res)));
        stream_.expires_after(options().write_timeout);
        bhttp::async_write(stream_, *msg, [self = shared_from_this(), msg](beast::error_code ec, std::size_t) {
            self->after_response(!ec);
        });
    }

    void after_response(bool ok) {
        if (!ok) return close();
        if (keep_alive_) return read_header();
        linger_close();
    }

    // Runs an asynchronous write on the I/O thread and waits for it (on a worker): false when it
    // fails, times out, or the server stops.
    template <typename Start>
    bool write_from_worker(Start start) {
        auto done = std::make_shared<std::promise<beast::error_code>>();
        auto result = done->get_future();
        net::post(stream_.get_executor(), [self = shared_from_this(), start, done] {
            self->stream_.expires_after(self->options().write_timeout);
            start(self->stream_, [done](beast::error_code ec, std::size_t) { done->set_value(ec); });
        });
        while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
            if (server_.stopping) return false;
        }
        return !result.get();
    }

    // From a worker, while the I/O thread has no operation pending on the socket: sends what the
    // kernel takes at once, and only the rest (a client slower to read) through the I/O thread
    // with the write timeout. Spares an answer two thread hand-offs.
    bool send_from_worker(std::string bytes) {
        const int fd = stream_.socket().native_handle();
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            } else {
                return false;
            }
        }
        if (sent == bytes.size()) return true;
        auto rest = std::make_shared<std::string>(bytes.substr(sent));
        return write_from_worker([rest](beast::tcp_stream & s, auto done) {
            net::async_write(s, net::buffer(*rest), [rest, done](beast::error_code ec, std::size_t n) { done(ec, n); });
        });
    }

    class ChunkSink : public Sink {
    public:
        explicit ChunkSink(Session & session) : session_(session) {}
        bool write(std::string_view data) override {
            if (!ok) return false;
            if (data.empty()) return true;  // an empty chunk would end the body
            // HTTP/1.1 chunked framing: the size in hex, the bytes, each line ended by CRLF.
            char size[32];
            const int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
            std::string chunk(size, static_cast<std::size_t>(n));
            chunk.append(data);
            chunk += "\r\n";
            ok = session_.send_from_worker(std::move(chunk));
            return ok;
        }
        bool ok = true;

    private:
        Session & session_;
    };

    void stream_from_worker(Response & res) {
        bhttp::response<bhttp::empty_body> head;
        fill_head(head, res);
        head.chunked(true);
        std::ostringstream bytes;
        bytes << head.base();
        ChunkSink sink(*this);
        sink.ok = send_from_worker(std::move(bytes).str());
        if (sink.ok) res.stream(sink);
        const bool ok = sink.ok && send_from_worker("0\r\n\r\n");
        net::post(stream_.get_executor(), [self = shared_from_this(), ok] { self->after_response(ok); });
    }

    // Closing with unread bytes in the socket resets the connection, and the client may lose
    // the answer just written (a 413 before its body was read): send FIN, drain briefly, close.
    void linger_close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return close();
        drain_ = std::make_shared<std::array<char, 16384>>();
        stream_.expires_after(std::chrono::seconds(2));
        drain();
    }
    void drain() {
        stream_.async_read_some(net::buffer(*drain_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->close();
            self->drain();
        });
    }

    void close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    Server::Impl & server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    bool keep_alive_ = true;
    std::shared_ptr<std::array<char, 16384>> drain_;
};

}  // namespace

void Server::Impl::accept() {
    acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
        if (!acceptor.is_open()) return;
        if (ec) {
            // Out of descriptors: the pending connection stays in the backlog and would fail
            // again at once, so wait a moment instead of spinning.
            accept_pause.expires_after(std::chrono::milliseconds(50));
            accept_pause.async_wait([this](beast::error_code) { accept(); });
            return;
        }
        if (connections.load() >= options.max_connections) {
            ++refused_connections;
            socket.close(ec);
        } else {
            // Streamed tokens are small writes: Nagle would hold each until the last is acknowledged.
            socket.set_option(tcp::no_delay(true), ec);
            std::make_shared<Session>(*this, std::move(socket))->start();
        }
        accept();
    });
}

Server::Server(ServerOptions options, ErrorResponder on_error) : impl_(std::make_shared<Impl>()) {
    impl_->options = options;
    impl_->on_error = std::move(on_error);
    impl_->pool = std::make_unique<WorkerPool>(options.workers, options.queue);
}

Server::~Server() { stop(); }

void Server::handle(std::string method, std::string path, Lane lane, Handler handler) {
    impl_->routes[{std::move(method), std::move(path)}] = Route{lane, std::move(handler)};
}

int Server::bind(const std::string & host, int port) {
    raise_open_file_limit();
    auto & acceptor = impl_->acceptor;
    beast::error_code ec;
    tcp::resolver resolver(impl_->io);
    const auto endpoints = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
    const std::string where = host + ":" + std::to_string(port);
    if (ec || endpoints.empty())
        throw Error("cannot listen on {} (not an address of this machine: {})", where, ec.message());
    const tcp::endpoint endpoint = *endpoints.begin();
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw Error("cannot listen on {} ({})", where, ec.message());
    return acceptor.local_endpoint().port();
}

void Server::run() {
    if (impl_->stopping) return;
    impl_->accept();
    impl_->io.run();
}

void Server::stop() {
    if (impl_->stopping.exchange(true)) return;
    net::post(impl_->io, [impl = impl_.get()] {
        beast::error_code ec;
        impl->acceptor.close(ec);
    });
    impl_->io.stop();
}

ServerCounters Server::counters() const {
    return ServerCounters{
        impl_->connections.load(),         impl_->pool->busy(),       impl_->pool->queued(), impl_->refused_busy.load(),
        impl_->refused_connections.load(), impl_->bad_requests.load()};
}

}  // namespace switchyard::serve::http
