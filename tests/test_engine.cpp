#include "engine/llama_engine.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace switchyard;
using engine::LlamaEngine;

namespace {

// The documented greedy continuation of stories260K.
constexpr const char * kStoriesPrompt = "Once upon a time";
constexpr const char * kStoriesContinuation =
    ", there was a little girl named Lily. She loved to play outside in the park.";

LlamaEngine & stories() {
    static LlamaEngine engine(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 512});
    return engine;
}

LlamaEngine & babyllama() {
    static LlamaEngine engine(
        {.model_path = test::model_path("babyllama-0.9M-f32.gguf"), .threads = 2, .context_length = 256});
    return engine;
}

engine::GenerateRequest greedy(std::string prompt, int max_tokens) {
    engine::GenerateRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0.0f;
    return r;
}

}  // namespace

TEST(Engine, DescribesTheModel) {
    EXPECT_EQ(stories().model().vocab_size, 512);
    EXPECT_EQ(stories().model().context_length, 512);
    EXPECT_TRUE(stories().model().adds_bos);
    EXPECT_EQ(babyllama().model().vocab_size, 105);
}

TEST(Engine, TokenizeRoundTrips) {
    const auto tokens = stories().tokenize(kStoriesPrompt, true);
    ASSERT_GE(tokens.size(), 3u);
    EXPECT_EQ(stories().detokenize(tokens), kStoriesPrompt);
    const auto plain = stories().tokenize(kStoriesPrompt, false);
    EXPECT_EQ(plain.size() + 1, tokens.size());  // BOS
}

TEST(Engine, ByteFallbackEncodesAnything) {
    const std::string text = "line one\nline two \xE2\x82\xAC";
    EXPECT_EQ(stories().detokenize(stories().tokenize(text, false)), text);
}

TEST(Engine, UnencodableCharacterIsNamed) {
    try {
        babyllama().tokenize("Once upon a time\nthere was", true);
        FAIL() << "babyllama has no newline token and no byte fallback";
    } catch (const Error & e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("U+000A (newline)"), std::string::npos) << message;
        EXPECT_NE(message.find("at byte 16"), std::string::npos) << message;
    }
    try {
        babyllama().tokenize("Tom's #1 friend", true);
        FAIL();
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("'#' (U+0023) at byte 6"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(babyllama().tokenize("Once upon a time there was", true));
}

TEST(Engine, GreedyGenerationMatchesTheDocumentedOutput) {
    const auto req = greedy(kStoriesPrompt, 40);
    const auto results = stories().generate(std::span(&req, 1));
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].text.rfind(kStoriesContinuation, 0), 0u) << results[0].text;
    EXPECT_EQ(results[0].completion_tokens, 40);
    EXPECT_EQ(results[0].finish, engine::FinishReason::length);
}

TEST(Engine, StreamedPiecesAddUpToTheText) {
    const auto req = greedy(kStoriesPrompt, 24);
    std::string streamed;
    const auto results = stories().generate(std::span(&req, 1), [&](std::size_t i, std::string_view piece) {
        EXPECT_EQ(i, 0u);
        streamed += piece;
        return true;
    });
    EXPECT_EQ(streamed, results[0].text);
}

TEST(Engine, StopStringEndsGeneration) {
    auto req = greedy(kStoriesPrompt, 60);
    req.stop = {"Lily"};
    const auto results = stories().generate(std::span(&req, 1));
    EXPECT_EQ(results[0].text, ", there was a little girl named ");
    EXPECT_EQ(results[0].finish, engine::FinishReason::stop);
}

TEST(Engine, CallbackCanCancel) {
    const auto req = greedy(kStoriesPrompt, 60);
    int pieces = 0;
    const auto results =
        stories().generate(std::span(&req, 1), [&](std::size_t, std::string_view) { return ++pieces < 3; });
    EXPECT_EQ(results[0].finish, engine::FinishReason::cancelled);
    EXPECT_EQ(pieces, 3);
}

// Several sequences decoded together give what each gives alone; more requests than slots queue.
TEST(Engine, BatchedGenerationEqualsSingle) {
    std::vector<engine::GenerateRequest> reqs = {greedy(kStoriesPrompt, 20),     greedy("The dog", 20),
                                                 greedy("Tom and Sue went", 20), greedy("One day", 20),
                                                 greedy("The sun was", 20),      greedy(kStoriesPrompt, 5)};
    const auto together = stories().generate(reqs);
    ASSERT_EQ(together.size(), reqs.size());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
        const auto alone = stories().generate(std::span(&reqs[i], 1));
        EXPECT_EQ(together[i].text, alone[0].text) << "request " << i;
    }
    EXPECT_EQ(together[5].completion_tokens, 5);
}

