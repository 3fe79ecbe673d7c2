// `switchyard serve` under hostile input: each attack gets its right answer while a well-behaved
// client, running all along, sees no failure and /health keeps answering.
#include "serve/admin_scope.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace switchyard;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int connect_to(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Sends raw bytes and returns the status of the answer (0 when none came).
int raw_status(int port, const std::string & bytes) {
    const int fd = connect_to(port);
    if (fd < 0) return 0;
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (std::size_t sent = 0; sent < bytes.size();) {
        const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server may answer and close before reading everything
        sent += static_cast<std::size_t>(n);
    }
    char buf[64] = {};
    const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (n < 12 || std::string_view(buf, 5) != "HTTP/") return 0;
    return std::atoi(buf + 9);
}

std::size_t open_file_limit() {
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
}

class Hostile : public ::testing::Test {
protected:
    void SetUp() override {
        const auto model = test::model_path("stories260K-f32.gguf");
        test::write_file(dir.file("portfolio.yaml"),
                         "version: 1\nmodels:\n"
                         "  - {name: stories, path: " +
                             model.string() +
                             ", context: 256, parallel: 2, threads: 1}\n"
                             "  - {name: remote, endpoint: http://127.0.0.1:9/v1, api_key_env: SWITCHYARD_KEY_REMOTE}\n"
                             "routes:\n  - {name: main, model: stories}\n  - {name: bomb, model: stories}\n"
                             // Catastrophic for a backtracking matcher on a long run of 'a' not followed by the end.
                             "rules:\n  - {route: bomb, regex: \"(a+)+$\"}\n"
                             "default_route: main\n"
                             "server: {max_body_bytes: 2097152, read_timeout_ms: 2000, max_streams: 8}\n");
        server = std::make_unique<test::ServerProcess>(
            SWITCHYARD_BINARY,
            std::vector<std::string>{"serve", "--portfolio", dir.file("portfolio.yaml").string(), "--port", "0"},
            std::vector<std::string>{"SWITCHYARD_ADMIN_TOKEN=sekrit", "SWITCHYARD_KEY_REMOTE=k"});
        port = server->port();
    }

    test::ScratchDir dir;
    std::unique_ptr<test::ServerProcess> server;
    int port = 0;
};

