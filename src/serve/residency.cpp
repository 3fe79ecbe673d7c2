#include "serve/residency.h"

#include "support/error.h"
#include "support/process_memory.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace switchyard::serve {

using Clock = ResidencyClock;

struct ResidentModel {
    std::size_t id = 0;
    std::string name;
    Loader loader;
    bool pinned = false;
    std::chrono::seconds ttl{0};
    std::uint64_t estimate = 0;  // an upper bound of a load's cost, from the file's metadata
    std::uint64_t reserved = 0;  // the room held for it while it loads
    Residence state = Residence::unloaded;
    std::shared_ptr<Backend> backend;  // set while ready or draining
    std::uint64_t bytes = 0;  // measured at the last load
    int in_use = 0;
    int waiting = 0;
    bool wanted = false;  // in the loader's queue
    bool removed = false;
    Clock::time_point loaded_at;
    Clock::time_point last_used;
    std::uint64_t loads = 0;
    std::uint64_t unloads = 0;
    std::uint64_t failures = 0;
    Refusal last_failure;
    Histogram load_seconds;
};

const char * residence_name(Residence r) {
    switch (r) {
        case Residence::unloaded: return "unloaded";
        case Residence::loading: return "loading";
        case Residence::ready: return "ready";
        case Residence::draining: return "draining";
    }
    return "unloaded";
}

EvictionPlan plan_eviction(std::vector<Resident> residents, std::uint64_t need, std::uint64_t budget,
                           Clock::time_point now, std::chrono::seconds min_resident) {
    EvictionPlan plan;
    std::uint64_t used = 0;
    for (const auto & r : residents) used += r.bytes;
    if (budget == 0 || used + need <= budget) {
        plan.fits = true;
        return plan;
    }
    std::stable_sort(residents.begin(), residents.end(),
                     [](const Resident & a, const Resident & b) { return a.last_used < b.last_used; });
    // Young models stay, or two that do not fit together would unload each other on every request.
    const auto evictable = [&](const Resident & r) {
        return !r.pinned && !r.draining && now - r.loaded_at >= min_resident;
    };
    for (const auto & r : residents) {
        if (!evictable(r) || r.busy) continue;
        plan.unload.push_back(r.id);
        used -= r.bytes;
        if (used + need <= budget) {
            plan.fits = true;
            return plan;
        }
    }
    // Unloading idle models that still leave too little would only cost their next request a load.
    plan.unload.clear();
    for (const auto & r : residents) {
        if (evictable(r) && r.busy) {
            plan.drain = r.id;
            break;
        }
    }
    return plan;
}

Residency::Lease::Lease(std::shared_ptr<Residency> owner, std::shared_ptr<ResidentModel> model,
                        std::shared_ptr<Backend> backend)
    : owner_(std::move(owner)), model_(std::move(model)), backend_(std::move(backend)) {}

Residency::Lease::~Lease() {
    // Let go of the backend first: once released, the loader may unload it, and its last owner
    // must be the loader, not this lease on the model's own decode thread (which cannot join itself).
    backend_.reset();
    if (owner_) owner_->release(*model_);
}

std::shared_ptr<Residency> Residency::create(Options options) {
    std::shared_ptr<Residency> r(new Residency(options));
    r->loader_ = std::thread([raw = r.get()] { raw->loader_loop(); });
    return r;
}

Residency::Residency(Options options) : options_(options) {}

Residency::~Residency() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    if (loader_.joinable()) loader_.join();
}

std::shared_ptr<ResidentModel> Residency::add(std::string name, Loader loader, std::uint64_t estimate,
                                              std::chrono::seconds ttl) {
    auto m = std::make_shared<ResidentModel>();
    m->name = std::move(name);
    m->loader = std::move(loader);
    m->estimate = estimate;
    m->ttl = ttl;
    const std::lock_guard lock(mutex_);
    m->id = next_id_++;
    models_.push_back(m);
    return m;
}

