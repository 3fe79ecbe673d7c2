#include "engine/http_client.h"

#include "support/error.h"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <csignal>
#include <cerrno>
#include <climits>
#include <limits>
#include <cstring>
#include <regex>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace switchyard::engine {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using boost::system::error_code;

struct HttpOrigin {
    bool tls = false;
    std::string host;  // as getaddrinfo takes it (no IPv6 brackets)
    std::string port;
    std::string host_header;  // as the Host header names it
    std::string authorization;
    std::chrono::milliseconds timeout{};
    std::chrono::milliseconds connect_timeout{};
    SSL_CTX * tls_context = nullptr;

    ~HttpOrigin() {
        if (tls_context != nullptr) SSL_CTX_free(tls_context);
    }
};

namespace {

error_code system_error(int e) { return {e, boost::system::system_category()}; }

bool timed_out(const error_code & ec) {
    return ec == boost::system::errc::resource_unavailable_try_again ||
        ec == boost::system::errc::operation_would_block;
}

std::string tls_error_text() {
    const unsigned long e = ERR_get_error();
    if (e == 0) return "the TLS connection failed";
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    return text;
}

void set_timeouts(int fd, std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

}  // namespace

// A connected blocking socket, TLS or not, as Beast's SyncReadStream and SyncWriteStream.
struct HttpConnection::Socket {
    int fd = -1;
    SSL * ssl = nullptr;
    boost::beast::flat_buffer buffer;  // what was read past the head, for the body

    ~Socket() {
        if (ssl != nullptr) SSL_free(ssl);
        if (fd >= 0) ::close(fd);
    }

    template <class Buffers>
    std::size_t read_some(const Buffers & buffers, error_code & ec) {
        ec = {};
        for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
            const net::mutable_buffer b = *it;
            if (b.size() > 0) return receive(b.data(), b.size(), ec);
        }
        return 0;
    }
    template <class Buffers>
    std::size_t read_some(const Buffers & buffers) {
        error_code ec;
        const std::size_t n = read_some(buffers, ec);
        if (ec) throw boost::system::system_error(ec);
        return n;
    }

