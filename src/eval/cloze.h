// Builds a next-word multiple-choice suite from plain text, so a team with only documents can
// still test a model on its own domain.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace switchyard::eval {

struct ClozeOptions {
    std::filesystem::path text;
    std::size_t items = 200;
    std::uint64_t seed = 1;
    int choices = 4;  // the right word and choices-1 distractors drawn from the same text
    int context_words = 40;  // words before the blank, within the same passage
    int skip_passages = 0;  // start after this many blank-line-separated passages
};

// Returns the suite as JSONL (a settings line, then one item per line). The same options and text
// give the same suite. Throws switchyard::Error when the text is too short for the request.
std::string build_cloze(const ClozeOptions & options);

}  // namespace switchyard::eval