std::shared_ptr<ResidentModel> Residency::add_pinned(std::string name, Loader loader) {
    auto m = std::make_shared<ResidentModel>();
    m->name = std::move(name);
    m->pinned = true;
    const std::lock_guard load_lock(load_mutex_);
    const auto started = Clock::now();
    Loaded loaded = loader();
    std::vector<std::shared_ptr<Backend>> freed;
    {
        const std::lock_guard lock(mutex_);
        if (options_.budget > 0 && pinned_bytes() + loaded.bytes > options_.budget) {
            throw Error(
                "{} takes {} bytes as loaded; with the other 'load: always' models that is more than "
                "server.memory_budget ({} bytes)",
                m->name, loaded.bytes, options_.budget);
        }
        // Always-loaded models come first: idle on-demand ones make room at once, busy ones drain.
        const auto plan = plan_eviction(residents(), loaded.bytes, options_.budget, Clock::now(), {});
        for (const auto & r : models_) {
            if (r->pinned || r->state != Residence::ready) continue;
            if (std::find(plan.unload.begin(), plan.unload.end(), r->id) != plan.unload.end())
                unload(*r, freed);
            else if (!plan.fits && r->in_use > 0)
                r->state = Residence::draining;
        }
        m->id = next_id_++;
        m->state = Residence::ready;
        m->backend = std::move(loaded.backend);
        m->bytes = loaded.bytes;
        m->loads = 1;
        m->load_seconds.observe(std::chrono::duration<double>(Clock::now() - started).count());
        m->loaded_at = m->last_used = Clock::now();
        models_.push_back(m);
        account();
    }
    changed_.notify_all();
    return m;
}

void Residency::remove(const std::shared_ptr<ResidentModel> & model) {
    {
        const std::lock_guard lock(mutex_);
        model->removed = true;
    }
    changed_.notify_all();
}

void Residency::release(ResidentModel & model) {
    {
        const std::lock_guard lock(mutex_);
        --model.in_use;
        model.last_used = Clock::now();
    }
    changed_.notify_all();
}

std::variant<Residency::Lease, Refusal> Residency::acquire(const std::shared_ptr<ResidentModel> & model,
                                                           Clock::time_point deadline,
                                                           const std::function<bool()> & client_gone) {
    std::unique_lock lock(mutex_);
    bool queued = false;
    const std::uint64_t failures_seen = model->failures;
    const auto leave = [&] {
        if (queued) {
            --waiting_;
            --model->waiting;
        }
    };
    while (true) {
        if (model->state == Residence::ready && !model->removed) {
            leave();
            ++model->in_use;
            model->last_used = Clock::now();
            return Lease(shared_from_this(), model, model->backend);
        }
        if (model->removed) {
            leave();
            return Refusal{fmt::format("{} has left the portfolio", model->name), "model_removed", 1};
        }
        if (model->failures > failures_seen) {
            leave();
            return model->last_failure;
        }
        if (!queued) {
            if (waiting_ >= options_.queue) {
                return Refusal{
                    fmt::format("{} is not loaded and {} requests already wait for loads (server.load_queue)",
                                model->name, waiting_),
                    "load_queue_full", retry_after_s()};
            }
            queued = true;
            ++waiting_;
            ++model->waiting;
            if (!model->wanted) {
                model->wanted = true;
                wanted_.push_back(model);
            }
            changed_.notify_all();
        }
        const auto now = Clock::now();
        if (now >= deadline) {
            leave();
            return Refusal{fmt::format("{} did not load in time (request_timeout_ms)", model->name), "load_timeout",
                           retry_after_s()};
        }
        if (client_gone && client_gone()) {
            leave();
            return Refusal{"the client hung up while its model loaded", "client_gone", 0};
        }
        // Woken by every change; the timeout only bounds how late a hang-up is noticed.
        changed_.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(100)));
    }
}

void Residency::preload(const std::shared_ptr<ResidentModel> & model) {
    {
        const std::lock_guard lock(mutex_);
        if (model->state != Residence::unloaded || model->wanted || model->removed) return;
        model->wanted = true;
        wanted_.push_back(model);
    }
    changed_.notify_all();
}

