// LocalBackend: a GGUF model run in process by a ContinuousBatcher, behind the Backend interface.
#pragma once

#include "engine/continuous_batcher.h"
#include "model/portfolio.h"
#include "serve/backend.h"

#include <memory>

namespace switchyard::serve {

class LocalBackend final : public Backend {
public:
    // Loads the model (slow); throws switchyard::Error when it cannot.
    LocalBackend(const model::PortfolioModel & entry, int max_queue);

    bool in_process() const override { return true; }
    std::shared_ptr<Stream> start(const ApiRequest & request, const GenerationInput & input,
                                  const std::function<bool()> & client_gone) override;
    std::vector<engine::ScoreResult> score_prompts(const std::vector<std::vector<engine::Token>> & prompts,
                                                   int top_k) override;
    std::vector<engine::Token> tokenize(const std::string & text, bool add_special, bool parse_special) override;
    std::string detokenize(const std::vector<engine::Token> & tokens) override;
    std::string token_text(engine::Token token) override;
    int context_length() const override;
    int vocab_size() const override;
    const engine::EngineModel * vocabulary() const override { return &batcher_->model(); }
    std::string chat_template() const override { return batcher_->chat_template(); }
    int parallel() const override { return parallel_; }
    int load() const override;
    std::optional<engine::DraftStats> draft_stats() const override;

    struct Prepared {
        engine::GenerateRequest request;
        std::shared_ptr<const engine::AnswerParser> answer_parser;  // set when tools were offered
    };
    // What the model is asked: the prompt text (the chat template rendered by llama.cpp, or the
    // plain transcript for a model without one; normalized when the entry says so), how to
    // tokenize it, and the grammar, stop strings and text tokens the template adds; and how to
    // read the answer's tool calls back. Throws ApiError (400) for what this model cannot do
    // (tools without a template that takes them).
    Prepared prepare(const GenerationInput & input) const;
    // prepare()'s prompt as tokens, BOS included: what generation starts from.
    std::vector<engine::Token> prompt_tokens(const GenerationInput & input) const;

private:
    // `tokens`, each checked against the vocabulary: an id outside it is the client's 400 naming it.
    std::vector<engine::Token> checked_ids(const std::vector<engine::Token> & tokens, const char * field) const;

    std::shared_ptr<engine::ContinuousBatcher> batcher_;
    bool normalize_ = false;
    bool drafted_ = false;  // the entry names a draft
    int parallel_ = 1;
};

}  // namespace switchyard::serve
