// Aggregate generation throughput of ContinuousBatcher in process against llama-server on the
// same model, prompts and concurrency: closed-loop clients, each sending its next request when
// the previous one has finished. Run by bench/batching.sh, which starts the server.
#include "engine/continuous_batcher.h"
#include "support/error.h"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

using namespace switchyard;
using engine::ContinuousBatcher;

namespace {

struct Completion {
    std::string text;
    // Tokens the model produced, the end-of-generation token included: what both sides decode
    // and sample, and llama-server's tokens_predicted.
    int sampled = 0;
};

struct Run {
    std::vector<Completion> completions;
    double seconds = 0.0;

    long tokens() const {
        long n = 0;
        for (const auto & c : completions) n += c.sampled;
        return n;
    }
    double tokens_per_second() const { return static_cast<double>(tokens()) / seconds; }
};

// `clients` threads take prompts in turn; `complete` serves one prompt on the calling thread.
template <typename Complete>
Run closed_loop(const std::vector<std::string> & prompts, int clients, Complete complete) {
    Run run;
    run.completions.resize(prompts.size());
    std::atomic<std::size_t> next{0};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            for (std::size_t i; (i = next++) < prompts.size();) run.completions[i] = complete(c, prompts[i]);
        });
    }
    for (auto & t : threads) t.join();
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return run;
}

Completion in_process(ContinuousBatcher & batcher, const std::string & prompt, int max_tokens) {
    engine::GenerateRequest request;
    request.prompt = prompt;
    request.max_tokens = max_tokens;
    request.sampling.temperature = 0.0f;
    std::promise<Completion> done;
    auto result = done.get_future();
    const auto ticket =
        batcher.submit(std::move(request),
                       {{}, [&](const engine::GenerateResult & r, const std::string & error) {
                            if (!error.empty()) {
                                done.set_exception(std::make_exception_ptr(Error(error)));
                                return;
                            }
                            done.set_value({r.text, r.completion_tokens + (r.finish == engine::FinishReason::eos)});
                        }});
    if (!ticket) throw Error("the batcher's queue is full");
    return result.get();
}

Completion from_server(httplib::Client & client, const std::string & prompt, int max_tokens) {
    // Greedy, no prompt cache (the batcher has none), the same token budget.
    const nlohmann::json body = {
        {"prompt", prompt}, {"n_predict", max_tokens}, {"temperature", 0.0}, {"cache_prompt", false}};
    const auto res = client.Post("/completion", body.dump(), "application/json");
    if (!res) throw Error("llama-server: " + httplib::to_string(res.error()));
    if (res->status != 200) throw Error("llama-server answered " + std::to_string(res->status) + ": " + res->body);
    const auto reply = nlohmann::json::parse(res->body);
    return {reply.at("content").get<std::string>(), reply.at("tokens_predicted").get<int>()};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char ** argv) {
    CLI::App app{"ContinuousBatcher against llama-server: aggregate generated tokens/s"};
    std::string model, prompts_file, server;
    int requests = 32, concurrency = 4, max_tokens = 64, threads = 0, context = 256, prompt_words = 12, repeats = 3;
    app.add_option("--model", model, "GGUF model")->required();
    app.add_option("--prompts", prompts_file, "text file; each non-empty line's first words make a prompt")->required();
    app.add_option("--server", server,
                   "llama-server base URL (http://127.0.0.1:PORT), started with --parallel = concurrency");
    app.add_option("--requests", requests, "requests per run");
    app.add_option("--concurrency", concurrency, "clients at once, and the batcher's slots");
    app.add_option("--max-tokens", max_tokens, "tokens to generate per request");
    app.add_option("--threads", threads, "decode threads (give llama-server the same)");
    app.add_option("--context", context, "tokens per slot (llama-server: -c context*concurrency)");
    app.add_option("--prompt-words", prompt_words, "words per prompt");
    app.add_option("--repeats", repeats, "runs per side; medians are reported");
    CLI11_PARSE(app, argc, argv);

    try {
        ContinuousBatcher::Options options;
        options.engine = {.model_path = model, .threads = threads, .context_length = context, .parallel = concurrency};
        options.max_queue = concurrency;
        auto batcher = std::make_unique<ContinuousBatcher>(options);

        std::ifstream in(prompts_file);
        if (!in) throw Error(prompts_file + ": cannot read");
        std::vector<std::string> prompts;
        for (std::string line; prompts.size() < static_cast<std::size_t>(requests) && std::getline(in, line);) {
            std::istringstream words(line);
            std::string prompt, word;
            for (int w = 0; w < prompt_words && words >> word; ++w) prompt += (w ? " " : "") + word;
            if (prompt.empty()) continue;
            try {
                batcher->tokenize(prompt, true);  // a vocabulary without byte fallback may lack a character
                prompts.push_back(prompt);
            } catch (const Error &) {}
        }
        if (prompts.size() < static_cast<std::size_t>(requests)) throw Error(prompts_file + ": too few usable prompts");

        std::vector<std::unique_ptr<httplib::Client>> clients;
        for (int c = 0; server.size() && c < concurrency; ++c) {
            clients.push_back(std::make_unique<httplib::Client>(server));
            clients.back()->set_read_timeout(600);
        }
        auto batched = [&] {
            return closed_loop(prompts, concurrency,
                               [&](int, const std::string & p) { return in_process(*batcher, p, max_tokens); });
        };
        auto served = [&] {
            return closed_loop(prompts, concurrency,
                               [&](int c, const std::string & p) { return from_server(*clients[c], p, max_tokens); });
        };
        // One untimed request each, so first-use costs are not measured.
        in_process(*batcher, prompts[0], 4);
        if (server.size()) from_server(*clients[0], prompts[0], 4);

        std::vector<double> batched_tps, served_tps;
        Run last_batched, last_served;
        for (int r = 0; r < repeats; ++r) {  // alternated, so drifting machine load hits both alike
            last_batched = batched();
            batched_tps.push_back(last_batched.tokens_per_second());
            if (server.empty()) continue;
            last_served = served();
            served_tps.push_back(last_served.tokens_per_second());
        }
        std::printf("in-process  %3d requests  concurrency %d  %6ld tokens  %9.1f tokens/s\n", requests, concurrency,
                    last_batched.tokens(), median(batched_tps));
        if (server.empty()) return 0;
        std::size_t same = 0;
        for (std::size_t i = 0; i < prompts.size(); ++i) {
            const auto & ours = last_batched.completions[i];
            const auto & theirs = last_served.completions[i];
            if (ours.text == theirs.text) {
                ++same;
            } else {
                std::fprintf(stderr, "differs: \"%s\"\n  in-process (%d): %s\n  llama-server (%d): %s\n",
                             prompts[i].c_str(), ours.sampled, ours.text.c_str(), theirs.sampled, theirs.text.c_str());
            }
        }
        std::printf("llama-server %3d requests  concurrency %d  %6ld tokens  %9.1f tokens/s\n", requests, concurrency,
                    last_served.tokens(), median(served_tps));
        std::printf("ratio in-process / llama-server: %.3f   (identical completions: %zu of %zu)\n",
                    median(batched_tps) / median(served_tps), same, prompts.size());
        return 0;
    } catch (const std::exception & e) {
        std::fprintf(stderr, "batching_bench: %s\n", e.what());
        return 1;
    }
}
