// A serve backend for tests that answers nothing but what a test overrides: start() and in_process().
#pragma once

#include "serve/backend.h"

namespace switchyard::test {

class FakeBackend : public serve::Backend {
public:
    std::vector<engine::ScoreResult> score_prompts(const std::vector<std::vector<engine::Token>> &, int) override {
        return {};
    }
    std::vector<engine::Token> tokenize(const std::string &, bool, bool) override { return {}; }
    std::string detokenize(const std::vector<engine::Token> &) override { return {}; }
    std::string token_text(engine::Token) override { return {}; }
    int context_length() const override { return 0; }
    int vocab_size() const override { return 0; }
    int parallel() const override { return 1; }
    int load() const override { return 0; }
};

}  // namespace switchyard::test
