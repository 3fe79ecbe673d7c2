// A stub OpenAI-compatible server with fixed answers: the remote backend's tests, and the serve
// benchmarks' baseline (the gateway's own overhead is the difference to calling it directly).
// Usage: switchyard_stub_openai [--port N (0: any)] [--name NAME] [--api-key KEY]
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <sys/socket.h>

using nlohmann::json;

int main(int argc, char ** argv) {
    int port = 0;
    std::string name = "stub", key;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--port")) port = std::atoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--name")) name = argv[i + 1];
        if (!std::strcmp(argv[i], "--api-key")) key = argv[i + 1];
    }
    httplib::Server server;
    server.new_task_queue = [] { return new httplib::ThreadPool(256); };
    // As the gateway does (gateway.cpp), so the baseline is not slowed by what the gateway avoids.
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(100000);
    int listen_fd = -1;
    server.set_socket_options([&](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        listen_fd = sock;
    });
    auto answer = [&](bool chat) {
        return [&, chat](const httplib::Request & req, httplib::Response & res) {
            if (!key.empty() && req.get_header_value("Authorization") != "Bearer " + key) {
                res.status = 401;
                res.set_content(
                    R"({"error":{"message":"bad key","type":"authentication_error","param":null,"code":null}})",
                    "application/json");
                return;
            }
            const json body = json::parse(req.body, nullptr, false);
            // Test hooks: "stub_status" answers with that status; "stub_truncate" ends a stream
            // without [DONE]; a whole answer's "stub_max_tokens" echoes the max_tokens received;
            // "stub_delay_ms" answers that much later, as a long generation would.
            if (body.is_object() && body.contains("stub_delay_ms")) {
                std::this_thread::sleep_for(std::chrono::milliseconds(body["stub_delay_ms"].get<int>()));
            }
            if (body.is_object() && body.contains("stub_status")) {
                res.status = body["stub_status"].get<int>();
                res.set_content(json{{"error",
                                      {{"message", "stub status " + std::to_string(res.status)},
                                       {"type", "stub"},
                                       {"param", nullptr},
                                       {"code", nullptr}}}}
                                    .dump(),
                                "application/json");
                return;
            }
            // The answer names the model the client asked for, so callers can see what was forwarded.
            const std::string model = body.is_object() ? body.value("model", "") : "";
            const bool streamed = body.is_object() && body.value("stream", false);
            if (chat && body.is_object() && body.contains("tools")) {
                // A tool call, with fields a gateway must pass on unchanged.
                const json call = {{"id", "call_1"},
                                   {"type", "function"},
                                   {"function", {{"name", "get_weather"}, {"arguments", R"({"city":"Oslo"})"}}}};
                if (!streamed) {
                    res.set_content(
                        json{{"id", "x"},
                             {"object", "chat.completion"},
                             {"created", 0},
                             {"model", model},
                             {"system_fingerprint", "fp_stub"},
                             {"choices",
                              {{{"index", 0},
                                {"finish_reason", "tool_calls"},
                                {"logprobs", nullptr},
                                {"message",
                                 {{"role", "assistant"},
                                  {"content", nullptr},
                                  {"refusal", nullptr},
                                  {"tool_calls", {call}}}}}}},
                             {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 7}, {"total_tokens", 12}}}}
                            .dump(),
                        "application/json");
                    return;
                }
                const json deltas = {{{"role", "assistant"},
                                      {"content", nullptr},
                                      {"tool_calls",
                                       {{{"index", 0},
                                         {"id", "call_1"},
                                         {"type", "function"},
                                         {"function", {{"name", "get_weather"}, {"arguments", ""}}}}}}},
                                     {{"tool_calls", {{{"index", 0}, {"function", {{"arguments", R"({"city":)"}}}}}}},
                                     {{"tool_calls", {{{"index", 0}, {"function", {{"arguments", R"("Oslo"})"}}}}}}},
                                     json::object()};
                std::string sse;
                for (std::size_t i = 0; i < deltas.size(); ++i) {
                    const bool last = i + 1 == deltas.size();
                    sse += "data: " +
                        json{{"id", "x"},
                             {"object", "chat.completion.chunk"},
                             {"created", 0},
                             {"model", model},
                             {"system_fingerprint", "fp_stub"},
                             {"choices",
                              {{{"index", 0},
                                {"delta", deltas[i]},
                                {"finish_reason", last ? json("tool_calls") : json(nullptr)}}}}}
                            .dump() +
                        "\n\n";
                }
                res.set_content(sse + "data: [DONE]\n\n", "text/event-stream");
                return;
            }
            const std::vector<std::string> pieces{"Hello", " from " + name, " to " + model};
            const json usage = {{"prompt_tokens", 3}, {"completion_tokens", 3}, {"total_tokens", 6}};
            if (!streamed) {
                const std::string text = pieces[0] + pieces[1] + pieces[2];
                json choice = {{"index", 0}, {"finish_reason", "stop"}};
                if (chat)
                    choice["message"] = {{"role", "assistant"}, {"content", text}};
                else
                    choice["text"] = text;
                res.set_content(json{{"id", "x"},
                                     {"object", chat ? "chat.completion" : "text_completion"},
                                     {"created", 0},
                                     {"model", model},
                                     {"choices", {choice}},
                                     {"usage", usage},
                                     {"stub_max_tokens", body.is_object() ? body.value("max_tokens", json()) : json()}}
                                    .dump(),
                                "application/json");
                return;
            }
            std::string sse;
            for (std::size_t i = 0; i <= pieces.size(); ++i) {
                const bool last = i == pieces.size();
                json choice = {{"index", 0}, {"finish_reason", last ? json("stop") : json(nullptr)}};
                if (chat)
                    choice["delta"] = last ? json::object() : json{{"content", pieces[i]}};
                else
                    choice["text"] = last ? "" : pieces[i];
                json chunk = {{"id", "x"},
                              {"object", chat ? "chat.completion.chunk" : "text_completion"},
                              {"created", 0},
                              {"model", model},
                              {"choices", {choice}}};
                if (last) chunk["usage"] = usage;
                sse += "data: " + chunk.dump() + "\n\n";
            }
            const bool truncate = body.is_object() && body.value("stub_truncate", false);
            res.set_content(truncate ? sse : sse + "data: [DONE]\n\n", "text/event-stream");
        };
    };
    server.Post("/v1/chat/completions", answer(true));
    server.Post("/v1/completions", answer(false));
    server.Get("/health", [](const httplib::Request &, httplib::Response & res) {
        res.set_content(R"({"status":"ok"})", "application/json");
    });
    server.Get("/v1/models", [&](const httplib::Request &, httplib::Response & res) {
        res.set_content(json{{"object", "list"}, {"data", {{{"id", name}, {"object", "model"}}}}}.dump(),
                        "application/json");
    });
    if (port == 0) {
        port = server.bind_to_any_port("127.0.0.1");
    } else if (!server.bind_to_port("127.0.0.1", port)) {
        std::fprintf(stderr, "stub: cannot listen on port %d\n", port);
        return 1;
    }
    if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
    std::printf("stub: listening on http://127.0.0.1:%d\n", port);
    std::fflush(stdout);
    server.listen_after_bind();
}