TEST_F(Hostile, EveryAttackIsAnsweredWhileAWellBehavedClientIsServed) {
    // The well-behaved client and the health probe, all along.
    std::atomic<bool> done{false};
    std::atomic<int> ok{0}, failed{0}, health_ok{0}, health_failed{0};
    std::atomic<long> health_worst_us{0};
    std::thread client([&] {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(std::chrono::seconds(60));
        while (!done) {
            auto res = c.Post("/v1/completions",
                              json{{"prompt", "Once upon a time"}, {"max_tokens", 4}, {"temperature", 0}}.dump(),
                              "application/json");
            (res && res->status == 200 ? ok : failed)++;
        }
    });
    std::thread probe([&] {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(std::chrono::seconds(30));
        while (!done) {
            const auto t0 = Clock::now();
            auto res = c.Get("/health");
            const long us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
            (res && res->status == 200 ? health_ok : health_failed)++;
            long worst = health_worst_us.load();
            while (us > worst && !health_worst_us.compare_exchange_weak(worst, us)) {}
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });

    // Idle connections that never send a byte, as many as the descriptors allow up to 10,000,
    // and slow senders that dribble a header a byte at a time.
    // Both processes hold one descriptor per connection: stay under this one's limit.
    const std::size_t limit = open_file_limit();
    const std::size_t headroom = 300;
    const std::size_t idle_wanted = std::min<std::size_t>(10000, limit > headroom + 1000 ? limit - headroom - 1000 : 0);
    std::vector<int> idle;
    for (std::size_t i = 0; i < idle_wanted; ++i) {
        const int fd = connect_to(port);
        if (fd < 0) break;
        idle.push_back(fd);
    }
    std::vector<int> slow;
    for (std::size_t i = 0; i < 1000 && idle.size() + slow.size() + headroom < limit; ++i) {
        const int fd = connect_to(port);
        if (fd < 0) break;
        ::send(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ", 48, MSG_NOSIGNAL);
        slow.push_back(fd);
    }
    std::printf("[hostile] %zu idle connections, %zu slow senders open\n", idle.size(), slow.size());
    EXPECT_GE(idle.size() + slow.size(), 1000u);

    const std::string json_type = "Content-Type: application/json\r\n";
    auto post = [&](const std::string & path, const std::string & type_header, const std::string & body,
                    const std::string & extra = "") {
        return raw_status(port,
                          "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + type_header + extra + "Content-Length: " +
                              std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    };
    // 500,000 levels of nesting in a 1 MB body: refused before parsing, not a stack overflow.
    EXPECT_EQ(post("/v1/completions", json_type, std::string(500000, '[') + std::string(500000, ']')), 400);
    // A prompt that takes a backtracking matcher exponential time: RE2 routes it at once.
    {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(std::chrono::seconds(60));
        auto res = c.Post("/v1/completions", json{{"prompt", std::string(100000, 'a') + "!"}, {"max_tokens", 1}}.dump(),
                          "application/json");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 400) << res->body;  // routed (to 'main'), then too long for the context
        EXPECT_NE(res->body.find("context"), std::string::npos) << res->body;
        auto bomb = c.Post("/v1/completions", json{{"prompt", "aaaa"}, {"max_tokens", 1}}.dump(), "application/json");
        ASSERT_TRUE(bomb);
        EXPECT_EQ(bomb->get_header_value("X-Switchyard-Route"), "bomb");
    }
    // Headers larger than the limit.
    EXPECT_EQ(post("/v1/completions", json_type, "{}", "X-Big: " + std::string(20000, 'x') + "\r\n"), 431);
    // Too many headers in all.
    std::string many;
    for (int i = 0; i < 2000; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(post("/v1/completions", json_type, "{}", many), 431);
    // A body a web page could send without asking: never acted on.
    EXPECT_EQ(post("/v1/completions", "Content-Type: text/plain\r\n", R"({"prompt":"x"})"), 415);
    // Malformed HTTP.
    EXPECT_EQ(raw_status(port, "GARBAGE\r\n\r\n"), 400);
    // Admin pushes reaching outside what serve was started with.
    const std::string auth = "Authorization: Bearer sekrit\r\n";
    const std::string yaml_type = "Content-Type: application/yaml\r\n";
    auto put = [&](const std::string & yaml) {
        return raw_status(port,
                          "PUT /admin/portfolio HTTP/1.1\r\nHost: x\r\n" + auth + yaml_type + "Content-Length: " +
                              std::to_string(yaml.size()) + "\r\nConnection: close\r\n\r\n" + yaml);
    };
    EXPECT_EQ(put("version: 1\nmodels:\n  - {name: m, path: /etc/hostname}\nroutes:\n  - {name: main, model: m}\n"),
              403);
    EXPECT_EQ(
        put("version: 1\nmodels:\n  - {name: m, endpoint: http://127.0.0.1:9/v1, api_key_env: HOME}\nroutes:\n  - {name: main, model: m}\n"),
        403);
    EXPECT_EQ(
        put("version: 1\nmodels:\n  - {name: m, endpoint: http://203.0.113.7/v1}\nroutes:\n  - {name: main, model: m}\n"),
        403);

    // Slow senders are cut off once read_timeout_ms (2 s here) has passed.
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    int closed = 0;
    for (const int fd : slow) {
        char c;
        timeval tv{0, 100000};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        closed += ::recv(fd, &c, 1, 0) == 0 ? 1 : 0;
    }
    EXPECT_EQ(closed, static_cast<int>(slow.size()));
    for (const int fd : idle) ::close(fd);
    for (const int fd : slow) ::close(fd);

    done = true;
    client.join();
    probe.join();
    std::printf(
        "[hostile] well-behaved client: %d answered, %d failed; /health: %d answered, %d failed, slowest %.1f ms\n",
        ok.load(), failed.load(), health_ok.load(), health_failed.load(),
        static_cast<double>(health_worst_us.load()) / 1000.0);
    EXPECT_GT(ok.load(), 0);
    EXPECT_EQ(failed.load(), 0);
    EXPECT_GT(health_ok.load(), 0);
    EXPECT_EQ(health_failed.load(), 0);
}

TEST(AdminScope, ConfinesPathsOriginsAndKeyVariables) {
    test::ScratchDir dir;
    model::Portfolio started;
    started.models.push_back({.name = "local", .path = dir.file("models/a.gguf")});
    started.models.push_back(
        {.name = "far", .endpoint = "https://api.example.com/v1", .api_key_env = "OPENAI_API_KEY"});
    started.models.push_back({.name = "spread", .path = dir.file("models/a.gguf"), .rpc = {"10.0.0.9:50052"}});
    started.server.admin_endpoints = {"http://10.0.0.5:8000", "rpc://10.0.0.10:50052"};
    const auto scope = serve::AdminScope::of(started, dir.file("portfolio.yaml"));

    auto pushed = [](model::PortfolioModel m) {
        model::Portfolio p;
        p.models.push_back(std::move(m));
        return p;
    };
    EXPECT_FALSE(scope.violation(pushed({.name = "m", .path = dir.file("models/b.gguf")})));
    EXPECT_FALSE(scope.violation(pushed({.name = "m", .path = dir.file("other/../c.gguf")})));
    EXPECT_TRUE(scope.violation(pushed({.name = "m", .path = dir.file("../../etc/passwd")})));
    EXPECT_TRUE(scope.violation(pushed({.name = "m", .path = "/etc/passwd"})));
    std::filesystem::create_directories(dir.file("models"));
    std::filesystem::create_symlink("/etc", dir.file("models/escape"));
    EXPECT_TRUE(scope.violation(pushed({.name = "m", .path = dir.file("models/escape/passwd")})));

    EXPECT_FALSE(scope.violation(pushed({.name = "m", .endpoint = "HTTPS://api.example.com:443/v2"})));
    EXPECT_FALSE(scope.violation(pushed({.name = "m", .endpoint = "http://10.0.0.5:8000/v1"})));
    EXPECT_TRUE(scope.violation(pushed({.name = "m", .endpoint = "http://10.0.0.5:8001/v1"})));
    EXPECT_TRUE(scope.violation(pushed({.name = "m", .endpoint = "https://api.example.com.evil.net/v1"})));
    EXPECT_TRUE(scope.violation(pushed({.name = "m", .endpoint = "https://evil.net@api.example.com.evil.net/v1"})));
    // An RPC worker runs whatever graph it is sent: only those the started file or the admin list names.
    EXPECT_FALSE(scope.violation(
        pushed({.name = "m", .path = dir.file("models/b.gguf"), .rpc = {"10.0.0.9:50052", "10.0.0.10:50052"}})));
    EXPECT_TRUE(scope.violation(pushed({.name = "m", .path = dir.file("models/b.gguf"), .rpc = {"10.0.0.11:50052"}})));

    EXPECT_FALSE(scope.violation(
        pushed({.name = "m", .endpoint = "https://api.example.com/v1", .api_key_env = "OPENAI_API_KEY"})));
    EXPECT_FALSE(scope.violation(
        pushed({.name = "m", .endpoint = "https://api.example.com/v1", .api_key_env = "SWITCHYARD_KEY_NEW"})));
    const auto why = scope.violation(
        pushed({.name = "m", .endpoint = "https://api.example.com/v1", .api_key_env = "AWS_SECRET_ACCESS_KEY"}));
    ASSERT_TRUE(why);
    EXPECT_NE(why->find("admin_key_env_prefix"), std::string::npos) << *why;

    // GET /evidence serves a route's evidence without a token: it must lie where models may.
    model::Portfolio with_evidence;
    with_evidence.routes.push_back(
        {.name = "r", .model = "local", .evidence = dir.file("models/report.html").string()});
    EXPECT_FALSE(scope.violation(with_evidence));
    with_evidence.routes[0].evidence = "/etc/passwd";
    EXPECT_TRUE(scope.violation(with_evidence));
    with_evidence.routes[0].evidence.clear();
    with_evidence.routes[0].shadow = model::Shadow{.model = "local", .evidence = dir.file("models/escape/shadow")};
    EXPECT_TRUE(scope.violation(with_evidence));
}

}  // namespace
