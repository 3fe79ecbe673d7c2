#include "engine/continuous_batcher.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

using namespace switchyard;
using engine::ContinuousBatcher;
using engine::FinishReason;
using engine::GenerateRequest;
using engine::GenerateResult;
using engine::LlamaEngine;

namespace {

constexpr const char * kStoriesPrompt = "Once upon a time";

LlamaEngine & solo() {
    static LlamaEngine engine(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 512, .parallel = 1});
    return engine;
}

ContinuousBatcher::Options stories_options(int slots, int context_length = 512) {
    ContinuousBatcher::Options o;
    o.engine = {.model_path = test::model_path("stories260K-f32.gguf"),
                .threads = 2,
                .context_length = context_length,
                .parallel = slots};
    return o;
}

ContinuousBatcher & batcher() {
    static ContinuousBatcher b(stories_options(4));
    return b;
}

GenerateRequest greedy(std::string prompt, int max_tokens) {
    GenerateRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0.0f;
    return r;
}

GenerateResult alone(const GenerateRequest & request) { return solo().generate(std::span(&request, 1))[0]; }

struct Outcome {
    GenerateResult result;
    std::string error;
    std::string streamed;
};

// A submitted request; wait() gives its outcome once on_done has run.
struct Pending {
    std::shared_ptr<ContinuousBatcher::Ticket> ticket;
    std::future<Outcome> outcome;

    Outcome wait() {
        EXPECT_EQ(outcome.wait_for(std::chrono::minutes(2)), std::future_status::ready);
        return outcome.get();
    }
};

// `on_piece` (optional) sees each piece after it is recorded; its answer is passed on.
Pending submit(ContinuousBatcher & b, GenerateRequest request, std::function<bool(std::string_view)> on_piece = {}) {
    auto state = std::make_shared<Outcome>();
    auto done = std::make_shared<std::promise<Outcome>>();
    Pending p{nullptr, done->get_future()};
    p.ticket = b.submit(std::move(request),
                        {[state, on_piece](std::string_view piece) {
                             state->streamed += piece;
                             return on_piece ? on_piece(piece) : true;
                         },
                         [state, done](const GenerateResult & result, const std::string & error) {
                             state->result = result;
                             state->error = error;
                             done->set_value(*state);
                         }});
    return p;
}

}  // namespace

TEST(Batcher, DescribesTheModel) {
    EXPECT_EQ(batcher().model().vocab_size, 512);
    EXPECT_EQ(batcher().model().context_length, 512);
    EXPECT_EQ(batcher().stats().slots, 4);
    EXPECT_TRUE(batcher().chat_template().empty());  // the tiny models have none
    EXPECT_EQ(batcher().detokenize(batcher().tokenize(kStoriesPrompt, true)), kStoriesPrompt);
}

TEST(Batcher, OneRequestGivesTheEnginesGreedyOutput) {
    const auto req = greedy(kStoriesPrompt, 40);
    const auto expected = alone(req);
    auto out = submit(batcher(), req).wait();
    EXPECT_TRUE(out.error.empty()) << out.error;
    EXPECT_EQ(out.result.text, expected.text);
    EXPECT_EQ(out.streamed, expected.text);
    EXPECT_EQ(out.result.completion_tokens, 40);
    EXPECT_EQ(out.result.prompt_tokens, expected.prompt_tokens);
    EXPECT_EQ(out.result.finish, FinishReason::length);
}

// Batching does not change results: on these f32 models every request's greedy text (and a
// seeded sample) equals what it gives alone, token for token.
TEST(Batcher, ConcurrentRequestsEqualTheirSoloOutput) {
    std::vector<GenerateRequest> reqs = {
        greedy(kStoriesPrompt, 30), greedy("The dog", 25),     greedy("Tom and Sue went", 40),
        greedy("One day", 10),      greedy("The sun was", 35), greedy("Lily had a big red ball", 30),
        greedy("Ben", 20),          greedy(kStoriesPrompt, 5)};
    reqs[3].sampling = {.temperature = 1.0f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 1234};
    std::vector<Pending> pending;
    for (const auto & r : reqs) pending.push_back(submit(batcher(), r));
    for (std::size_t i = 0; i < reqs.size(); ++i) {
        ASSERT_NE(pending[i].ticket, nullptr);
        const auto out = pending[i].wait();
        const auto expected = alone(reqs[i]);
        EXPECT_EQ(out.result.text, expected.text) << "request " << i;
        EXPECT_EQ(out.result.completion_tokens, expected.completion_tokens) << "request " << i;
        EXPECT_EQ(out.result.finish, expected.finish) << "request " << i;
        EXPECT_EQ(out.streamed, out.result.text) << "request " << i;
    }
    EXPECT_EQ(batcher().stats().active, 0);
    EXPECT_EQ(batcher().stats().queued, 0);
}

