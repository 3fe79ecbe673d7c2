// plan_rounds: how LlamaEngine::score_choices packs multiple-choice groups into sequences and rounds.
#include "engine/llama_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

using switchyard::engine::ChoicePart;
using switchyard::engine::plan_rounds;

namespace {

std::vector<std::vector<ChoicePart>> plan(std::vector<std::size_t> choices, std::size_t sequences) {
    return plan_rounds(choices, sequences);
}

void expect_part(const ChoicePart & p, std::size_t group, std::size_t first_choice, std::size_t choices,
                 int first_seq) {
    EXPECT_EQ(p.group, group);
    EXPECT_EQ(p.first_choice, first_choice);
    EXPECT_EQ(p.choices, choices);
    EXPECT_EQ(p.first_seq, first_seq);
}

}  // namespace

TEST(ChoiceRounds, GroupsShareARoundWhileTheirChoicesFitTheSequences) {
    const auto rounds = plan({2, 1, 3}, 4);
    ASSERT_EQ(rounds.size(), 2u);
    ASSERT_EQ(rounds[0].size(), 2u);
    expect_part(rounds[0][0], 0, 0, 2, 0);
    expect_part(rounds[0][1], 1, 0, 1, 2);
    ASSERT_EQ(rounds[1].size(), 1u);  // 3 more choices do not fit beside 3 used sequences
    expect_part(rounds[1][0], 2, 0, 3, 0);
}

TEST(ChoiceRounds, AGroupWithMoreChoicesThanSequencesIsSplitAndReadsItsContextPerPart) {
    const auto rounds = plan({10, 2}, 4);
    ASSERT_EQ(rounds.size(), 3u);
    expect_part(rounds[0][0], 0, 0, 4, 0);
    expect_part(rounds[1][0], 0, 4, 4, 0);
    ASSERT_EQ(rounds[2].size(), 2u);  // the last part of the first group leaves room for the next
    expect_part(rounds[2][0], 0, 8, 2, 0);
    expect_part(rounds[2][1], 1, 0, 2, 2);
}

TEST(ChoiceRounds, AGroupWithoutChoicesStillTakesASequenceForItsContext) {
    const auto rounds = plan({0, 3}, 4);
    ASSERT_EQ(rounds.size(), 1u);
    ASSERT_EQ(rounds[0].size(), 2u);
    expect_part(rounds[0][0], 0, 0, 0, 0);
    expect_part(rounds[0][1], 1, 0, 3, 1);
}

TEST(ChoiceRounds, NothingToScoreIsNoRound) { EXPECT_TRUE(plan({}, 4).empty()); }

TEST(ChoiceRounds, ASingleSequenceTakesOneChoicePerRound) {
    const auto rounds = plan({2}, 0);  // fewer than one sequence counts as one
    ASSERT_EQ(rounds.size(), 2u);
    expect_part(rounds[0][0], 0, 0, 1, 0);
    expect_part(rounds[1][0], 0, 1, 1, 0);
}

// Over many shapes: every choice is planned exactly once, in order within its group, no round
// uses more sequences than there are, and parts sit in consecutive sequences without overlap.
TEST(ChoiceRounds, EveryChoiceOnceAndNoRoundOverfull) {
    for (std::size_t sequences = 1; sequences <= 6; ++sequences) {
        for (std::size_t seed = 0; seed < 50; ++seed) {
            std::vector<std::size_t> choices;
            for (std::size_t g = 0; g < seed % 7; ++g) choices.push_back((seed * 31 + g * 17) % 9);
            std::map<std::size_t, std::size_t> next_choice;  // per group
            for (const auto & round : plan_rounds(choices, sequences)) {
                ASSERT_FALSE(round.empty());
                int next_seq = 0;
                for (const auto & part : round) {
                    EXPECT_EQ(part.first_seq, next_seq);
                    EXPECT_LE(part.choices, sequences);
                    EXPECT_EQ(part.first_choice, next_choice[part.group]);
                    next_choice[part.group] += part.choices;
                    next_seq += static_cast<int>(std::max<std::size_t>(part.choices, 1));
                }
                EXPECT_LE(static_cast<std::size_t>(next_seq), sequences);
            }
            for (std::size_t g = 0; g < choices.size(); ++g) EXPECT_EQ(next_choice[g], choices[g]) << "group " << g;
        }
    }
}
