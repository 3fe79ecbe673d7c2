#include "engine/continuous_batcher.h"

#include "engine/llama_slots.h"
#include "support/error.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace switchyard::engine {

class ContinuousBatcher::Ticket {
public:
    std::atomic<bool> cancelled{false};
};

struct ContinuousBatcher::State {
    // A request waiting for a slot.
    struct Queued {
        std::shared_ptr<Ticket> ticket;
        GenerateRequest request;
        std::vector<Token> prompt;
        std::string error;  // set at submit: it never takes a slot, only reports
        Callbacks callbacks;
    };
    // A score() call waiting for the decode thread.
    struct Scoring {
        std::span<const ScoreRequest> requests;
        int top_k;
        std::promise<std::vector<ScoreResult>> done;
    };

    LlamaEngine engine;
    LlamaEngine::Slots slots{engine};
    const std::size_t max_queue;

    mutable std::mutex mutex;  // guards what follows
    std::condition_variable wake;
    std::deque<Queued> queue;
    std::deque<Scoring *> scoring;
    Stats stats;
    bool stopping = false;

    std::thread thread;

    explicit State(const Options & options)
        : engine(options.engine), max_queue(static_cast<std::size_t>(std::max(0, options.max_queue))) {
        stats.slots = slots.size();
        thread = std::thread([this] { run(); });
    }

    void run();
    void start(Queued queued);
    void shut_down();
};

void ContinuousBatcher::State::run() {
    std::unique_lock lock(mutex);
    while (true) {
        wake.wait(lock, [&] { return stopping || stats.active > 0 || !queue.empty() || !scoring.empty(); });
        if (stopping) break;

        // Scoring goes first; while it waits for a slot, no generation request takes one.
        Scoring * score = nullptr;
        if (!scoring.empty() && slots.free() > 0) {
            score = scoring.front();
            scoring.pop_front();
        }
        int room = scoring.empty() ? slots.free() : 0;
        std::vector<Queued> leaving;
        std::vector<Queued> starting;
        for (auto it = queue.begin(); it != queue.end();) {
            const bool settled = !it->error.empty() || it->ticket->cancelled.load();
            if (!settled && room == 0) {
                ++it;
                continue;
            }
            if (settled) {
                leaving.push_back(std::move(*it));
            } else {
                starting.push_back(std::move(*it));
                --room;
                ++stats.active;
            }
            it = queue.erase(it);
        }
        stats.queued = static_cast<int>(queue.size());
        lock.unlock();

        for (auto & q : leaving) {
            GenerateResult result;
            result.prompt_tokens = static_cast<int>(q.prompt.size());
            result.finish = FinishReason::cancelled;
            if (q.callbacks.on_done) q.callbacks.on_done(result, q.error);
        }
        if (score != nullptr) {
            try {
                score->done.set_value(slots.score(score->requests, score->top_k));
            } catch (...) {
                score->done.set_exception(std::current_exception());
            }
        }
        for (auto & q : starting) start(std::move(q));
        if (slots.active() > 0) {
            try {
                slots.step();
            } catch (const std::exception & e) {
                slots.end_all(FinishReason::cancelled, e.what());
            }
        }

        lock.lock();
        stats.prompt_tokens = slots.prompt_tokens_decoded();
        stats.prompt_tokens_reused = slots.prompt_tokens_reused();
        stats.generated_tokens = slots.tokens_generated();
        stats.draft = engine.draft_stats();
    }
    lock.unlock();
    shut_down();
}

void ContinuousBatcher::State::start(Queued q) {
    LlamaEngine::Slots::Job job{std::move(q.request), std::move(q.prompt), std::move(q.callbacks.on_piece), {}, {}};
    job.cancelled = std::shared_ptr<const std::atomic<bool>>(q.ticket, &q.ticket->cancelled);
    // The count drops before the caller hears of the end, so that stats() never shows a finished
    // request as active.
    job.on_done = [this, done = std::move(q.callbacks.on_done)](GenerateResult & result, const std::string & error) {
        {
            std::lock_guard guard(mutex);
            --stats.active;
        }
        if (done) done(result, error);
    };
    slots.admit(std::move(job));
}

