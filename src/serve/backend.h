// Backend: one model the gateway can send a request to, in process or on a remote server, with a
// pull-based stream of its answer so the gateway can fall back before the client sees a byte.
#pragma once

#include "engine/drafter.h"
#include "engine/engine.h"
#include "serve/api.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <optional>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace switchyard::serve {

// Why a backend could not answer; decides between falling back and telling the client.
enum class Failure {
    overloaded,  // queue full: try the next model
    timeout,  // no answer within request_timeout_ms
    failed,  // the backend broke (connection refused, 5xx, bad answer)
    rejected,  // the request itself is wrong for this model (prompt too long, unencodable text): 400
    client_gone  // the client hung up before the answer: nobody to answer, nothing to fall back for
};

struct Generation {
    std::string text;
    int prompt_tokens = 0;
    int completion_tokens = 0;
    engine::FinishReason finish = engine::FinishReason::length;
    bool has_logprobs = false;
    std::vector<engine::TokenLogprob> logprobs;  // one per generated token when has_logprobs
    std::vector<engine::Token> tokens;  // the generated token ids, where known (in process)
    nlohmann::json upstream;  // a remote model's whole answer as it sent it (null in process)
    // In process, when the request offered tools: the calls the answer made, read out of it
    // (`text` is then what the answer said besides them).
    std::vector<engine::ToolCall> tool_calls;
};

// One request's answer as it arrives: pieces of text, then exactly one `done` or `failed`.
// The producer (a decode thread or an HTTP client thread) pushes; the gateway pulls.
class Stream {
public:
    struct Event {
        enum class Kind { piece, done, failed } kind;
        std::string text;  // piece
        Generation result;  // done
        Failure failure = Failure::failed;
        std::string message;  // failed
        nlohmann::json upstream;  // piece: a remote model's chunk as it sent it (null in process)
        int status = 0;  // failed as rejected: the status the client gets (0: 400); overloaded: 503 or 0 (429)
        int retry_after_s = 0;  // failed with status 503: when to try again
    };

    // Waits for the next event; a `failed` timeout event when none comes by `deadline`.
    Event next(std::chrono::steady_clock::time_point deadline);

    void push_piece(std::string text, nlohmann::json upstream = nullptr);
    void finish(Generation result);
    void fail(Failure failure, std::string message, int status = 0, int retry_after_s = 0);
    // Returns an event taken with next() to the front, for the consumer the stream is handed on
    // to (a replica set looks at the first event before deciding to keep a replica's stream).
    void put_back(Event e);
    // Runs once when the answer ends (`done` true, or false for a failure), on the producer's
    // thread, or at once when it has ended already.
    void set_on_close(std::function<void(bool done)> on_close);

    // The consumer stopped listening (client gone, fallback, timeout): the producer stops at
    // its next chance and `on_cancel` runs once.
    void cancel();
    bool cancelled() const;
    void set_on_cancel(std::function<void()> on_cancel);

private:
    mutable std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Event> events_;
    bool closed_ = false;  // done or failed was pushed
    bool done_ = false;  // ... and it was done
    bool cancelled_ = false;
    std::function<void()> on_cancel_;
    std::function<void(bool)> on_close_;
    void closed();
};

// Waits for the whole answer: its Generation, or the failed event when the stream fails, the
// deadline passes, or `client_gone` (polled between events) says the client left.
std::variant<Generation, Stream::Event> collect(Stream & stream, std::chrono::steady_clock::time_point deadline,
                                                std::chrono::steady_clock::time_point * first_at,
                                                const std::function<bool()> & client_gone = {});

// Cancels the stream when the consumer lets go of it early.
struct StreamGuard {
    std::shared_ptr<Stream> stream;
    StreamGuard(std::shared_ptr<Stream> s) : stream(std::move(s)) {}
    // Moved, not copied: a copy's end would cancel the stream the other still holds.
    StreamGuard(StreamGuard && other) noexcept : stream(std::move(other.stream)) {}
    StreamGuard(const StreamGuard &) = delete;
    StreamGuard & operator=(const StreamGuard &) = delete;
    ~StreamGuard() {
        if (stream) stream->cancel();
    }
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual bool in_process() const = 0;

    // Starts generating; the answer arrives on the returned stream. Never throws for backend
    // trouble: that arrives as a `failed` event, so fallback has one path. A backend that waits
    // for the answer before returning asks `client_gone` (may be empty: nobody to ask) meanwhile,
    // and gives up with a `client_gone` failure once it says yes.
    virtual std::shared_ptr<Stream> start(const ApiRequest & request, const GenerationInput & input,
                                          const std::function<bool()> & client_gone) = 0;

    // Log-probabilities of each prompt's tokens (the first has none) with `top_k` alternatives, as
    // the legacy completions `echo` + `logprobs` answer, the prompts in one batch: in process only.
    // Throws ApiError.
    virtual std::vector<engine::ScoreResult> score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                           int top_k) = 0;
    // `parse_special`: text that spells a control token ("<s>") becomes it.
    virtual std::vector<engine::Token> tokenize(const std::string & text, bool add_special, bool parse_special) = 0;
    // Control tokens come out as their text, so that tokenize(..., parse_special) reads them back.
    virtual std::string detokenize(const std::vector<engine::Token> & tokens) = 0;
    virtual std::string token_text(engine::Token token) = 0;

    // For GET /v1/models and the metrics: context length, vocabulary size (0 when unknown).
    virtual int context_length() const = 0;
    virtual int vocab_size() const = 0;
    // The vocabulary's BOS/EOS and whether prompts get a BOS: in process only (nullptr elsewhere).
    virtual const engine::EngineModel * vocabulary() const { return nullptr; }
    // The model's chat template source, empty when it has none (or it is remote).
    virtual std::string chat_template() const { return {}; }
    // Sequences it generates at once: the most choices (`n`) one request may ask of it.
    virtual int parallel() const = 0;
    // Requests waiting for or holding a slot (in process), or in flight (remote).
    virtual int load() const = 0;
    // Whether it can answer without loading first (only a `load: on_demand` model may not), and
    // a load started for the requests to come, nobody waiting for it.
    virtual bool loaded() const { return true; }
    virtual void preload() {}
    // What the model's draft (`draft:`) proposed and what was taken, since the model loaded;
    // nullopt for a model without one, or while it is not loaded.
    virtual std::optional<engine::DraftStats> draft_stats() const { return std::nullopt; }
};

}  // namespace switchyard::serve
