// Loading on demand within a memory budget: the eviction policy on constructed residents, the
// residency manager over a fake loader, the portfolio keys, and serve on the real models.
#include "compress/quantize.h"
#include "model/portfolio.h"
#include "model/model_info.h"
#include "serve/gateway.h"
#include "serve/local_backend.h"
#include "serve/managed_backend.h"
#include "serve/residency.h"
#include "support/error.h"
#include "support/process_memory.h"
#include "fake_backend.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <future>
#include <optional>
#include <thread>

using namespace switchyard;
using namespace switchyard::serve;
using nlohmann::json;
using std::chrono::seconds;

namespace {

using Clock = ResidencyClock;

// A backend that answers nothing: the manager only holds it.
class Inert final : public test::FakeBackend {
public:
    bool in_process() const override { return true; }
    std::shared_ptr<Stream> start(const ApiRequest &, const GenerationInput &, const std::function<bool()> &) override {
        auto s = std::make_shared<Stream>();
        s->finish({});
        return s;
    }
};

Loader fake(std::uint64_t bytes, std::atomic<int> * loads = nullptr) {
    return [bytes, loads] {
        if (loads != nullptr) ++*loads;
        return Loaded{std::make_shared<Inert>(), bytes};
    };
}

const ResidencyState & state_of(const std::vector<ResidencyState> & states, const std::string & name) {
    for (const auto & s : states)
        if (s.name == name) return s;
    throw std::runtime_error("no model " + name);
}

Residence residence(const Residency & r, const std::string & name) { return state_of(r.states(), name).state; }

// Polls until `done` holds: what the loader thread does happens a moment after it is asked.
template <class F>
void eventually(F done) {
    for (int i = 0; i < 2000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_TRUE(done());
}

auto far() { return Clock::now() + seconds(60); }

}  // namespace

TEST(ResidencyPolicy, EvictsTheLeastRecentlyUsedIdleModelsFirst) {
    const auto t0 = Clock::now();
    std::vector<Resident> rs = {{.id = 1, .bytes = 40, .loaded_at = t0, .last_used = t0 + seconds(30)},
                                {.id = 2, .bytes = 40, .loaded_at = t0, .last_used = t0 + seconds(10)},
                                {.id = 3, .bytes = 40, .loaded_at = t0, .last_used = t0 + seconds(20)}};
    const auto now = t0 + seconds(100);
    EXPECT_TRUE(plan_eviction(rs, 20, 200, now, seconds(10)).unload.empty());
    auto plan = plan_eviction(rs, 40, 130, now, seconds(10));
    EXPECT_TRUE(plan.fits);
    EXPECT_EQ(plan.unload, std::vector<std::size_t>{2});
    plan = plan_eviction(rs, 80, 130, now, seconds(10));
    EXPECT_EQ(plan.unload, (std::vector<std::size_t>{2, 3}));
}

TEST(ResidencyPolicy, KeepsYoungAndPinnedModelsAndDrainsABusyOne) {
    const auto t0 = Clock::now();
    std::vector<Resident> rs = {{.id = 1, .bytes = 50, .pinned = true, .loaded_at = t0, .last_used = t0},
                                {.id = 2, .bytes = 50, .busy = true, .loaded_at = t0, .last_used = t0 + seconds(1)},
                                {.id = 3, .bytes = 50, .loaded_at = t0 + seconds(95), .last_used = t0 + seconds(95)}};
    // 3 is idle but younger than min_resident; 1 is pinned: nothing can go but 2, once it drains.
    const auto plan = plan_eviction(rs, 50, 160, t0 + seconds(100), seconds(10));
    EXPECT_FALSE(plan.fits);
    EXPECT_TRUE(plan.unload.empty());
    ASSERT_TRUE(plan.drain.has_value());
    EXPECT_EQ(*plan.drain, 2u);
    // Once 3 is old enough it is the one to go, and nothing drains.
    const auto later = plan_eviction(rs, 50, 160, t0 + seconds(200), seconds(10));
    EXPECT_TRUE(later.fits);
    EXPECT_EQ(later.unload, std::vector<std::size_t>{3});
}

TEST(ResidencyPolicy, ALoadIsBoundedByItsWeightsKvCacheAndBuffers) {
    model::ModelInfo info;
    info.file_bytes = 1000;
    info.block_count = 2;
    info.head_count = 4;
    info.head_count_kv = 2;
    info.key_length = info.value_length = 8;
    info.vocab_size = 100;
    const LoadBound b = load_bound(info, 16, 2, 4);
    // 2 layers x 256 cells (32, padded as llama.cpp pads them) x 2 kv heads x (8 + 8) x 2 bytes of
    // f16 cache, beside the file and 16 MiB.
    EXPECT_EQ(b.load, 1000u + 32768u + (16u << 20));
    // A q8_0 cache: 34 bytes per block of 32 elements.
    const model::KvCacheTypes q8{GGML_TYPE_Q8_0, GGML_TYPE_Q8_0};
    info.key_length = info.value_length = 32;
    EXPECT_EQ(load_bound(info, 16, 2, 4, q8).load, 1000u + 2u * 256 * (2 * 2 * 34) + (16u << 20));
    info.key_length = info.value_length = 8;
    // 1.5 x (2 x 4 rows x 100 tokens x 4 bytes of logits + 4 rows x 16 cells x 4 heads x 4 bytes of scores).
    EXPECT_EQ(b.buffers, (3200u + 1024u) * 3 / 2);
    EXPECT_EQ(b.total(), b.load + b.buffers);
}

TEST(Residency, AnOnDemandModelsVocabularyOutlivesItsUnload) {
    auto r = Residency::create({.budget = 0, .queue = 8, .min_resident = seconds(0)});
    const model::PortfolioModel entry{.name = "stories",
                                      .path = test::model_path("stories260K-f32.gguf"),
                                      .context = 256,
                                      .parallel = 1,
                                      .threads = 1,
                                      .load = model::PortfolioModel::Load::on_demand,
                                      .ttl_s = 1};
    ManagedBackend backend(r, entry, std::chrono::milliseconds(60000),
                           [entry] { return std::make_shared<LocalBackend>(entry, 8); });
    const engine::EngineModel * vocab = backend.vocabulary();  // loads the model
    ASSERT_NE(vocab, nullptr);
    const engine::EngineModel seen = *vocab;
    while (residence(*r, "stories") != Residence::unloaded) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Unloaded after its ttl: the pointer is the backend's own copy, and asking again loads nothing.
    EXPECT_EQ(backend.vocabulary(), vocab);
    EXPECT_EQ(vocab->vocab_size, 512);
    EXPECT_EQ(vocab->bos, seen.bos);
    EXPECT_EQ(vocab->eos, seen.eos);
    EXPECT_EQ(state_of(r->states(), "stories").loads, 1u);
}

TEST(Residency, LoadsOnDemandAndUnloadsTheLeastRecentlyUsedWithinTheBudget) {
    auto r = Residency::create({.budget = 250, .queue = 8, .min_resident = seconds(0)});
    auto a = r->add("a", fake(100), 100, seconds(0));
    auto b = r->add("b", fake(100), 100, seconds(0));
    auto c = r->add("c", fake(100), 100, seconds(0));
    EXPECT_EQ(residence(*r, "a"), Residence::unloaded);
    for (const auto & m : {a, b, a, c, a, b}) {
        auto got = r->acquire(m, far(), {});
        ASSERT_TRUE(std::holds_alternative<Residency::Lease>(got)) << std::get<Refusal>(got).message;
        EXPECT_LE(r->resident_bytes(), 250u);
    }
    // a b a -> c evicts b (a was used after it) -> a stays -> b evicts c.
    const auto s = r->states();
    EXPECT_EQ(state_of(s, "a").loads, 1u);
    EXPECT_EQ(state_of(s, "b").loads, 2u);
    EXPECT_EQ(state_of(s, "b").unloads, 1u);
    EXPECT_EQ(state_of(s, "c").loads, 1u);
    EXPECT_EQ(state_of(s, "c").unloads, 1u);
    EXPECT_EQ(state_of(s, "c").state, Residence::unloaded);
    EXPECT_EQ(r->peak_resident_bytes(), 200u);
}

TEST(Residency, ABusyModelDrainsBeforeItUnloads) {
    auto r = Residency::create({.budget = 150, .queue = 8, .min_resident = seconds(0)});
    auto a = r->add("a", fake(100), 100, seconds(0));
    auto b = r->add("b", fake(100), 100, seconds(0));
    std::optional<Residency::Lease> held(std::get<Residency::Lease>(r->acquire(a, far(), {})));
    auto wanted = std::async(std::launch::async, [&] { return r->acquire(b, far(), {}); });
    eventually([&] { return residence(*r, "a") == Residence::draining; });
    EXPECT_EQ(residence(*r, "b"), Residence::unloaded);  // not while a's request runs
    EXPECT_EQ(state_of(r->states(), "a").unloads, 0u);
    held.reset();  // a's request ends: a unloads, b loads
    const auto got = wanted.get();
    ASSERT_TRUE(std::holds_alternative<Residency::Lease>(got));
    EXPECT_EQ(state_of(r->states(), "a").unloads, 1u);
    EXPECT_LE(r->peak_resident_bytes(), 150u);
}

TEST(Residency, AFullQueueAndAModelOverTheBudgetAreRefusedWithRetryAfter) {
    std::promise<void> release;
    auto gate = release.get_future().share();
    auto r = Residency::create({.budget = 150, .queue = 1, .min_resident = seconds(0)});
    auto slow = r->add(
        "slow",
        [gate] {
            gate.wait();
            return Loaded{std::make_shared<Inert>(), 100};
        },
        100, seconds(0));
    auto big = r->add("big", fake(200), 200, seconds(0));
    auto first = std::async(std::launch::async, [&] { return r->acquire(slow, far(), {}); });
    eventually([&] { return residence(*r, "slow") == Residence::loading; });
    auto second = r->acquire(slow, far(), {});
    ASSERT_TRUE(std::holds_alternative<Refusal>(second));
    EXPECT_EQ(std::get<Refusal>(second).code, "load_queue_full");
    EXPECT_GE(std::get<Refusal>(second).retry_after_s, 1);
    release.set_value();
    EXPECT_TRUE(std::holds_alternative<Residency::Lease>(first.get()));
    auto over = r->acquire(big, far(), {});
    ASSERT_TRUE(std::holds_alternative<Refusal>(over));
    EXPECT_EQ(std::get<Refusal>(over).code, "over_memory_budget");
    EXPECT_NE(std::get<Refusal>(over).message.find("server.memory_budget"), std::string::npos);
}

// A load that measures more than the budget leaves (its estimate was low) is undone and refused,
// and the manager goes on: the failure path after a load once erased from an empty wait list.
TEST(Residency, ALoadThatMeasuresOverTheBudgetIsUndoneAndRefused) {
    auto r = Residency::create({.budget = 150, .queue = 4, .min_resident = seconds(0)});
    auto under_estimated = r->add("under", fake(200), 50, seconds(0));
    auto small = r->add("small", fake(100), 100, seconds(0));
    const auto refused = r->acquire(under_estimated, far(), {});
    ASSERT_TRUE(std::holds_alternative<Refusal>(refused));
    EXPECT_EQ(std::get<Refusal>(refused).code, "over_memory_budget");
    EXPECT_EQ(residence(*r, "under"), Residence::unloaded);
    EXPECT_TRUE(std::holds_alternative<Residency::Lease>(r->acquire(small, far(), {})));
}

TEST(Residency, IdleModelsUnloadAfterTheirTtlAndRemovedOnesWhenDone) {
    auto r = Residency::create({.budget = 0, .queue = 8, .min_resident = seconds(0)});
    auto a = r->add("a", fake(10), 10, seconds(1));
    auto b = r->add("b", fake(10), 10, seconds(0));
    (void)r->acquire(a, far(), {});  // the lease ends at once
    std::optional<Residency::Lease> kept(std::get<Residency::Lease>(r->acquire(b, far(), {})));
    eventually([&] { return residence(*r, "a") == Residence::unloaded; });
    r->remove(b);
    eventually([&] { return residence(*r, "b") == Residence::draining; });  // its lease is out
    EXPECT_EQ(state_of(r->states(), "b").unloads, 0u);
    kept.reset();
    eventually([&] { return r->states().size() == 1; });
}

TEST(PortfolioResidency, KeysAreReadCheckedAndWrittenBack) {
    const std::string path = test::model_path("stories260K-f32.gguf").string();
    const std::string yaml = "models:\n  - {name: s, path: " + path +
        ", load: on_demand, ttl_s: 30}\n  - {name: t, path: " + path +
        "}\nroutes:\n  - {name: r, model: s, fallback: [t], prefer_loaded: true}\n"
        "server: {memory_budget: 6GiB, load_queue: 4, min_resident_s: 2}\n";
    const auto p = model::parse_portfolio(yaml, "p.yaml", "/");
    EXPECT_EQ(p.models[0].load, model::PortfolioModel::Load::on_demand);
    EXPECT_EQ(p.models[0].ttl_s, 30);
    EXPECT_EQ(p.models[1].load, model::PortfolioModel::Load::always);
    EXPECT_TRUE(p.routes[0].prefer_loaded);
    EXPECT_EQ(p.server.memory_budget, 6ull << 30);
    const auto back = model::parse_portfolio(model::portfolio_to_yaml(p, {}), "back.yaml", "/");
    EXPECT_EQ(back.models[0], p.models[0]);
    EXPECT_EQ(back.server.memory_budget, p.server.memory_budget);
    EXPECT_EQ(back.server.min_resident_s, 2);
    EXPECT_TRUE(back.routes[0].prefer_loaded);
}

TEST(PortfolioResidency, BadValuesNameTheKey) {
    const std::string path = test::model_path("stories260K-f32.gguf").string();
    const auto error_of = [&](const std::string & model_keys, const std::string & extra) {
        try {
            model::parse_portfolio("models:\n  - {name: s, path: " + path + model_keys + "}\n" + extra, "p.yaml", "/");
        } catch (const Error & e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_NE(error_of(", load: lazy", "").find("load"), std::string::npos);
    EXPECT_NE(error_of(", load: lazy", "").find("'always' or 'on_demand'"), std::string::npos);
    EXPECT_NE(error_of(", load: on_demand, ttl_s: -1", "").find("ttl_s"), std::string::npos);
    EXPECT_NE(error_of(", ttl_s: 5", "").find("applies to 'load: on_demand'"), std::string::npos);
    EXPECT_NE(error_of("", "server: {memory_budget: lots}").find("memory_budget"), std::string::npos);
    EXPECT_NE(error_of("", "server: {memory_budget: lots}").find("'lots'"), std::string::npos);
    EXPECT_NE(error_of("", "routes:\n  - {name: r, model: s, prefer_loaded: true}\n").find("prefer_loaded"),
              std::string::npos);
    EXPECT_THROW(model::parse_memory_budget("0"), Error);
}

namespace {

// A gateway in this process on a free port, so that a test reads its residency and this process's RSS.
struct InProcess {
    std::unique_ptr<Gateway> gateway;
    std::thread runner;
    std::unique_ptr<httplib::Client> client;
    int port = 0;
    explicit InProcess(const std::string & yaml) {
        auto portfolio = model::parse_portfolio(yaml, "test.yaml", "/");
        portfolio.server.port = 0;  // a free port: tests run side by side
        gateway = std::make_unique<Gateway>(std::move(portfolio), "");
        port = gateway->bind();
        runner = std::thread([this] { gateway->run(); });
        client = std::make_unique<httplib::Client>("127.0.0.1", port);
        client->set_read_timeout(seconds(120));
    }
    ~InProcess() {
        gateway->stop();
        runner.join();
    }
    httplib::Result complete(const std::string & model, int max_tokens = 8) {
        const json body = {{"model", model}, {"prompt", "Once upon a time"}, {"max_tokens", max_tokens}};
        return client->Post("/v1/completions", body.dump(), "application/json");
    }
};

// Three real models: the two shared ones and a Q8_0 copy of babyllama.
struct ThreeModels {
    test::ScratchDir dir;
    std::filesystem::path q8 = dir.file("baby-q8.gguf");
    ThreeModels() {
        compress::quantize({.input = test::model_path("babyllama-0.9M-f32.gguf"), .output = q8, .type = "Q8_0"});
    }
    std::string yaml(const std::string & server, const std::string & load = "on_demand") const {
        const auto entry = [&](const std::string & name, const std::filesystem::path & path) {
            return "  - {name: " + name + ", path: " + path.string() +
                ", context: 2048, parallel: 4, threads: 1, load: " + load + "}\n";
        };
        return "models:\n" + entry("baby", test::model_path("babyllama-0.9M-f32.gguf")) +
            entry("stories", test::model_path("stories260K-f32.gguf")) + entry("q8", q8) + "server: " + server + "\n";
    }
};

}  // namespace

// Samples, until stopped, the most the residency reports and the process holds.
struct PeakWatch {
    const Residency & residency;
    std::atomic<bool> stop{false};
    std::uint64_t resident = 0, rss = 0;
    std::thread thread{[this] {
        while (!stop) {
            resident = std::max(resident, residency.resident_bytes());
            rss = std::max(rss, process_status_bytes("VmRSS"));
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }};
    void finish() {
        stop = true;
        if (thread.joinable()) thread.join();
    }
    ~PeakWatch() { finish(); }
};

TEST(OnDemandServe, AlternatingTrafficStaysWithinTheBudgetAndTheProcessRssFromTheFirstLoad) {
    ThreeModels models;
    std::map<std::string, std::uint64_t> estimate;
    const std::map<std::string, std::filesystem::path> paths = {{"baby", test::model_path("babyllama-0.9M-f32.gguf")},
                                                                {"stories", test::model_path("stories260K-f32.gguf")},
                                                                {"q8", models.q8}};
    for (const auto & [name, path] : paths)
        estimate[name] = load_bound(model::inspect_gguf(path), 2048, 4, 512).total();
    // Room for any one load, not for a load beside another model: the estimates of these tiny models
    // are mostly the bound on attention scores, several times what a load measures.
    const std::uint64_t budget = std::max({estimate["baby"], estimate["stories"], estimate["q8"]}) + (1u << 20);
    release_free_memory();
    InProcess s(models.yaml(fmt::format("{{memory_budget: {}, min_resident_s: 0}}", budget)));
    const std::uint64_t rss_before = process_status_bytes("VmRSS");  // the gateway up, no model loaded
    PeakWatch watch{s.gateway->residency()};
    // The first round is every model's first load, made room for by its estimate alone.
    for (int round = 0; round < 4; ++round) {
        for (const std::string m : {"baby", "stories", "q8"}) {
            const auto res = s.complete(m);
            ASSERT_TRUE(res);
            EXPECT_EQ(res->status, 200) << res->body;
        }
    }
    watch.finish();
    EXPECT_LE(watch.resident, budget) << "resident bytes, sampled while models loaded and answered";
    EXPECT_LE(s.gateway->residency().peak_resident_bytes(), budget);
    std::uint64_t unloads = 0;
    for (const auto & st : s.gateway->residency().states()) {
        EXPECT_GT(st.bytes, 0u) << st.name << ": measured as it loaded";
        EXPECT_LE(st.bytes, estimate[st.name]) << st.name << ": measured above its estimate";
        unloads += st.unloads;
    }
    EXPECT_GE(unloads, 11u);  // every request but the first found the model before it in the way
    const auto stats = json::parse(s.client->Get("/stats")->body);
    EXPECT_EQ(stats["residency"]["memory_budget_bytes"], budget);
    EXPECT_EQ(stats["residency"]["models"].size(), 3u);
    const auto metrics = s.client->Get("/metrics")->body;
    EXPECT_NE(metrics.find("switchyard_model_load_seconds_count{model=\"q8\"}"), std::string::npos);
    EXPECT_NE(metrics.find("switchyard_model_state{model=\"baby\",state=\"ready\"}"), std::string::npos);
    // The process grew by no more than the budget while it served: what the models held, over
    // what the gateway held before any had loaded.
    EXPECT_LE(watch.rss - std::min(watch.rss, rss_before), budget)
        << "RSS before " << rss_before << ", peak " << watch.rss;
}

TEST(OnDemandServe, AFullLoadQueueAnswers503WithRetryAfter) {
    ThreeModels models;
    InProcess s(models.yaml("{load_queue: 0}"));
    const auto res = s.complete("stories");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    EXPECT_TRUE(res->has_header("Retry-After"));
    EXPECT_GE(std::stoi(res->get_header_value("Retry-After")), 1);
    const auto error = json::parse(res->body)["error"];
    EXPECT_EQ(error["type"], "overloaded_error");
    EXPECT_EQ(error["code"], "model_not_loaded");
    EXPECT_NE(error["message"].get<std::string>().find("server.load_queue"), std::string::npos);
}

TEST(OnDemandServe, AlwaysModelsLoadAtStartAndStay) {
    ThreeModels models;
    InProcess s(models.yaml("{min_resident_s: 0}", "always"));
    for (const auto & st : s.gateway->residency().states()) {
        EXPECT_EQ(st.state, Residence::ready) << st.name;
        EXPECT_FALSE(st.on_demand);
        EXPECT_EQ(st.loads, 1u);
    }
    for (const std::string m : {"baby", "stories", "q8", "baby"}) EXPECT_EQ(s.complete(m)->status, 200);
    for (const auto & st : s.gateway->residency().states()) EXPECT_EQ(st.unloads, 0u) << st.name;
}

TEST(OnDemandServe, PreferLoadedAnswersWithTheLoadedFallbackAndLoadsTheFirstChoice) {
    ThreeModels models;
    const std::string yaml = "models:\n  - {name: lazy, path: " + test::model_path("babyllama-0.9M-f32.gguf").string() +
        ", context: 256, parallel: 1, threads: 1, load: on_demand}\n  - {name: warm, path: " +
        test::model_path("stories260K-f32.gguf").string() +
        ", context: 256, parallel: 1, threads: 1}\nroutes:\n  - {name: r, model: lazy, fallback: [warm], "
        "prefer_loaded: true}\n";
    InProcess s(yaml);
    const auto res = s.complete("r");
    ASSERT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["model"], "warm");
    eventually([&] { return residence(s.gateway->residency(), "lazy") == Residence::ready; });
    EXPECT_EQ(json::parse(s.complete("r")->body)["model"], "lazy");
}

TEST(OnDemandServe, HotSwapsDuringOnDemandLoadsLoseNoRequest) {
    ThreeModels models;
    InProcess s(models.yaml("{memory_budget: 1GiB, min_resident_s: 0}"));
    std::atomic<bool> stop{false};
    std::atomic<int> answered{0}, failed{0};
    std::vector<std::thread> clients;
    for (const std::string m : {"baby", "stories", "q8"}) {
        clients.emplace_back([&, m] {
            httplib::Client c("127.0.0.1", s.port);
            c.set_read_timeout(seconds(120));
            const json body = {{"model", m}, {"prompt", "Once"}, {"max_tokens", 4}};
            while (!stop) {
                const auto res = c.Post("/v1/completions", body.dump(), "application/json");
                (res && res->status == 200 ? answered : failed)++;
            }
        });
    }
    // Swap between portfolios in which each model is on demand with or without a ttl: a changed
    // entry is a new backend, loaded while the old one drains.
    for (int i = 0; i < 6; ++i) {
        const std::string ttl = i % 2 == 0 ? "1" : "0";
        std::string yaml = models.yaml("{memory_budget: 1GiB, min_resident_s: 0}");
        for (std::size_t at = 0; (at = yaml.find("load: on_demand", at)) != std::string::npos; at += 10)
            if (ttl != "0") yaml.insert(at + 15, ", ttl_s: " + ttl);
        s.gateway->swap(model::parse_portfolio(yaml, "swap.yaml", "/"));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    stop = true;
    for (auto & t : clients) t.join();
    EXPECT_GT(answered.load(), 0);
    EXPECT_EQ(failed.load(), 0);
}
