// The HTTP client the gateway and `eval --endpoint` talk to servers with: kept-alive connections,
// streamed bodies, timeouts and stopping, against a scripted server on a raw socket (so each test
// decides exactly when bytes go out and when a connection closes).
#include "engine/http_client.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

namespace {

using namespace switchyard::engine;
using namespace std::chrono_literals;

// Accepts connections one after another on 127.0.0.1 and hands each to `serve`, which reads
// requests with read_request and writes what it likes.
class ScriptedServer {
public:
    explicit ScriptedServer(std::function<void(int fd)> serve) : serve_(std::move(serve)) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(listen_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a);
        ::listen(listen_fd_, 8);
        socklen_t length = sizeof a;
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&a), &length);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] {
            for (;;) {
                const int fd = ::accept(listen_fd_, nullptr, nullptr);
                if (fd < 0) return;
                ++accepted;
                serve_(fd);
                ::close(fd);
            }
        });
    }
    ~ScriptedServer() {
        ::shutdown(listen_fd_, SHUT_RDWR);
        ::close(listen_fd_);
        thread_.join();
    }
    std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }

    // One request's head and Content-Length body; empty when the client closed.
    static std::string read_request(int fd) {
        std::string text;
        char c[4096];
        std::size_t body = 0;
        for (;;) {
            const auto end = text.find("\r\n\r\n");
            if (end != std::string::npos) {
                const auto cl = text.find("Content-Length: ");
                if (cl != std::string::npos && cl < end) body = std::stoul(text.substr(cl + 16));
                if (text.size() >= end + 4 + body) return text;
            }
            const ssize_t n = ::recv(fd, c, sizeof c, 0);
            if (n <= 0) return {};
            text.append(c, static_cast<std::size_t>(n));
        }
    }
    static void write_all(int fd, const std::string & s) {
        ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
    }

    std::atomic<int> accepted = 0;

private:
    std::function<void(int)> serve_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::thread thread_;
};

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";

TEST(HttpClient, KeepsAConnectionAliveAndReconnectsOnceTheServerClosedIt) {
    // Each connection answers two requests, then the server closes it.
    std::string seen;
    ScriptedServer server([&](int fd) {
        for (int i = 0; i < 2; ++i) {
            const std::string request = ScriptedServer::read_request(fd);
            if (request.empty()) return;
            if (seen.empty()) seen = request;
            ScriptedServer::write_all(fd, kOk);
        }
    });
    HttpClientPool pool(server.origin(), "sekrit", 5s, 5s);
    for (int i = 0; i < 5; ++i) {
        const HttpResult r = pool.send({.method = "POST", .target = "/v1/x", .body = R"({"a":1})"});
        ASSERT_TRUE(r) << i << ": " << describe(r.failure) << " " << r.detail;
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.body, R"({"ok":true})");
        std::this_thread::sleep_for(100ms);  // lets the server's close arrive before the next request
    }
    EXPECT_EQ(server.accepted, 3);  // 2 + 2 + 1 requests
    EXPECT_NE(seen.find("POST /v1/x HTTP/1.1\r\n"), std::string::npos) << seen;
    EXPECT_NE(seen.find("Authorization: Bearer sekrit\r\n"), std::string::npos) << seen;
    EXPECT_NE(seen.find("Content-Type: application/json\r\n"), std::string::npos) << seen;
    EXPECT_NE(seen.find("\r\n\r\n{\"a\":1}"), std::string::npos) << seen;
}

TEST(HttpClient, PassesAStreamOnAsItArrives) {
    // The second event is only sent once the client has passed the first on: a client that
    // waited for more bytes before calling back would never see it.
    std::mutex mutex;
    std::condition_variable first_seen_cv;
    bool first_seen = false;
    ScriptedServer server([&](int fd) {
        if (ScriptedServer::read_request(fd).empty()) return;
        const std::string first = "data: {\"n\":1}\n\n";
        const std::string second = "data: [DONE]\n\n";
        auto chunk = [](const std::string & s) {
            char size[16];
            std::snprintf(size, sizeof size, "%zx\r\n", s.size());
            return size + s + "\r\n";
        };
        ScriptedServer::write_all(
            fd,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(first));
        std::unique_lock lock(mutex);
        if (!first_seen_cv.wait_for(lock, 10s, [&] { return first_seen; })) return;
        ScriptedServer::write_all(fd, chunk(second) + "0\r\n\r\n");
    });
    HttpClientPool pool(server.origin(), "", 5s, 5s);
    std::string received;
    const HttpResult r =
        pool.send({.method = "POST", .target = "/v1/chat/completions", .body = "{}", .event_stream = true},
                  [&](int status, std::string_view data) {
                      EXPECT_EQ(status, 200);
                      received += data;
                      const std::lock_guard lock(mutex);
                      first_seen = true;
                      first_seen_cv.notify_all();
                      return true;
                  });
    ASSERT_TRUE(r) << describe(r.failure) << " " << r.detail;
    EXPECT_EQ(received, "data: {\"n\":1}\n\ndata: [DONE]\n\n");
    EXPECT_TRUE(r.body.empty());  // the callback took it
}