TEST(Engine, SampledGenerationIsReproducibleWithASeed) {
    engine::GenerateRequest req;
    req.prompt = kStoriesPrompt;
    req.max_tokens = 30;
    req.sampling.temperature = 1.0f;
    req.sampling.seed = 1234;
    const auto a = stories().generate(std::span(&req, 1));
    const auto b = stories().generate(std::span(&req, 1));
    EXPECT_EQ(a[0].text, b[0].text);
    req.sampling.seed = 99;
    bool differs = false;
    for (int i = 0; i < 3 && !differs; ++i, ++req.sampling.seed)
        differs = stories().generate(std::span(&req, 1))[0].text != a[0].text;
    EXPECT_TRUE(differs);
}

// Scoring agrees with generation: each greedy token is the top-1 of the score at its position,
// log-probabilities are normalised, and batching does not change scores.
TEST(Engine, ScoreAgreesWithGreedyGeneration) {
    auto & e = stories();
    const auto gen_req = greedy(kStoriesPrompt, 16);
    const std::string continuation = e.generate(std::span(&gen_req, 1))[0].text;
    const auto context = e.tokenize(kStoriesPrompt, true);
    const auto all = e.tokenize(std::string(kStoriesPrompt) + continuation, true);
    ASSERT_GT(all.size(), context.size());
    ASSERT_TRUE(std::equal(context.begin(), context.end(), all.begin()));
    engine::ScoreRequest req{context, std::vector<engine::Token>(all.begin() + context.size(), all.end())};

    const auto scored = e.score(std::span(&req, 1), e.model().vocab_size)[0];
    ASSERT_EQ(scored.tokens.size(), req.continuation.size());
    for (std::size_t i = 0; i < scored.tokens.size(); ++i) {
        const auto & t = scored.tokens[i];
        EXPECT_EQ(t.token, req.continuation[i]);
        ASSERT_EQ(t.top.size(), 512u);
        EXPECT_EQ(t.top[0].token, t.token) << "position " << i;
        EXPECT_FLOAT_EQ(t.top[0].logprob, t.logprob);
        double mass = 0.0;
        for (const auto & alt : t.top) mass += std::exp(alt.logprob);
        EXPECT_NEAR(mass, 1.0, 1e-4);
        EXPECT_LE(t.logprob, 0.0f);
    }

    // The same request among others, in one batch.
    std::vector<engine::ScoreRequest> many = {{e.tokenize("The dog", true), e.tokenize(" ran away", false)},
                                              req,
                                              {e.tokenize("Lily", true), e.tokenize(" was sad", false)}};
    const auto batch = e.score(many, 3);
    ASSERT_EQ(batch.size(), 3u);
    EXPECT_NEAR(batch[1].total_logprob(), scored.total_logprob(), 1e-3);
    EXPECT_EQ(batch[0].tokens.size(), many[0].continuation.size());
    EXPECT_EQ(batch[1].tokens[0].top.size(), 3u);
}

TEST(Engine, LikelyTextScoresHigherThanScrambledText) {
    auto & e = babyllama();
    const auto ctx = e.tokenize("Once upon a time there was a little", true);
    std::vector<engine::ScoreRequest> reqs = {{ctx, e.tokenize(" girl named Lily.", false)},
                                              {ctx, e.tokenize(" lriq gamed Lyli.", false)}};
    const auto s = e.score(reqs);
    EXPECT_GT(s[0].total_logprob(), s[1].total_logprob() + 5.0);
}

TEST(Engine, RejectsRequestsThatDoNotFit) {
    auto & e = stories();
    engine::ScoreRequest empty_context{{}, {1, 2}};
    EXPECT_THROW(e.score(std::span(&empty_context, 1)), Error);
    engine::ScoreRequest bad_token{{1}, {100000}};
    EXPECT_THROW(e.score(std::span(&bad_token, 1)), Error);
    engine::ScoreRequest too_long{std::vector<engine::Token>(600, 1), {2}};
    EXPECT_THROW(e.score(std::span(&too_long, 1)), Error);
}

TEST(Engine, GenerationStopsAtTheContextEnd) {
    LlamaEngine small({.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 32});
    const auto req = greedy(kStoriesPrompt, 100);
    const auto r = small.generate(std::span(&req, 1));
    EXPECT_EQ(r[0].finish, engine::FinishReason::length);
    // The last token is predicted from a full context of 32 and never needs a cell of its own.
    EXPECT_EQ(r[0].prompt_tokens + r[0].completion_tokens, 33);
}

