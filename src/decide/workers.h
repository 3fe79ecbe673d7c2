// Plan workers: candidates' task suites evaluated on llama.cpp rpc-server workers, one candidate
// per worker at a time, by `switchyard eval --rpc` child processes writing into the plan's
// results store. The planner's search is unchanged: it asks for a candidate's results when it
// needs them, and idle workers measure ahead the candidates it is likely to ask for next.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace switchyard::decide {

// One candidate's suites of one class of tasks.
struct WorkerJob {
    std::string candidate;  // for the log: "NAME on SUITES"
    std::filesystem::path model;
    std::vector<std::string> suites;  // suite specs, as `eval --tasks` reads them
};

struct PlanWorkersOptions {
    std::filesystem::path executable;  // switchyard itself
    std::filesystem::path results;  // the plan's results store
    std::filesystem::path log_dir;  // one log per worker: the children's output
    bool normalize = false;
    int health_interval_ms = 1000;  // how often a worker that went away is probed again
    int attempts = 3;  // tries of one job before it is left to the planner
    std::function<void(const std::string & line)> log;
};

// What each worker did, for the summary.
struct WorkerStats {
    std::string endpoint;
    std::size_t jobs = 0;  // jobs finished here
    std::size_t lost = 0;  // jobs this worker lost (it went away mid-job); retried elsewhere
    double busy_seconds = 0;
    bool up = true;
};

class PlanWorkers {
public:
    // Throws switchyard::Error for an endpoint that is not rpc://HOST:PORT or not reachable, or an
    // engine built without the RPC backend.
    PlanWorkers(const std::vector<std::string> & endpoints, PlanWorkersOptions options);
    ~PlanWorkers();  // stops: jobs measured ahead and still running are abandoned (their results resume later)
    PlanWorkers(const PlanWorkers &) = delete;
    PlanWorkers & operator=(const PlanWorkers &) = delete;

    // Queues a job that may be needed, behind every job the planner is waiting for.
    void prefetch(const WorkerJob & job);
    // Runs the job ahead of every prefetched one (or waits for it where it is running already).
    // True when its results are in the store; false when no worker could run it (all gone, or it
    // failed `attempts` times): the caller then runs it itself.
    bool run(const WorkerJob & job);
    // Whether a worker measured the model's suite in this run; the job then counts as used (a job
    // measured ahead is asked for this way once its results are in the store).
    bool claim(const std::filesystem::path & model, const std::string & suite);
    // Jobs run ahead that the planner never asked for.
    std::size_t unused_prefetches() const;
    std::vector<WorkerStats> stats() const;

private:
    enum class State { queued, running, done, failed };
    struct Entry {
        WorkerJob job;
        State state = State::queued;
        bool requested = false;
        std::size_t request_order = 0;
        int attempts = 0;
    };
    struct Worker {
        WorkerStats stats;
        pid_t child = 0;
    };

    void serve(std::size_t worker);
    Entry * next_job();
    Entry * find(const WorkerJob & job);
    bool any_up() const;
    int run_child(std::size_t worker, const WorkerJob & job);

    PlanWorkersOptions options_;
    std::vector<std::string> endpoints_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::unique_ptr<Entry>> entries_;  // in queue order: requested first, then prefetched
    std::vector<Worker> workers_;
    std::vector<std::thread> threads_;
    std::size_t requests_ = 0;
    bool stopping_ = false;
};

}  // namespace switchyard::decide