std::shared_ptr<Backend> Residency::loaded(const std::shared_ptr<ResidentModel> & model) const {
    const std::lock_guard lock(mutex_);
    return model->state == Residence::ready ? model->backend : nullptr;
}

void Residency::loader_loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        auto freed = expire(Clock::now());
        if (!freed.empty()) {
            lock.unlock();
            freed.clear();  // joins the model's decode thread: outside the lock
            release_free_memory();
            lock.lock();
            continue;
        }
        if (load_next(lock)) continue;
        // ttl and min_resident pass without anyone calling: look again a few times a second.
        changed_.wait_for(lock, std::chrono::milliseconds(250));
    }
}

std::vector<std::shared_ptr<Backend>> Residency::expire(Clock::time_point now) {
    std::vector<std::shared_ptr<Backend>> freed;
    for (const auto & m : models_) {
        const bool loaded = m->state == Residence::ready || m->state == Residence::draining;
        if (!loaded) continue;
        if (m->removed && m->state == Residence::ready) m->state = Residence::draining;
        const bool idle = m->in_use == 0;
        const bool expired = !m->pinned && m->ttl.count() > 0 && now - m->last_used >= m->ttl;
        if (idle && (m->state == Residence::draining || expired)) unload(*m, freed);
    }
    std::erase_if(models_, [](const auto & m) { return m->removed && m->state == Residence::unloaded; });
    return freed;
}

bool Residency::load_next(std::unique_lock<std::mutex> & lock) {
    std::erase_if(wanted_, [](const auto & m) {
        const bool stale = m->removed || m->state == Residence::ready;
        if (stale) m->wanted = false;
        return stale;
    });
    // A draining model waits to be gone before it loads again; the others need not wait for it.
    const auto it =
        std::find_if(wanted_.begin(), wanted_.end(), [](const auto & m) { return m->state == Residence::unloaded; });
    if (it == wanted_.end()) return false;
    const auto m = *it;
    // Room for the most the load can take (the estimate is an upper bound; a measure above it wins),
    // so that the budget holds while it loads, not only once it has.
    const std::uint64_t need = std::max(m->bytes, m->estimate);
    const auto fail = [&](Refusal why) {
        // After a load it is no longer wanted_ (taken out before loading): erasing end() would be undefined.
        if (const auto at = std::find(wanted_.begin(), wanted_.end(), m); at != wanted_.end()) wanted_.erase(at);
        m->wanted = false;
        ++m->failures;
        m->last_failure = std::move(why);
        spdlog::warn("{} not loaded: {}", m->name, m->last_failure.message);
        changed_.notify_all();
        return true;
    };
    if (options_.budget > 0 && need + pinned_bytes() > options_.budget) {
        return fail({fmt::format("{} needs {} bytes, more than server.memory_budget ({} bytes) leaves beside the "
                                 "'load: always' models",
                                 m->name, need, options_.budget),
                     "over_memory_budget", static_cast<int>(std::max<std::int64_t>(1, options_.min_resident.count()))});
    }
    const auto plan = plan_eviction(residents(), need, options_.budget, Clock::now(), options_.min_resident);
    if (!plan.fits) {
        for (const auto & r : models_)
            if (plan.drain && r->id == *plan.drain) r->state = Residence::draining;
        return false;
    }
    std::vector<std::shared_ptr<Backend>> freed;
    for (const auto & r : models_)
        if (std::find(plan.unload.begin(), plan.unload.end(), r->id) != plan.unload.end()) unload(*r, freed);
    wanted_.erase(it);
    m->wanted = false;
    m->state = Residence::loading;
    m->reserved = need;
    account();
    lock.unlock();
    freed.clear();
    release_free_memory();
    lock.lock();
    Loaded loaded = run_loader(*m, lock);
    if (!loaded.backend) {
        m->state = Residence::unloaded;
        return fail(m->last_failure);
    }
    m->backend = std::move(loaded.backend);
    m->bytes = loaded.bytes;
    m->state = Residence::ready;
    m->loaded_at = m->last_used = Clock::now();
    if (!settle(*m, freed)) {
        lock.unlock();
        freed.clear();
        release_free_memory();
        lock.lock();
        return fail({fmt::format("{} measured {} bytes as it loaded; the others in use leave less of "
                                 "server.memory_budget ({} bytes)",
                                 m->name, m->bytes, options_.budget),
                     "over_memory_budget", retry_after_s()});
    }
    account();
    changed_.notify_all();
    if (!freed.empty()) {
        lock.unlock();
        freed.clear();
        release_free_memory();
        lock.lock();
    }
    return true;
}