TEST(Engine, BadModelFilesGiveClearErrors) {
    test::ScratchDir dir;
    EXPECT_THROW(LlamaEngine({.model_path = dir.file("missing.gguf")}), Error);
    const std::string bytes = test::read_file(test::model_path("stories260K-f32.gguf"));
    test::write_file(dir.file("cut.gguf"), bytes.substr(0, bytes.size() / 2));
    try {
        LlamaEngine engine({.model_path = dir.file("cut.gguf")});
        FAIL();
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
}

// Multiple-choice scoring decodes the shared context once, with the same log-probabilities as
// scoring each choice on its own, and fewer tokens.
TEST(Engine, ScoreChoicesSharesTheContext) {
    LlamaEngine e(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 256, .parallel = 5});
    const auto context = e.tokenize("Once upon a time, there was a little girl named Lily. She loved to play", true);
    std::vector<std::vector<engine::Token>> choices = {
        e.tokenize(" outside", false), e.tokenize(" with her toys", false),
        e.tokenize(" in the park with her mom", false), e.tokenize(" ball", false),
        e.tokenize(" chess and the violin every single day", false)};
    const auto before = e.tokens_decoded();
    const engine::ChoiceGroup group{context, choices};
    const auto shared = e.score_choices(std::span(&group, 1)).at(0);
    const auto shared_cost = e.tokens_decoded() - before;
    std::vector<engine::ScoreRequest> separate;
    for (const auto & c : choices) separate.push_back({context, c});
    const auto alone = e.score(separate);
    const auto alone_cost = e.tokens_decoded() - before - shared_cost;
    ASSERT_EQ(shared.size(), choices.size());
    for (std::size_t i = 0; i < choices.size(); ++i) {
        ASSERT_EQ(shared[i].tokens.size(), choices[i].size());
        EXPECT_NEAR(shared[i].total_logprob(), alone[i].total_logprob(), 1e-3) << "choice " << i;
    }
    std::size_t choice_tokens = 0;
    for (const auto & c : choices) choice_tokens += c.size();
    EXPECT_EQ(shared_cost,
              context.size() + choice_tokens - choices.size());  // each choice's last token needs no logits
    EXPECT_EQ(alone_cost, choices.size() * context.size() + choice_tokens);
}

// Many items in one call (several per model call, a group with more choices than sequences split)
// score exactly as each item alone.
TEST(Engine, ScoreChoicesBatchesItems) {
    LlamaEngine e(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 128, .parallel = 4});
    std::vector<engine::ChoiceGroup> groups;
    const char * contexts[] = {"Once upon a time", "The cat sat on the", "Tom and Sue went to the park. They saw a",
                               "Lily"};
    const std::vector<std::vector<const char *>> choices = {
        {" there", " a"}, {" mat", " dog", " big red ball", " tree", " bed"}, {" bird", " dog"}, {" smiled"}};
    for (std::size_t g = 0; g < 4; ++g) {
        engine::ChoiceGroup group{e.tokenize(contexts[g], true), {}};
        for (const char * c : choices[g]) group.choices.push_back(e.tokenize(c, false));
        groups.push_back(group);
    }
    const auto together = e.score_choices(groups);
    ASSERT_EQ(together.size(), groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
        ASSERT_EQ(together[g].size(), groups[g].choices.size());
        for (std::size_t c = 0; c < groups[g].choices.size(); ++c) {
            const auto alone =
                e.score(std::vector<engine::ScoreRequest>{{groups[g].context, groups[g].choices[c]}}).at(0);
            ASSERT_EQ(together[g][c].tokens.size(), alone.tokens.size());
            EXPECT_NEAR(together[g][c].total_logprob(), alone.total_logprob(), 1e-3)
                << "group " << g << " choice " << c;
        }
    }
}

// llama.cpp aborts a decode that wants more rows of logits than its n_outputs_max; the engine ends
// the batch there instead, and what the caller reads is the same as with room for every row.
TEST(Engine, ForwardWantingMoreLogitsThanMaxOutputsEndsTheBatchThere) {
    const auto path = test::model_path("stories260K-f32.gguf");
    LlamaEngine roomy({.model_path = path, .threads = 2, .context_length = 64, .parallel = 2});
    LlamaEngine narrow({.model_path = path, .threads = 2, .context_length = 64, .parallel = 2, .max_outputs = 5});
    const std::vector<std::vector<engine::Token>> sequences = {
        roomy.tokenize("Once upon a time, there was a little girl named Lily.", true),
        roomy.tokenize("The cat sat on the mat and looked at the big red ball.", true)};
    auto target_logits = [&](LlamaEngine & e) {
        std::vector<std::vector<double>> seen(sequences.size());
        e.forward(sequences, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
            EXPECT_EQ(seen[s].size(), pos);  // every position, in order
            seen[s].push_back(logits[static_cast<std::size_t>(sequences[s][pos])]);
        });
        return seen;
    };
    const auto all = target_logits(roomy);
    const std::uint64_t before = narrow.tokens_decoded();
    const auto cut = target_logits(narrow);
    EXPECT_EQ(narrow.tokens_decoded() - before, sequences[0].size() + sequences[1].size());
    ASSERT_EQ(all.size(), cut.size());
    for (std::size_t s = 0; s < all.size(); ++s) {
        ASSERT_EQ(all[s].size(), sequences[s].size());
        ASSERT_EQ(cut[s].size(), sequences[s].size());
        for (std::size_t p = 0; p < all[s].size(); ++p)
            EXPECT_NEAR(all[s][p], cut[s][p], 1e-3) << "sequence " << s << " position " << p;
    }
}
