// `switchyard serve`: run a portfolio (or one model) behind an OpenAI-compatible endpoint.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "model/portfolio.h"
#include "serve/gateway.h"
#include "support/error.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <optional>
#include <pthread.h>
#include <thread>

namespace switchyard::cli {

namespace {

struct ServeOptions {
    std::filesystem::path portfolio;
    std::filesystem::path model;
    int context = 2048;
    int parallel = 4;
    int threads = 0;
    model::KvCacheTypes kv_cache;
    engine::DraftOptions draft;
    bool normalize = false;
    // Flags given on the command line override the portfolio's `server:` settings.
    std::optional<std::string> host, admin_token_env, api_keys_env, memory_budget;
    std::optional<int> port, max_tokens, queue_length, max_streams, request_timeout_ms, cooldown_s;
    std::optional<std::size_t> max_body_bytes;
};

void run_serve(const ServeOptions & o) {
    model::Portfolio p;
    if (!o.portfolio.empty()) {
        p = model::load_portfolio(o.portfolio);
    } else {
        if (!std::filesystem::exists(o.model)) throw Error("{}: no such file", o.model.string());
        const std::string name = o.model.stem().string();
        p.models.push_back({.name = name,
                            .path = std::filesystem::absolute(o.model),
                            .context = o.context,
                            .parallel = o.parallel,
                            .threads = o.threads,
                            .kv_cache = o.kv_cache,
                            .normalize = o.normalize});
        p.routes.push_back({.name = name, .model = name});
        p.default_route = name;
        if (!o.draft.model_path.empty()) {
            // The draft is a model of the portfolio too, as `draft:` requires: served by its name
            // when asked for, loaded only then.
            const std::string draft = o.draft.model_path.stem().string() + (o.draft.model_path.stem() == name ? "-draft" : "");
            auto & served = p.models.front();
            served.draft = draft;
            served.draft_path = std::filesystem::absolute(o.draft.model_path);
            served.draft_max = o.draft.max_tokens;
            p.models.push_back({.name = draft,
                                .path = served.draft_path,
                                .context = o.context,
                                .parallel = o.parallel,
                                .threads = o.threads,
                                .normalize = o.normalize,
                                .load = model::PortfolioModel::Load::on_demand});
        }
    }
    auto & s = p.server;
    if (o.host) s.host = *o.host;
    if (o.port) s.port = *o.port;
    if (o.admin_token_env) s.admin_token_env = *o.admin_token_env;
    if (o.api_keys_env) s.api_keys_env = *o.api_keys_env;
    if (o.max_tokens) s.max_tokens = *o.max_tokens;
    if (o.queue_length) s.queue_length = *o.queue_length;
    if (o.max_streams) s.max_streams = *o.max_streams;
    if (o.request_timeout_ms) s.request_timeout_ms = *o.request_timeout_ms;
    if (o.cooldown_s) s.cooldown_s = *o.cooldown_s;
    if (o.max_body_bytes) s.max_body_bytes = *o.max_body_bytes;
    if (o.memory_budget) {
        try {
            s.memory_budget = model::parse_memory_budget(*o.memory_budget);
        } catch (const Error & e) {
            throw Error("--memory-budget: {}", e.what());
        }
    }

    // Signals are taken by one thread with sigwait, so block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    const std::string host = s.host;
    serve::Gateway gateway(std::move(p), o.portfolio);
    const int port = gateway.bind();
    const auto dep = gateway.current();
    std::printf("switchyard serve: listening on http://%s:%d (%zu models, %zu routes)\n", host.c_str(), port,
                dep->portfolio.models.size(), dep->portfolio.routes.size());
    std::fflush(stdout);
    std::thread waiter([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&signals, &sig) != 0) continue;
            if (sig == SIGHUP) {
                gateway.reload();
                continue;
            }
            gateway.stop();
            return;
        }
    });
    gateway.run();
    waiter.join();
}

}  // namespace

void add_serve(CLI::App & app) {
    auto * cmd =
        app.add_subcommand("serve", "Serve a portfolio of models (or one model) behind an OpenAI-compatible HTTP API");
    auto o = std::make_shared<ServeOptions>();
    auto * portfolio =
        cmd->add_option("--portfolio", o->portfolio, "Portfolio file (docs/portfolio.md); SIGHUP re-reads it")
            ->check(CLI::ExistingFile);
    auto * model = cmd->add_option(
        "-m,--model", o->model, "Serve one GGUF model instead of a portfolio (its name: the file name without .gguf)");
    portfolio->excludes(model);
    add_context(*cmd, o->context, "with -m");
    cmd->add_option("--parallel", o->parallel, "With -m: requests decoded side by side")->capture_default_str();
    add_threads(*cmd, o->threads, "with -m");
    add_cache_types(*cmd, o->kv_cache, "with -m (a portfolio model's `kv:`)");
    add_draft(*cmd, o->draft, "with -m (a portfolio model's `draft:` and `draft_max:`)");
    cmd->add_flag("--normalize", o->normalize,
                  "With -m: collapse whitespace and drop characters the vocabulary cannot encode, in every prompt");
    cmd->add_option("--host", o->host, "Address to listen on (default 127.0.0.1)");
    cmd->add_option("--port", o->port, "Port to listen on; 0 picks a free one (default 8080)");
    cmd->add_option("--admin-token-env", o->admin_token_env,
                    "Environment variable holding the admin API's bearer token (default SWITCHYARD_ADMIN_TOKEN)");
    cmd->add_option("--api-keys-env", o->api_keys_env,
                    "Environment variable holding comma-separated client API keys (default: none required)");
    cmd->add_option("--max-body-bytes", o->max_body_bytes,
                    "Largest request body; larger ones get 413 (default 1048576)");
    cmd->add_option("--max-tokens", o->max_tokens, "Largest max_tokens a request may ask for (default 4096)");
    cmd->add_option("--queue-length", o->queue_length,
                    "Requests waiting per in-process model before it counts as full (default 64)");
    cmd->add_option("--max-streams", o->max_streams, "Concurrent streaming responses; more get 503 (default 64)");
    cmd->add_option("--request-timeout-ms", o->request_timeout_ms,
                    "Time a model has to answer before fallback (default 120000)");
    cmd->add_option("--cooldown-s", o->cooldown_s,
                    "Seconds a failed backend rests before it is tried again (default 30)");
    cmd->add_option("--memory-budget", o->memory_budget,
                    "Memory the in-process models may hold together, e.g. 6GiB; 'load: on_demand' models unload "
                    "least recently used first to keep within it (default: no limit)");
    cmd->callback([o] {
        if (o->portfolio.empty() && o->model.empty()) throw Error("serve needs --portfolio FILE or -m MODEL");
        run_serve(*o);
    });
}

}  // namespace switchyard::cli