TEST(HttpClient, ASilentServerTimesOutAndAStoppedRequestReturnsAtOnce) {
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    ScriptedServer server([&](int fd) {
        ScriptedServer::read_request(fd);
        released.wait_for(30s);  // never answers
    });
    {
        HttpClientPool quick(server.origin(), "", 200ms, 5s);
        const HttpResult r = quick.send({.target = "/health"});
        EXPECT_EQ(r.failure, HttpFailure::timeout) << describe(r.failure) << " " << r.detail;
    }
    // With a 60 s timeout, only stop() can end this exchange before the test's own deadline.
    HttpClientPool patient(server.origin(), "", 60s, 5s);
    auto connection = patient.take();
    auto pending = std::async(std::launch::async, [&] { return connection->exchange({.target = "/slow"}); });
    std::this_thread::sleep_for(100ms);
    connection->stop();
    ASSERT_EQ(pending.wait_for(20s), std::future_status::ready);
    const HttpResult r = pending.get();
    EXPECT_EQ(r.failure, HttpFailure::stopped);
    EXPECT_FALSE(connection->reusable());
    release.set_value();
}

TEST(HttpClient, RefusedConnectionsAndMalformedOriginsAreClear) {
    int port;
    {
        ScriptedServer closed([](int) {});
        port = std::stoi(closed.origin().substr(closed.origin().rfind(':') + 1));
    }
    HttpClientPool pool("http://127.0.0.1:" + std::to_string(port), "", 1s, 1s);
    const HttpResult r = pool.send({.target = "/"});
    EXPECT_EQ(r.failure, HttpFailure::connect);
    EXPECT_NE(describe(r.failure).find("cannot connect"), std::string::npos);
    for (const char * bad : {"ftp://example.org", "http://example.org/v1", "example.org:80", "http://[::1"}) {
        EXPECT_THROW(HttpClientPool(bad, "", 1s, 1s), switchyard::Error) << bad;
    }
    EXPECT_NO_THROW(HttpClientPool("https://api.example.com", "", 1s, 1s));
    EXPECT_NO_THROW(HttpClientPool("http://[::1]:8080", "", 1s, 1s));
}

// OpenSSL's own test server (`openssl s_server -www`) with a self-signed certificate for
// "localhost": the client refuses it until it is trusted, and then only under that name.
TEST(HttpClient, TlsVerifiesTheCertificateAndTheHostName) {
    switchyard::test::ScratchDir dir;
    const auto cert = dir.file("cert.pem"), key = dir.file("key.pem");
    const std::string make =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout " +
        key.string() + " -out " + cert.string() + " > " + dir.file("req.log").string() + " 2>&1";
    ASSERT_EQ(std::system(make.c_str()), 0) << switchyard::test::read_file(dir.file("req.log"));
    std::string openssl;  // spawn_logged execs a path, not a name
    for (std::string_view path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin";
         openssl.empty() && !path.empty();) {
        const auto colon = path.find(':');
        const auto candidate = std::filesystem::path(path.substr(0, colon)) / "openssl";
        if (::access(candidate.c_str(), X_OK) == 0) openssl = candidate;
        path = colon == std::string_view::npos ? std::string_view() : path.substr(colon + 1);
    }
    ASSERT_FALSE(openssl.empty()) << "no openssl on PATH (ca-certificates brings it)";
    const int port = switchyard::test::free_port();
    int pid = switchyard::test::spawn_logged(
        {openssl, "s_server", "-accept", std::to_string(port), "-cert", cert.string(), "-key", key.string(), "-www"},
        dir.file("server.log"));
    // Ready once it accepts (it may listen on IPv4, IPv6 or both).
    bool ready = false;
    for (int i = 0; i < 200 && !ready; ++i) {
        addrinfo hints{}, *found = nullptr;
        hints.ai_socktype = SOCK_STREAM;
        if (::getaddrinfo("localhost", std::to_string(port).c_str(), &hints, &found) == 0) {
            for (const addrinfo * a = found; a != nullptr && !ready; a = a->ai_next) {
                const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
                ready = fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
                if (fd >= 0) ::close(fd);
            }
            ::freeaddrinfo(found);
        }
        if (!ready) std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(ready) << switchyard::test::read_file(dir.file("server.log"));
    const std::string local = "https://localhost:" + std::to_string(port);

    HttpResult r = HttpClientPool(local, "", 5s, 5s).send({.target = "/"});
    EXPECT_EQ(r.failure, HttpFailure::tls);
    EXPECT_NE(r.detail.find("certificate"), std::string::npos) << r.detail;

    // Trusted (OpenSSL reads SSL_CERT_FILE when a pool sets up its TLS context).
    ::setenv("SSL_CERT_FILE", cert.c_str(), 1);
    r = HttpClientPool(local, "", 5s, 5s).send({.target = "/"});
    EXPECT_TRUE(r) << describe(r.failure) << " " << r.detail;
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find("s_server"), std::string::npos) << r.body.substr(0, 300);

    // Trusted, but reached under a name the certificate does not carry.
    r = HttpClientPool("https://127.0.0.1:" + std::to_string(port), "", 5s, 5s).send({.target = "/"});
    EXPECT_EQ(r.failure, HttpFailure::tls);
    EXPECT_NE(r.detail.find("mismatch"), std::string::npos) << r.detail;  // OpenSSL 3: "IP address mismatch"
    ::unsetenv("SSL_CERT_FILE");
    switchyard::test::stop_group(pid);
}

}  // namespace