// A prompt whose start a free slot already holds decodes only the rest, in that slot; the
// answers are still the engine's own from a clean context. A scoring pass overwrites the
// sequences it uses, so what follows it starts over.
TEST(Batcher, APromptsCachedStartIsNotDecodedAgain) {
    ContinuousBatcher b(stories_options(2));
    const auto first = greedy("Tom and Sue went to the park", 12);
    const auto prompt_tokens = b.tokenize(first.prompt, true).size();
    ASSERT_GT(prompt_tokens, 4u);

    auto out = submit(b, first).wait();
    EXPECT_EQ(out.result.text, alone(first).text);
    auto before = b.stats();
    EXPECT_EQ(before.prompt_tokens, prompt_tokens);
    EXPECT_EQ(before.prompt_tokens_reused, 0u);

    // The same prompt: all but its last token are found.
    out = submit(b, first).wait();
    EXPECT_EQ(out.result.text, alone(first).text);
    auto after = b.stats();
    EXPECT_EQ(after.prompt_tokens - before.prompt_tokens, 1u);
    EXPECT_EQ(after.prompt_tokens_reused - before.prompt_tokens_reused, prompt_tokens - 1);

    // The prompt and its answer, as a chat's next turn sends it: the cells cover the prompt and
    // the answer's tokens that were fed back.
    const auto next_turn = greedy(first.prompt + out.result.text + " Then", 8);
    const auto next_tokens = b.tokenize(next_turn.prompt, true).size();
    before = after;
    out = submit(b, next_turn).wait();
    EXPECT_EQ(out.result.text, alone(next_turn).text);
    after = b.stats();
    EXPECT_GE(after.prompt_tokens_reused - before.prompt_tokens_reused, prompt_tokens);
    EXPECT_EQ((after.prompt_tokens - before.prompt_tokens) + (after.prompt_tokens_reused - before.prompt_tokens_reused),
              next_tokens);

    // A different start (only the BOS token shared) reuses nothing, and takes the other slot: the
    // chat's cells stay for its next turn.
    before = after;
    const auto other = greedy("Lily had a big red ball", 6);
    out = submit(b, other).wait();
    EXPECT_EQ(out.result.text, alone(other).text);
    EXPECT_EQ(b.stats().prompt_tokens_reused, before.prompt_tokens_reused);
    before = b.stats();
    out = submit(b, next_turn).wait();
    EXPECT_EQ(out.result.text, alone(next_turn).text);
    EXPECT_EQ(b.stats().prompt_tokens - before.prompt_tokens, 1u);

    // Scoring takes the free slots' sequences: the first prompt is decoded whole again.
    const engine::ScoreRequest score{.context = b.tokenize("Once", true),
                                     .continuation = b.tokenize(" upon a time", false)};
    b.score(std::span(&score, 1), 0);
    before = b.stats();
    out = submit(b, first).wait();
    EXPECT_EQ(out.result.text, alone(first).text);
    EXPECT_EQ(b.stats().prompt_tokens - before.prompt_tokens, prompt_tokens);
    EXPECT_EQ(b.stats().prompt_tokens_reused, before.prompt_tokens_reused);
}

// A prompt longer than a batch is fed in chunks over several steps while the other slots keep
// generating a token each step; nobody's output changes.
TEST(Batcher, LongPromptsAreFedInChunksBesideGeneration) {
    auto o = stories_options(3);
    o.engine.batch_size = 16;
    ContinuousBatcher b(o);
    std::string story =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big red ball";
    std::vector<GenerateRequest> reqs = {greedy("The dog", 40), greedy(story, 20), greedy("Tom and Sue went", 40)};
    ASSERT_GT(b.tokenize(story, true).size(), 2u * 16u);
    std::vector<Pending> pending;
    for (const auto & r : reqs) pending.push_back(submit(b, r));
    for (std::size_t i = 0; i < reqs.size(); ++i)
        EXPECT_EQ(pending[i].wait().result.text, alone(reqs[i]).text) << "request " << i;
}