    // Head and body in one system call (one TCP segment when they fit): sent as two, the server
    // behind wakes twice per request.
    template <class Buffers>
    std::size_t write_some(const Buffers & buffers, error_code & ec) {
        ec = {};
        iovec parts[16];
        int count = 0;
        for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers) && count < 16;
             ++it) {
            const net::const_buffer b = *it;
            if (b.size() > 0) parts[count++] = {const_cast<void *>(b.data()), b.size()};
        }
        if (count == 0) return 0;
        if (ssl != nullptr) {
            std::string joined;  // one TLS record rather than one per part
            for (int i = 0; i < count; ++i)
                joined.append(static_cast<const char *>(parts[i].iov_base), parts[i].iov_len);
            const int n =
                SSL_write(ssl, joined.data(), static_cast<int>(std::min<std::size_t>(joined.size(), INT_MAX)));
            if (n > 0) return static_cast<std::size_t>(n);
            ec = tls_failure(n);
            return 0;
        }
        msghdr message{};
        message.msg_iov = parts;
        message.msg_iovlen = static_cast<std::size_t>(count);
        for (;;) {
            const ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
            if (n >= 0) return static_cast<std::size_t>(n);
            if (errno != EINTR) {
                ec = system_error(errno);
                return 0;
            }
        }
    }
    template <class Buffers>
    std::size_t write_some(const Buffers & buffers) {
        error_code ec;
        const std::size_t n = write_some(buffers, ec);
        if (ec) throw boost::system::system_error(ec);
        return n;
    }

    std::size_t receive(void * data, std::size_t size, error_code & ec) {
        if (ssl != nullptr) {
            const int n = SSL_read(ssl, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
            if (n > 0) return static_cast<std::size_t>(n);
            ec = tls_failure(n);
            return 0;
        }
        for (;;) {
            const ssize_t n = ::recv(fd, data, size, 0);
            if (n > 0) return static_cast<std::size_t>(n);
            if (n == 0) {
                ec = net::error::eof;
                return 0;
            }
            if (errno != EINTR) {
                ec = system_error(errno);
                return 0;
            }
        }
    }

    // SO_RCVTIMEO's expiry reaches OpenSSL as "want read": kept a timeout here.
    error_code tls_failure(int result) const {
        switch (SSL_get_error(ssl, result)) {
            case SSL_ERROR_ZERO_RETURN: return net::error::eof;
            case SSL_ERROR_WANT_READ:
            case SSL_ERROR_WANT_WRITE: return system_error(EAGAIN);
            case SSL_ERROR_SYSCALL: return errno != 0 ? system_error(errno) : error_code(net::error::eof);
            default: return net::error::no_protocol_option;
        }
    }

    // A kept-alive connection the server closed meanwhile reads as end of file without waiting.
    bool alive() const {
        char byte;
        const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
};

std::string describe(HttpFailure failure) {
    switch (failure) {
        case HttpFailure::none: return "no failure";
        case HttpFailure::connect: return "cannot connect (is the server running, and is the address right?)";
        case HttpFailure::connect_timeout: return "the connection timed out";
        case HttpFailure::send: return "the request could not be sent (the server closed the connection)";
        case HttpFailure::read: return "no complete answer (the server closed the connection)";
        case HttpFailure::timeout: return "no answer within the timeout";
        case HttpFailure::tls: return "the TLS connection failed";
        case HttpFailure::stopped: return "the request was stopped";
    }
    return "the request failed";
}

std::string HttpResult::why() const { return describe(failure) + (detail.empty() ? "" : " (" + detail + ")"); }

HttpConnection::HttpConnection(std::shared_ptr<const HttpOrigin> origin) : origin_(std::move(origin)) {}

HttpConnection::~HttpConnection() { close(); }

void HttpConnection::stop() {
    stopped_ = true;
    const std::lock_guard lock(socket_mutex_);
    if (socket_ != nullptr) ::shutdown(socket_->fd, SHUT_RDWR);
}

void HttpConnection::close() {
    const std::lock_guard lock(socket_mutex_);
    socket_.reset();
}

HttpResult HttpConnection::fail(HttpFailure failure, std::string detail) {
    close();
    reusable_ = false;
    HttpResult result;
    result.failure = stopped_ ? HttpFailure::stopped : failure;
    result.detail = std::move(detail);
    return result;
}

HttpFailure HttpConnection::connect(std::string & detail) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * found = nullptr;
    if (const int rc = ::getaddrinfo(origin_->host.c_str(), origin_->port.c_str(), &hints, &found); rc != 0) {
        detail = origin_->host + ": " + ::gai_strerror(rc);
        return HttpFailure::connect;
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo *)> addresses(found, ::freeaddrinfo);
    auto socket = std::make_unique<Socket>();
    HttpFailure failure = HttpFailure::connect;
    for (const addrinfo * a = found; a != nullptr && socket->fd < 0; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            rc = ::poll(&p, 1, static_cast<int>(origin_->connect_timeout.count()));
            if (rc == 0) {
                failure = HttpFailure::connect_timeout;
                errno = ETIMEDOUT;
                rc = -1;
            } else if (rc > 0) {
                int error = 0;
                socklen_t length = sizeof error;
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
                errno = error;
                rc = error == 0 ? 0 : -1;
            }
        }
        if (rc != 0) {
            detail = std::strerror(errno);
            ::close(fd);
            continue;
        }
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        const int yes = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes,
                     sizeof yes);  // small requests back to back: no delayed-ACK waits
        socket->fd = fd;
    }
    if (socket->fd < 0) return failure;
    if (origin_->tls) {
        set_timeouts(socket->fd, origin_->connect_timeout);
        socket->ssl = SSL_new(origin_->tls_context);
        SSL_set_tlsext_host_name(socket->ssl, origin_->host.c_str());
        SSL_set1_host(socket->ssl, origin_->host.c_str());
        SSL_set_fd(socket->ssl, socket->fd);
        if (SSL_connect(socket->ssl) != 1) {
            const long verify = SSL_get_verify_result(socket->ssl);
            detail = verify != X509_V_OK ? std::string("certificate: ") + X509_verify_cert_error_string(verify)
                                         : tls_error_text();
            return HttpFailure::tls;
        }
    }
    set_timeouts(socket->fd, origin_->timeout);
    const std::lock_guard lock(socket_mutex_);
    socket_ = std::move(socket);
    // A stop() that came while connecting found no socket to shut.
    if (stopped_) ::shutdown(socket_->fd, SHUT_RDWR);
    return HttpFailure::none;
}