void ContinuousBatcher::State::shut_down() {
    slots.end_all(FinishReason::cancelled, {});
    std::deque<Queued> left;
    std::deque<Scoring *> unscored;
    {
        std::lock_guard guard(mutex);
        left.swap(queue);
        unscored.swap(scoring);
        stats.queued = 0;
    }
    for (auto & q : left) {
        GenerateResult result;
        result.prompt_tokens = static_cast<int>(q.prompt.size());
        result.finish = FinishReason::cancelled;
        if (q.callbacks.on_done) q.callbacks.on_done(result, q.error);
    }
    for (auto * s : unscored)
        s->done.set_exception(std::make_exception_ptr(Error("score: the batcher is shutting down")));
}

ContinuousBatcher::ContinuousBatcher(const Options & options) : state_(std::make_unique<State>(options)) {}

ContinuousBatcher::~ContinuousBatcher() {
    {
        std::lock_guard guard(state_->mutex);
        state_->stopping = true;
    }
    state_->wake.notify_one();
    state_->thread.join();
}

const EngineModel & ContinuousBatcher::model() const { return state_->engine.model(); }
const std::string & ContinuousBatcher::chat_template() const { return state_->engine.chat_template(); }
const ChatTemplate * ContinuousBatcher::chat() const { return state_->engine.chat(); }
const std::string & ContinuousBatcher::chat_error() const { return state_->engine.chat_error(); }
void ContinuousBatcher::check_grammar(const Grammar & grammar) const { state_->engine.check_grammar(grammar); }
std::vector<Token> ContinuousBatcher::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    return state_->engine.tokenize(text, add_special, parse_special);
}
std::string ContinuousBatcher::detokenize(std::span<const Token> tokens, bool render_special) const {
    return state_->engine.detokenize(tokens, render_special);
}
std::string ContinuousBatcher::token_text(Token token) const { return state_->engine.token_text(token); }
std::vector<Token> ContinuousBatcher::prompt_tokens(const GenerateRequest & request) const {
    return state_->engine.prompt_tokens(request);
}

std::shared_ptr<ContinuousBatcher::Ticket> ContinuousBatcher::submit(GenerateRequest request, Callbacks callbacks) {
    State::Queued q{std::make_shared<Ticket>(), std::move(request), {}, {}, std::move(callbacks)};
    // Tokenized here, on the caller's thread, to keep the decode thread decoding.
    try {
        q.prompt = state_->slots.prompt_tokens(q.request);
    } catch (const Error & e) {
        q.error = e.what();
    }
    auto ticket = q.ticket;
    {
        std::lock_guard guard(state_->mutex);
        // Requests a free slot is about to take are not waiting.
        const auto free = static_cast<std::size_t>(state_->stats.slots - state_->stats.active);
        if (state_->queue.size() >= state_->max_queue + free) return nullptr;
        state_->queue.push_back(std::move(q));
        state_->stats.queued = static_cast<int>(state_->queue.size());
    }
    state_->wake.notify_one();
    return ticket;
}

void ContinuousBatcher::cancel(const std::shared_ptr<Ticket> & ticket) {
    if (!ticket) return;
    ticket->cancelled = true;
    // A queued request leaves without waiting for a slot.
    state_->wake.notify_one();
}

std::vector<ScoreResult> ContinuousBatcher::score(std::span<const ScoreRequest> requests, int top_k) {
    if (std::this_thread::get_id() == state_->thread.get_id()) {
        throw Error("score: cannot be called from a batcher callback (it runs on the decode thread score() waits for)");
    }
    State::Scoring job{requests, top_k, {}};
    auto result = job.done.get_future();
    {
        std::lock_guard guard(state_->mutex);
        if (state_->stopping) throw Error("score: the batcher is shutting down");
        state_->scoring.push_back(&job);
    }
    state_->wake.notify_one();
    return result.get();
}

ContinuousBatcher::Stats ContinuousBatcher::stats() const {
    std::lock_guard guard(state_->mutex);
    return state_->stats;
}

}  // namespace switchyard::engine
