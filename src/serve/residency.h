// Residency: which in-process models are loaded, within a memory budget. On-demand models load
// when a request needs one (one load at a time, on a thread of its own, so that requests to loaded
// models never wait for it), idle ones unload least recently used first or after their ttl, busy
// ones drain before they unload, and the requests behind a load wait in a bounded queue.
#pragma once

#include "serve/backend.h"
#include "serve/metrics.h"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace switchyard::serve {

using ResidencyClock = std::chrono::steady_clock;

enum class Residence { unloaded, loading, ready, draining };
const char * residence_name(Residence r);

// One loaded model as the eviction policy sees it.
struct Resident {
    std::size_t id = 0;
    std::uint64_t bytes = 0;
    bool pinned = false;  // load: always: never unloaded for room
    bool busy = false;  // requests in flight or streams open
    bool draining = false;  // already on its way out (its bytes still count until it is gone)
    ResidencyClock::time_point loaded_at;
    ResidencyClock::time_point last_used;
};

// What to do so that `need` more bytes fit within `budget`: unload idle residents, least recently
// used first, that have been resident at least `min_resident`; where that is not enough, unload
// nothing and name the least recently used busy one (past min_resident, not draining) to drain.
struct EvictionPlan {
    bool fits = false;
    std::vector<std::size_t> unload;  // ids
    std::optional<std::size_t> drain;
};
EvictionPlan plan_eviction(std::vector<Resident> residents, std::uint64_t need, std::uint64_t budget,
                           ResidencyClock::time_point now, std::chrono::seconds min_resident);

// A loaded model and what it holds, measured as it loaded.
struct Loaded {
    std::shared_ptr<Backend> backend;
    std::uint64_t bytes = 0;
};
using Loader = std::function<Loaded()>;  // throws switchyard::Error

// One model's residency as /stats, /metrics and the dashboard show it.
struct ResidencyState {
    std::string name;
    Residence state = Residence::unloaded;
    bool on_demand = false;
    std::uint64_t bytes = 0;  // measured at its last load; 0 before the first
    std::uint64_t bound = 0;  // the room made before each of its loads (on demand)
    int in_use = 0;  // requests holding it
    int waiting = 0;  // requests waiting for it to load
    std::uint64_t loads = 0;
    std::uint64_t unloads = 0;
    std::uint64_t load_failures = 0;
    Histogram load_seconds;
};

// Why a request could not have its model: the client gets a 503 with Retry-After.
struct Refusal {
    std::string message;
    std::string code;  // load_queue_full, over_memory_budget, load_failed, load_timeout
    int retry_after_s = 1;
};

struct ResidentModel;  // the manager's record of one model

class Residency : public std::enable_shared_from_this<Residency> {
public:
    struct Options {
        std::uint64_t budget = 0;  // 0: no limit
        int queue = 16;  // requests waiting for loads at once
        std::chrono::seconds min_resident{10};
    };

    // Keeps a model loaded while held: a model with a lease out is never unloaded.
    class Lease {
    public:
        Lease(std::shared_ptr<Residency> owner, std::shared_ptr<ResidentModel> model, std::shared_ptr<Backend> backend);
        Lease(Lease &&) noexcept = default;
        Lease & operator=(Lease &&) = delete;
        ~Lease();
        const std::shared_ptr<Backend> & backend() const { return backend_; }

    private:
        std::shared_ptr<Residency> owner_;
        std::shared_ptr<ResidentModel> model_;
        std::shared_ptr<Backend> backend_;
    };

    static std::shared_ptr<Residency> create(Options options);
    ~Residency();
    Residency(const Residency &) = delete;
    Residency & operator=(const Residency &) = delete;

    // A model loaded when a request needs it (`estimate`: an upper bound of what a load of it takes,
    // the room made before each load; what the load measures counts once it is ready).
    std::shared_ptr<ResidentModel> add(std::string name, Loader loader, std::uint64_t estimate,
                                       std::chrono::seconds ttl);
    // A model loaded now and never unloaded for room; throws switchyard::Error when it cannot be
    // loaded or the budget cannot take it.
    std::shared_ptr<ResidentModel> add_pinned(std::string name, Loader loader);
    // The model leaves the portfolio: it unloads once its requests are done.
    void remove(const std::shared_ptr<ResidentModel> & model);

    // The model, loaded (waiting for its load, in the bounded queue, until `deadline`), or why
    // not; a client gone (asked while waiting) is a Refusal with code "client_gone".
    std::variant<Lease, Refusal> acquire(const std::shared_ptr<ResidentModel> & model,
                                         ResidencyClock::time_point deadline,
                                         const std::function<bool()> & client_gone);
    void preload(const std::shared_ptr<ResidentModel> & model);  // starts a load nobody waits for
    std::shared_ptr<Backend> loaded(const std::shared_ptr<ResidentModel> & model) const;  // null unless ready

    std::vector<ResidencyState> states() const;
    std::uint64_t budget() const { return options_.budget; }
    std::uint64_t resident_bytes() const;  // of the loaded and draining models, and the room held for a load
    std::uint64_t peak_resident_bytes() const;

private:
    explicit Residency(Options options);
    void release(ResidentModel & model);
    void loader_loop();
    // One pass of the loader thread under `lock`: returns the backends to free outside it.
    std::vector<std::shared_ptr<Backend>> expire(ResidencyClock::time_point now);
    bool load_next(std::unique_lock<std::mutex> & lock);
    Loaded run_loader(ResidentModel & model, std::unique_lock<std::mutex> & lock);
    bool settle(ResidentModel & model, std::vector<std::shared_ptr<Backend>> & freed);
    std::vector<Resident> residents() const;
    std::uint64_t pinned_bytes() const;
    std::uint64_t held_bytes() const;  // resident_bytes() under the lock
    void unload(ResidentModel & model, std::vector<std::shared_ptr<Backend>> & freed);
    void account();  // after resident bytes change
    int retry_after_s() const;

    Options options_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;  // wakes the loader and the waiters
    std::mutex load_mutex_;  // one load at a time (the loader thread's and add_pinned's)
    std::vector<std::shared_ptr<ResidentModel>> models_;
    std::deque<std::shared_ptr<ResidentModel>> wanted_;  // to load, in the order first asked
    int waiting_ = 0;
    std::uint64_t peak_bytes_ = 0;
    std::size_t next_id_ = 0;
    bool stopping_ = false;
    std::thread loader_;
};

// /stats' "residency": the budget, bytes resident and their peak, and each model's state.
nlohmann::json residency_json(const Residency & residency);
// The same as Prometheus families (switchyard_model_state, _resident_bytes, _loads_total, ...).
std::string residency_prometheus(const Residency & residency);

}  // namespace switchyard::serve
