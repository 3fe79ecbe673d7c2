// An HTTP load driver for the serve benchmarks: exactly N POSTs over C keep-alive connections,
// counting every failure (wrk runs for a duration, not a count). Closed loop (each connection
// sends as soon as its answer comes), or paced at RATE requests/s in all, so latency can be
// measured below saturation, where it is not just the inverse of throughput.
// Usage: switchyard_load_driver URL PATH BODY REQUESTS CONCURRENCY [RATE]
// Prints: requests N failures F seconds S rps R p50_ms P p99_ms Q
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 6 && argc != 7) {
        std::fprintf(stderr, "usage: %s URL PATH BODY REQUESTS CONCURRENCY [RATE]\n", argv[0]);
        return 2;
    }
    const std::string url = argv[1], path = argv[2], body = argv[3];
    const int requests = std::atoi(argv[4]), concurrency = std::max(1, std::atoi(argv[5]));
    const double rate = argc == 7 ? std::atof(argv[6]) : 0;
    // Each connection sends every concurrency/rate seconds, starting spread over one interval.
    const auto interval = std::chrono::duration<double>(rate > 0 ? concurrency / rate : 0);
    std::atomic<int> next{0}, failures{0};
    std::mutex mutex;
    std::vector<double> latencies;
    std::string first_failure;
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < concurrency; ++t) {
        threads.emplace_back([&, t] {
            httplib::Client client(url);
            client.set_keep_alive(true);
            client.set_tcp_nodelay(true);
            client.set_read_timeout(std::chrono::seconds(300));
            std::vector<double> mine;
            auto due =
                start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval * t / concurrency);
            while (next++ < requests) {
                if (rate > 0) {
                    std::this_thread::sleep_until(due);
                    due += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
                }
                const auto t0 = std::chrono::steady_clock::now();
                const auto res = client.Post(path.c_str(), body, "application/json");
                mine.push_back(
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
                if (!res || res->status != 200) {
                    ++failures;
                    const std::lock_guard lock(mutex);
                    if (first_failure.empty())
                        first_failure =
                            res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error());
                }
            }
            const std::lock_guard lock(mutex);
            latencies.insert(latencies.end(), mine.begin(), mine.end());
        });
    }
    for (auto & t : threads) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::sort(latencies.begin(), latencies.end());
    auto pct = [&](double p) {
        return latencies.empty()
            ? 0.0
            : latencies[std::min(latencies.size() - 1, static_cast<std::size_t>(p * latencies.size()))];
    };
    std::printf("requests %zu failures %d seconds %.2f rps %.1f p50_ms %.3f p99_ms %.3f\n", latencies.size(),
                failures.load(), seconds, latencies.size() / seconds, pct(0.50), pct(0.99));
    if (!first_failure.empty()) std::fprintf(stderr, "first failure: %s\n", first_failure.substr(0, 300).c_str());
    return failures ? 1 : 0;
}
