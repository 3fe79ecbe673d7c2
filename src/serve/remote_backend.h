// RemoteBackend: any OpenAI-compatible server (vLLM, llama-server, another switchyard) behind the
// Backend interface; requests are forwarded with the model renamed, answers streamed back (their
// events read by serve/sse_reader.h, on threads the backend joins).
#pragma once

#include "engine/http_client.h"
#include "model/portfolio.h"
#include "serve/backend.h"
#include "support/thread_set.h"

#include <atomic>
#include <memory>

namespace switchyard::serve {

// What an upstream HTTP status means for the gateway: the client's own error (its status goes back
// to it), or the backend's (fall back; 401/403/404 count here, as they come from this gateway's
// settings, not from anything the client can fix).
Failure upstream_fault(int status);

class RemoteBackend final : public Backend {
public:
    // Only checks the endpoint's form: the server may come up later, and fallback covers it.
    RemoteBackend(const model::PortfolioModel & entry, int timeout_ms);
    // Waits for the streamed exchanges still running. Their readers hold the backend (through its
    // deployment), so by now each stream is finished or cancelled, and a cancelled exchange stops
    // at the server's next bytes or its read timeout.
    ~RemoteBackend() override = default;

    bool in_process() const override { return false; }
    std::shared_ptr<Stream> start(const ApiRequest & request, const GenerationInput & input,
                                  const std::function<bool()> & client_gone) override;
    std::vector<engine::ScoreResult> score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                   int top_k) override;
    std::vector<engine::Token> tokenize(const std::string & text, bool add_special, bool parse_special) override;
    std::string detokenize(const std::vector<engine::Token> & tokens) override;
    std::string token_text(engine::Token token) override;
    int context_length() const override { return 0; }
    int vocab_size() const override { return 0; }
    int parallel() const override { return parallel_; }
    int load() const override { return in_flight_.load(); }

private:
    nlohmann::json post_json(const std::string & path, const nlohmann::json & body) const;

    std::string origin_;  // scheme://host:port
    std::string prefix_;  // the endpoint's path, e.g. /v1
    std::string root_prefix_;  // where llama-server's /tokenize lives: the prefix without /v1
    std::string remote_model_;
    std::string api_key_;
    int timeout_ms_;
    int parallel_ = 1;
    std::atomic<int> in_flight_{0};
    std::unique_ptr<engine::HttpClientPool> pool_;
    ThreadSet exchanges_;  // one per streamed answer; last, so they are joined before what they use goes
};

}  // namespace switchyard::serve
