#include "decide/workers.h"

#include "engine/rpc_devices.h"
#include "support/error.h"
#include "support/rpc_endpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>

extern char ** environ;

namespace switchyard::decide {

namespace {

// A file name for the endpoint's log: "host_port".
std::string log_name(const std::string & endpoint) {
    std::string out;
    for (const char ch : endpoint)
        out += std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ? ch : '_';
    return out + ".log";
}

}  // namespace

PlanWorkers::PlanWorkers(const std::vector<std::string> & endpoints, PlanWorkersOptions options)
    : options_(std::move(options)) {
    if (!engine::rpc_available())
        throw Error(
            "--workers: this engine was built without llama.cpp's RPC backend: rebuild with SWITCHYARD_CMAKE_ARGS=-DSWITCHYARD_RPC=ON");
    for (const auto & e : endpoints) {
        const auto endpoint = rpc_endpoint(e);
        if (std::find(endpoints_.begin(), endpoints_.end(), endpoint) != endpoints_.end())
            throw Error("--workers: {} is named twice", endpoint);
        if (!engine::rpc_reachable(endpoint))
            throw Error(
                "--workers: {} is not reachable: start llama.cpp's rpc-server there (rpc-server --host 0.0.0.0 --port PORT)",
                endpoint);
        endpoints_.push_back(endpoint);
    }
    std::filesystem::create_directories(options_.log_dir);
    workers_.resize(endpoints_.size());
    for (std::size_t i = 0; i < endpoints_.size(); ++i) workers_[i].stats.endpoint = endpoints_[i];
    for (std::size_t i = 0; i < endpoints_.size(); ++i) threads_.emplace_back([this, i] { serve(i); });
}

PlanWorkers::~PlanWorkers() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
        for (const auto & w : workers_)
            if (w.child > 0) kill(w.child, SIGTERM);
    }
    changed_.notify_all();
    for (auto & t : threads_) t.join();
}

bool PlanWorkers::any_up() const {
    return std::any_of(workers_.begin(), workers_.end(), [](const Worker & w) { return w.stats.up; });
}

PlanWorkers::Entry * PlanWorkers::find(const WorkerJob & job) {
    // A job that covers the one asked for (same model, every suite of it) will do: running it twice
    // side by side would only measure the same items twice.
    for (auto & e : entries_) {
        if (e->job.model != job.model || e->state == State::failed) continue;
        if (std::all_of(job.suites.begin(), job.suites.end(), [&](const std::string & s) {
                return std::find(e->job.suites.begin(), e->job.suites.end(), s) != e->job.suites.end();
            }))
            return e.get();
    }
    return nullptr;
}

PlanWorkers::Entry * PlanWorkers::next_job() {
    Entry * best = nullptr;
    for (auto & e : entries_) {
        if (e->state != State::queued) continue;
        if (e->requested && (best == nullptr || !best->requested || e->request_order < best->request_order))
            best = e.get();
        if (!e->requested && best == nullptr) best = e.get();
    }
    return best;
}

void PlanWorkers::prefetch(const WorkerJob & job) {
    if (job.suites.empty() || workers_.empty()) return;
    {
        const std::lock_guard lock(mutex_);
        if (find(job) != nullptr) return;
        entries_.push_back(std::make_unique<Entry>(Entry{.job = job}));
    }
    changed_.notify_all();
}

bool PlanWorkers::run(const WorkerJob & job) {
    if (job.suites.empty() || workers_.empty()) return false;
    std::unique_lock lock(mutex_);
    Entry * e = find(job);
    if (e == nullptr) {
        entries_.push_back(std::make_unique<Entry>(Entry{.job = job}));
        e = entries_.back().get();
    }
    if (!e->requested) {
        e->requested = true;
        e->request_order = ++requests_;
    }
    changed_.notify_all();
    changed_.wait(lock, [&] {
        return e->state == State::done || e->state == State::failed || (e->state == State::queued && !any_up());
    });
    if (e->state == State::queued) {
        // Every worker is gone: the planner measures this one itself, and no worker that comes
        // back may measure it beside it.
        e->state = State::failed;
        if (options_.log) options_.log(fmt::format("workers: none is up; {} is measured here", job.candidate));
    }
    return e->state == State::done;
}