TEST(Batcher, StopStringsAndMaxTokens) {
    auto stop = greedy(kStoriesPrompt, 60);
    stop.stop = {"Lily"};
    auto five = greedy(kStoriesPrompt, 5);
    auto none = greedy(kStoriesPrompt, 0);
    auto a = submit(batcher(), stop);
    auto b = submit(batcher(), five);
    auto c = submit(batcher(), none);
    const auto stopped = a.wait();
    EXPECT_EQ(stopped.result.text, ", there was a little girl named ");
    EXPECT_EQ(stopped.streamed, stopped.result.text);
    EXPECT_EQ(stopped.result.finish, FinishReason::stop);
    const auto limited = b.wait();
    EXPECT_EQ(limited.result.completion_tokens, 5);
    EXPECT_EQ(limited.result.finish, FinishReason::length);
    const auto nothing = c.wait();
    EXPECT_EQ(nothing.result.completion_tokens, 0);
    EXPECT_EQ(nothing.result.text, "");
}

TEST(Batcher, GenerationStopsAtTheSlotsContextEnd) {
    ContinuousBatcher small(stories_options(2, 32));
    const auto out = submit(small, greedy(kStoriesPrompt, 100)).wait();
    EXPECT_EQ(out.result.finish, FinishReason::length);
    EXPECT_EQ(out.result.prompt_tokens + out.result.completion_tokens, 33);
}

// Log-probabilities of generated tokens: normalised, the greedy token is the best one, and they
// equal what scoring the same tokens gives.
TEST(Batcher, LogprobsOfGeneratedTokens) {
    auto req = greedy(kStoriesPrompt, 20);
    req.logprobs = 3;
    const auto out = submit(batcher(), req).wait();
    const auto & lp = out.result.token_logprobs;
    ASSERT_EQ(lp.size(), 20u);
    std::vector<engine::Token> generated;
    for (const auto & t : lp) {
        EXPECT_LE(t.logprob, 0.0f);
        ASSERT_EQ(t.top.size(), 3u);
        EXPECT_EQ(t.top[0].token, t.token);
        EXPECT_FLOAT_EQ(t.top[0].logprob, t.logprob);
        EXPECT_GE(t.top[0].logprob, t.top[1].logprob);
        generated.push_back(t.token);
    }
    EXPECT_EQ(batcher().detokenize(generated), out.result.text);

    // Scoring decodes the continuation in one batch, generation a token at a time: the matrix
    // kernels round differently (measured up to 3e-4), nothing more.
    const engine::ScoreRequest scored_req{batcher().tokenize(kStoriesPrompt, true), generated};
    const auto scored = solo().score(std::span(&scored_req, 1), 3)[0];
    for (std::size_t i = 0; i < lp.size(); ++i)
        EXPECT_NEAR(scored.tokens[i].logprob, lp[i].logprob, 1e-3) << "token " << i;

    // The engine's own generate reports the same; logprobs 0 gives no alternatives, -1 nothing.
    const auto direct = alone(req);
    ASSERT_EQ(direct.token_logprobs.size(), lp.size());
    EXPECT_NEAR(direct.token_logprobs[5].logprob, lp[5].logprob, 1e-6);
    req.logprobs = 0;
    const auto bare = submit(batcher(), req).wait();
    ASSERT_EQ(bare.result.token_logprobs.size(), 20u);
    EXPECT_TRUE(bare.result.token_logprobs[0].top.empty());
    req.logprobs = -1;
    EXPECT_TRUE(submit(batcher(), req).wait().result.token_logprobs.empty());
}

// Scoring runs in a free slot between decode steps; the generation beside it is undisturbed.
TEST(Batcher, ScoreMatchesTheEngineWhileGenerating) {
    const auto running_req = greedy("Tom and Sue went", 60);
    auto running = submit(batcher(), running_req);
    auto & e = solo();
    std::vector<engine::ScoreRequest> reqs = {
        {e.tokenize("The dog", true), e.tokenize(" ran away", false)},
        {e.tokenize(kStoriesPrompt, true), e.tokenize(", there was a little girl", false)},
        {e.tokenize("Lily", true), e.tokenize(" was sad", false)}};
    const auto expected = e.score(reqs, 2);
    const auto got = batcher().score(reqs, 2);
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t r = 0; r < got.size(); ++r) {
        ASSERT_EQ(got[r].tokens.size(), expected[r].tokens.size());
        for (std::size_t i = 0; i < got[r].tokens.size(); ++i) {
            EXPECT_NEAR(got[r].tokens[i].logprob, expected[r].tokens[i].logprob, 1e-4);
            ASSERT_EQ(got[r].tokens[i].top.size(), 2u);
            EXPECT_EQ(got[r].tokens[i].top[0].token, expected[r].tokens[i].top[0].token);
        }
    }
    EXPECT_EQ(running.wait().result.text, alone(running_req).text);

    const engine::ScoreRequest bad{{}, {1}};
    EXPECT_THROW(batcher().score(std::span(&bad, 1), 0), Error);
}