// A load that measured more than the room it was given: idle models make the rest of the room now,
// or the model itself unloads (false).
bool Residency::settle(ResidentModel & m, std::vector<std::shared_ptr<Backend>> & freed) {
    if (options_.budget == 0 || held_bytes() <= options_.budget) return true;
    auto others = residents();
    std::erase_if(others, [&](const Resident & r) { return r.id == m.id; });
    const auto more = plan_eviction(others, m.bytes, options_.budget, Clock::now(), options_.min_resident);
    for (const auto & r : models_) {
        const bool chosen = std::find(more.unload.begin(), more.unload.end(), r->id) != more.unload.end();
        if ((more.fits && chosen) || (!more.fits && r.get() == &m)) unload(*r, freed);
    }
    return more.fits;
}

Loaded Residency::run_loader(ResidentModel & m, std::unique_lock<std::mutex> & lock) {
    const Loader loader = m.loader;
    const std::string name = m.name;
    lock.unlock();
    Loaded loaded;
    std::string error;
    const auto started = Clock::now();
    {
        const std::lock_guard load_lock(load_mutex_);
        try {
            loaded = loader();
        } catch (const std::exception & e) {
            error = e.what();
        }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    lock.lock();
    if (!error.empty() || !loaded.backend) {
        m.last_failure = {fmt::format("loading {} failed: {}", name, error), "load_failed", retry_after_s()};
        return {};
    }
    ++m.loads;
    m.load_seconds.observe(seconds);
    spdlog::info("loaded {} in {:.2f} s: {} bytes resident", name, seconds, loaded.bytes);
    return loaded;
}

std::vector<Resident> Residency::residents() const {
    std::vector<Resident> out;
    for (const auto & m : models_) {
        if (m->state != Residence::ready && m->state != Residence::draining) continue;
        out.push_back({.id = m->id,
                       .bytes = m->bytes,
                       .pinned = m->pinned,
                       .busy = m->in_use > 0,
                       .draining = m->state == Residence::draining,
                       .loaded_at = m->loaded_at,
                       .last_used = m->last_used});
    }
    return out;
}

std::uint64_t Residency::pinned_bytes() const {
    std::uint64_t sum = 0;
    for (const auto & m : models_)
        if (m->pinned && !m->removed) sum += m->bytes;
    return sum;
}

void Residency::unload(ResidentModel & model, std::vector<std::shared_ptr<Backend>> & freed) {
    freed.push_back(std::move(model.backend));
    model.backend = nullptr;
    model.state = Residence::unloaded;
    ++model.unloads;
    spdlog::info("unloaded {} ({} bytes)", model.name, model.bytes);
}

void Residency::account() { peak_bytes_ = std::max(peak_bytes_, held_bytes()); }

int Residency::retry_after_s() const {
    double sum = 0;
    std::uint64_t count = 0;
    for (const auto & m : models_) {
        sum += m->load_seconds.sum;
        count += m->load_seconds.count;
    }
    // About one load from now: the queue moves by loads.
    return count == 0 ? 1 : std::max(1, static_cast<int>(std::ceil(sum / static_cast<double>(count))));
}

std::uint64_t Residency::resident_bytes() const {
    const std::lock_guard lock(mutex_);
    return held_bytes();
}

std::uint64_t Residency::held_bytes() const {
    std::uint64_t sum = 0;
    for (const auto & m : models_) {
        if (m->state == Residence::ready || m->state == Residence::draining) sum += m->bytes;
        if (m->state == Residence::loading) sum += m->reserved;
    }
    return sum;
}

std::uint64_t Residency::peak_resident_bytes() const {
    const std::lock_guard lock(mutex_);
    return peak_bytes_;
}

std::vector<ResidencyState> Residency::states() const {
    const std::lock_guard lock(mutex_);
    std::vector<ResidencyState> out;
    for (const auto & m : models_) {
        if (m->removed && m->state == Residence::unloaded) continue;
        out.push_back({.name = m->name,
                       .state = m->state,
                       .on_demand = !m->pinned,
                       .bytes = m->bytes,
                       .bound = m->estimate,
                       .in_use = m->in_use,
                       .waiting = m->waiting,
                       .loads = m->loads,
                       .unloads = m->unloads,
                       .load_failures = m->failures,
                       .load_seconds = m->load_seconds});
    }
    return out;
}

nlohmann::json residency_json(const Residency & residency) {
    nlohmann::json models = nlohmann::json::object();
    for (const auto & m : residency.states()) {
        const Histogram & h = m.load_seconds;
        models[m.name] = {
            {"state", residence_name(m.state)},
            {"load", m.on_demand ? "on_demand" : "always"},
            {"resident_bytes", m.state == Residence::ready || m.state == Residence::draining ? m.bytes : 0},
            {"measured_bytes", m.bytes},
            {"bound_bytes", m.bound},
            {"in_use", m.in_use},
            {"waiting", m.waiting},
            {"loads", m.loads},
            {"unloads", m.unloads},
            {"load_failures", m.load_failures},
            {"load_seconds_mean", h.count > 0 ? h.sum / static_cast<double>(h.count) : 0.0}};
    }
    return {{"memory_budget_bytes", residency.budget()},
            {"resident_bytes", residency.resident_bytes()},
            {"peak_resident_bytes", residency.peak_resident_bytes()},
            {"models", std::move(models)}};
}

std::string residency_prometheus(const Residency & residency) {
    const auto states = residency.states();
    std::string out;
    prometheus_family(out, "switchyard_memory_budget_bytes", "gauge", "Memory in-process models may hold (0: none).");
    out += fmt::format("switchyard_memory_budget_bytes {}\n", residency.budget());
    prometheus_family(out, "switchyard_model_state", "gauge",
                      "1 for the state an in-process model is in (unloaded, loading, ready, draining).");
    for (const auto & m : states) {
        for (const auto r : {Residence::unloaded, Residence::loading, Residence::ready, Residence::draining})
            out += fmt::format("switchyard_model_state{{model=\"{}\",state=\"{}\"}} {}\n", prometheus_label(m.name),
                               residence_name(r), m.state == r ? 1 : 0);
    }
    prometheus_family(out, "switchyard_model_resident_bytes", "gauge",
                      "Memory a loaded model holds, measured as it loaded (0 while unloaded).");
    for (const auto & m : states) {
        const bool held = m.state == Residence::ready || m.state == Residence::draining;
        out += fmt::format("switchyard_model_resident_bytes{{model=\"{}\"}} {}\n", prometheus_label(m.name),
                           held ? m.bytes : 0);
    }
    prometheus_family(out, "switchyard_model_loads_total", "counter", "Times a model was loaded.");
    for (const auto & m : states)
        out += fmt::format("switchyard_model_loads_total{{model=\"{}\"}} {}\n", prometheus_label(m.name), m.loads);
    prometheus_family(out, "switchyard_model_unloads_total", "counter", "Times a model was unloaded.");
    for (const auto & m : states)
        out += fmt::format("switchyard_model_unloads_total{{model=\"{}\"}} {}\n", prometheus_label(m.name), m.unloads);
    prometheus_family(out, "switchyard_model_load_seconds", "histogram", "Time to load a model.");
    for (const auto & m : states)
        prometheus_histogram(out, "switchyard_model_load_seconds",
                             fmt::format("model=\"{}\"", prometheus_label(m.name)), m.load_seconds);
    return out;
}

}  // namespace switchyard::serve