bool PlanWorkers::claim(const std::filesystem::path & model, const std::string & suite) {
    const std::lock_guard lock(mutex_);
    for (auto & e : entries_) {
        if (e->state != State::done || e->job.model != model ||
            std::find(e->job.suites.begin(), e->job.suites.end(), suite) == e->job.suites.end())
            continue;
        e->requested = true;
        return true;
    }
    return false;
}

std::size_t PlanWorkers::unused_prefetches() const {
    const std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(
        entries_.begin(), entries_.end(), [](const auto & e) { return e->state == State::done && !e->requested; }));
}

std::vector<WorkerStats> PlanWorkers::stats() const {
    const std::lock_guard lock(mutex_);
    std::vector<WorkerStats> out;
    for (const auto & w : workers_) out.push_back(w.stats);
    return out;
}

int PlanWorkers::run_child(std::size_t worker, const WorkerJob & job) {
    std::vector<std::string> args = {options_.executable.string(), "eval", "-m", job.model.string()};
    for (const auto & s : job.suites) {
        args.push_back("--tasks");
        args.push_back(s);
    }
    args.insert(args.end(), {"--results", options_.results.string(), "--rpc", endpoints_[worker], "-t", "1", "--json"});
    if (options_.normalize) args.push_back("--normalize");
    std::vector<char *> argv;
    for (auto & a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const auto log = options_.log_dir / log_name(endpoints_[worker]);
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    if (spawned != 0) throw Error("workers: cannot start {}: {}", options_.executable.string(), std::strerror(spawned));
    {
        const std::lock_guard lock(mutex_);
        workers_[worker].child = pid;
        if (stopping_) kill(pid, SIGTERM);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    const std::lock_guard lock(mutex_);
    workers_[worker].child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void PlanWorkers::serve(std::size_t worker) {
    const auto & endpoint = endpoints_[worker];
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        auto & stats = workers_[worker].stats;
        if (!stats.up) {
            changed_.wait_for(lock, std::chrono::milliseconds(options_.health_interval_ms));
            if (stopping_) break;
            lock.unlock();
            const bool back = engine::rpc_reachable(endpoint);
            lock.lock();
            if (back) {
                stats.up = true;
                if (options_.log) options_.log(fmt::format("workers: {} is back", endpoint));
                changed_.notify_all();
            }
            continue;
        }
        Entry * e = next_job();
        if (e == nullptr) {
            changed_.wait(lock);
            continue;
        }
        e->state = State::running;
        ++e->attempts;
        const WorkerJob job = e->job;
        if (options_.log)
            options_.log(
                fmt::format("workers: {} measures {}{}", endpoint, job.candidate, e->requested ? "" : " (ahead)"));
        lock.unlock();
        const auto start = std::chrono::steady_clock::now();
        int rc = 0;
        std::string failure;
        try {
            rc = run_child(worker, job);
        } catch (const Error & error) {
            rc = -1;
            failure = error.what();
        }
        const bool reachable = rc == 0 || engine::rpc_reachable(endpoint);
        lock.lock();
        stats.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (stopping_) {
            e->state = State::queued;
            break;
        }
        if (rc == 0) {
            e->state = State::done;
            ++stats.jobs;
        } else if (!reachable) {
            // The worker went away mid-job: what it measured is in the store, and the job resumes
            // from there on another worker (or here, when it comes back).
            stats.up = false;
            ++stats.lost;
            --e->attempts;
            e->state = State::queued;
            if (options_.log)
                options_.log(fmt::format("workers: {} went away while measuring {}; it is measured elsewhere", endpoint,
                                         job.candidate));
        } else if (e->attempts >= options_.attempts) {
            e->state = State::failed;
            if (options_.log)
                options_.log(fmt::format("workers: {} failed on {} {} times (exit {}{}; see {}); it is measured here",
                                         endpoint, job.candidate, e->attempts, rc,
                                         failure.empty() ? "" : ": " + failure,
                                         (options_.log_dir / log_name(endpoint)).string()));
        } else {
            e->state = State::queued;
        }
        changed_.notify_all();
    }
}

}  // namespace switchyard::decide