TEST(Batcher, RequestsThatCannotRunReportAnError) {
    ContinuousBatcher small(stories_options(2, 32));
    std::string long_prompt;
    for (int i = 0; i < 20; ++i) long_prompt += "Once upon a time ";
    const auto out = submit(small, greedy(long_prompt, 10)).wait();
    EXPECT_NE(out.error.find("leaves no room in the context of 32"), std::string::npos) << out.error;
    EXPECT_EQ(out.result.completion_tokens, 0);

    ContinuousBatcher::Options o;
    o.engine = {
        .model_path = test::model_path("babyllama-0.9M-f32.gguf"), .threads = 2, .context_length = 128, .parallel = 2};
    ContinuousBatcher baby(o);
    const auto unencodable = submit(baby, greedy("Tom's #1 friend", 10)).wait();
    EXPECT_NE(unencodable.error.find("'#' (U+0023)"), std::string::npos) << unencodable.error;
    // The batcher carries on.
    const auto fine = submit(baby, greedy("Once upon a time there was", 10)).wait();
    EXPECT_TRUE(fine.error.empty()) << fine.error;
    EXPECT_EQ(fine.result.completion_tokens, 10);
}

TEST(Batcher, RefusesWhenTheQueueIsFull) {
    auto o = stories_options(1);
    o.max_queue = 1;
    ContinuousBatcher b(o);
    // The first request holds the only slot until released (its callback blocks the decode thread).
    std::promise<void> release;
    auto released = release.get_future().share();
    std::promise<void> started;
    bool first_piece = true;
    auto holder = submit(b, greedy(kStoriesPrompt, 10), [&](std::string_view) {
        if (first_piece) {
            first_piece = false;
            started.set_value();
            released.wait();
        }
        return true;
    });
    started.get_future().wait();
    auto waiting = submit(b, greedy("The dog", 5));
    ASSERT_NE(waiting.ticket, nullptr);
    EXPECT_EQ(b.stats().queued, 1);
    auto refused = submit(b, greedy("One day", 5));
    EXPECT_EQ(refused.ticket, nullptr);
    release.set_value();
    EXPECT_EQ(holder.wait().result.completion_tokens, 10);
    EXPECT_EQ(waiting.wait().result.completion_tokens, 5);
}

TEST(Batcher, CancelFreesTheSlot) {
    auto o = stories_options(1);
    ContinuousBatcher b(o);
    // The running request's first piece holds the decode thread until both cancels are sent, so
    // that it cannot finish on its own first.
    std::promise<void> started;
    std::promise<void> sent;
    auto sent_future = sent.get_future().share();
    int pieces = 0;
    auto cancelled = submit(b, greedy(kStoriesPrompt, 400), [&](std::string_view) {
        if (++pieces == 1) {
            started.set_value();
            sent_future.wait();
        }
        return true;
    });
    auto queued = submit(b, greedy("The dog", 400));  // waits for the only slot
    started.get_future().wait();
    b.cancel(queued.ticket);
    b.cancel(cancelled.ticket);
    sent.set_value();
    const auto out = cancelled.wait();
    EXPECT_EQ(out.result.finish, FinishReason::cancelled);
    EXPECT_LE(out.result.completion_tokens, 2);
    EXPECT_EQ(out.streamed, out.result.text);
    EXPECT_EQ(queued.wait().result.finish, FinishReason::cancelled);
    EXPECT_EQ(b.stats().active, 0);

    // A callback returning false cancels too; then the slot serves the next request as usual.
    int seen = 0;
    const auto stopped = submit(b, greedy(kStoriesPrompt, 400), [&](std::string_view) { return ++seen < 3; }).wait();
    EXPECT_EQ(stopped.result.finish, FinishReason::cancelled);
    EXPECT_EQ(seen, 3);
    const auto next_req = greedy("Lily had a big red ball", 20);
    EXPECT_EQ(submit(b, next_req).wait().result.text, alone(next_req).text);
    EXPECT_EQ(b.stats().active, 0);
    EXPECT_GT(b.stats().generated_tokens, 20u);
}

TEST(Batcher, DestructorCancelsWhatIsLeft) {
    std::vector<Pending> pending;
    {
        ContinuousBatcher b(stories_options(1));
        for (int i = 0; i < 3; ++i) pending.push_back(submit(b, greedy(kStoriesPrompt, 400)));
    }
    for (auto & p : pending) {
        ASSERT_EQ(p.outcome.wait_for(std::chrono::seconds(0)), std::future_status::ready);
        const auto finish = p.outcome.get().result.finish;
        EXPECT_TRUE(finish == FinishReason::cancelled || finish == FinishReason::length) << engine::to_string(finish);
    }
}