HttpResult HttpConnection::exchange(const HttpRequest & request, const BodyCallback & on_body) {
    reusable_ = false;
    if (stopped_) return fail(HttpFailure::stopped, {});
    if (socket_ != nullptr && !socket_->alive()) close();
    if (socket_ == nullptr) {
        std::string detail;
        if (const HttpFailure failure = connect(detail); failure != HttpFailure::none) return fail(failure, detail);
    }

    bhttp::request<bhttp::span_body<const char>> head{request.method == "POST" ? bhttp::verb::post : bhttp::verb::get,
                                                      request.target, 11};
    head.set(bhttp::field::host, origin_->host_header);
    head.set(bhttp::field::user_agent, "switchyard");
    head.set(bhttp::field::accept, request.event_stream ? "text/event-stream" : "*/*");
    if (!origin_->authorization.empty()) head.set(bhttp::field::authorization, origin_->authorization);
    if (request.method == "POST") {
        head.set(bhttp::field::content_type, "application/json");
        head.body() = {request.body.data(), request.body.size()};
    }
    head.prepare_payload();
    error_code ec;
    bhttp::write(*socket_, head, ec);
    if (ec) return fail(timed_out(ec) ? HttpFailure::timeout : HttpFailure::send, ec.message());

    bhttp::response_parser<bhttp::buffer_body> parser;
    // The caller decides what it keeps. Not boost::none: Boost 1.74 compares a Content-Length
    // with it as with an optional, and any length is then "over the limit".
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    parser.header_limit(64 * 1024);
    bhttp::read_header(*socket_, socket_->buffer, parser, ec);
    if (ec) return fail(timed_out(ec) ? HttpFailure::timeout : HttpFailure::read, ec.message());
    HttpResult result;
    result.status = static_cast<int>(parser.get().result_int());
    char piece[16384];
    while (!parser.is_done()) {
        parser.get().body().data = piece;
        parser.get().body().size = sizeof piece;
        // read_some, not read: a stream's events are passed on as they come, not once 16 KiB are in.
        bhttp::read_some(*socket_, socket_->buffer, parser, ec);
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) return fail(timed_out(ec) ? HttpFailure::timeout : HttpFailure::read, ec.message());
        const std::size_t n = sizeof piece - parser.get().body().size;
        if (n == 0) continue;
        if (!on_body) {
            result.body.append(piece, n);
        } else if (!on_body(result.status, std::string_view(piece, n))) {
            return fail(HttpFailure::stopped, "the reader stopped");
        }
    }
    reusable_ = parser.get().keep_alive() && !stopped_;
    if (!reusable_) close();
    return result;
}

HttpClientPool::HttpClientPool(const std::string & origin, const std::string & api_key,
                               std::chrono::milliseconds timeout, std::chrono::milliseconds connect_timeout) {
    static const std::regex form(R"(^(https?)://(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+)(?::([0-9]{1,5}))?/?$)",
                                 std::regex::icase);
    std::smatch m;
    if (!std::regex_match(origin, m, form))
        throw Error("'{}' is not an http:// or https:// origin (scheme://host[:port])", origin);
    auto o = std::make_shared<HttpOrigin>();
    o->tls = m[1].str().size() == 5;
    o->host = m[2].str();
    o->host_header = o->host;
    if (o->host.front() == '[') o->host = o->host.substr(1, o->host.size() - 2);
    o->port = m[3].matched ? m[3].str() : (o->tls ? "443" : "80");
    if (m[3].matched) o->host_header += ":" + o->port;
    if (!api_key.empty()) o->authorization = "Bearer " + api_key;
    o->timeout = timeout;
    o->connect_timeout = connect_timeout;
    if (o->tls) {
        // OpenSSL writes to the socket with write(), not send(MSG_NOSIGNAL): a server that
        // closes mid-request must give an error, not a SIGPIPE that ends the process.
        std::signal(SIGPIPE, SIG_IGN);
        o->tls_context = SSL_CTX_new(TLS_client_method());
        if (o->tls_context == nullptr) throw Error("{}: cannot set up TLS ({})", origin, tls_error_text());
        SSL_CTX_set_min_proto_version(o->tls_context, TLS1_2_VERSION);
        SSL_CTX_set_default_verify_paths(o->tls_context);
        SSL_CTX_set_verify(o->tls_context, SSL_VERIFY_PEER, nullptr);
    }
    origin_ = std::move(o);
}

HttpClientPool::~HttpClientPool() = default;

std::unique_ptr<HttpConnection> HttpClientPool::take() {
    {
        const std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            auto connection = std::move(idle_.back());
            idle_.pop_back();
            return connection;
        }
    }
    return std::make_unique<HttpConnection>(origin_);
}

void HttpClientPool::give_back(std::unique_ptr<HttpConnection> connection) {
    constexpr std::size_t kMaxIdle = 256;  // beyond this a burst's extra connections are closed
    if (!connection->reusable()) return;
    const std::lock_guard lock(mutex_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(connection));
}

HttpResult HttpClientPool::send(const HttpRequest & request, const BodyCallback & on_body) {
    auto connection = take();
    HttpResult result = connection->exchange(request, on_body);
    give_back(std::move(connection));
    return result;
}

}  // namespace switchyard::engine
