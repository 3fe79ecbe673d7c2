// Task suites: a team's real examples (JSONL, one item per line), and adapters that read public
// data sets as they are (BLiMP minimal pairs, LAMBADA last words).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace switchyard::eval {

enum class ItemKind { multiple_choice, pair, generation, consistency, loglikelihood };
enum class Matcher { exact, contains, regex, number };

// lm-eval's `regex` filter: the `group_select`-th of the pattern's matches (Python findall), stripped,
// else `fallback`.
struct LmEvalRegex {
    std::string pattern;
    int group_select = 0;
    std::string fallback = "[invalid]";
};

// How an lm-eval generation is judged: its filters, then exact_match against the target.
struct LmEvalMatch {
    std::vector<LmEvalRegex> filters;
    bool ignore_case = false;
    bool ignore_punctuation = false;
    bool ignore_numbers = false;
};

struct TaskItem {
    ItemKind kind = ItemKind::multiple_choice;
    std::size_t line = 0;  // in the source file, from 1
    // multiple_choice: the choice that continues `context` best is `answer`
    std::string context;
    std::vector<std::string> choices;
    int answer = -1;
    // pair: right when log P(good) > log P(bad)
    std::string good;
    std::string bad;
    // generation: the greedy continuation of `prompt` must match `expected`
    std::string prompt;
    // generation and consistency items may give a chat instead of `prompt`: OpenAI `messages`
    // (JSON text), rendered as serve renders them for the model under test
    std::string messages;
    std::string expected;
    // consistency: the greedy continuation must reproduce `reference` (the incumbent's answer,
    // compared as `exact` compares); also scored teacher-forced (its mean token log-probability)
    std::string reference;
    Matcher matcher = Matcher::exact;
    int max_tokens = 32;
    std::vector<std::string> stop;
    // "scoring": "lm-eval" (what `tasks lm-eval` writes): scored exactly as lm-eval scores. A
    // multiple-choice item's choices are continuations `target_delimiter + choice`, tokenized as
    // lm-eval's _encode_pair does, with acc_norm per character of the choice; a generation is
    // filtered and judged by `lm_eval_match`. A loglikelihood item is always scored this way.
    bool lm_eval = false;
    std::string target_delimiter;
    LmEvalMatch lm_eval_match;
    // loglikelihood: right when every token of `continuation` after `context` is the model's
    // most likely one (lm-eval's acc, is_greedy)
    std::string continuation;
};

struct SuiteSettings {
    std::string name;
    bool critical = false;
    std::string requires_capability;  // "vision", "audio", "code", "context:N"; empty: none
};

struct SkippedLine {
    std::size_t line;
    std::string reason;
};

struct TaskSuite {
    SuiteSettings settings;
    std::vector<TaskItem> items;
    std::vector<SkippedLine> skipped;  // malformed lines, reported and left out
    std::string spec;  // as given: "FILE", "blimp:FILE", "lambada:FILE"
    std::string content_hash;  // sha256 of the adapter and the file's bytes
};

// Loads "FILE.jsonl" (switchyard's format: see docs), "blimp:FILE" or "lambada:FILE".
// A first line {"suite": {"name": ..., "critical": true, "requires": ...}} sets the suite's
// settings. Throws switchyard::Error for an unreadable file or unknown adapter; malformed items
// are skipped with their line number.
TaskSuite load_suite(const std::string & spec);

// The suite's items in a fixed random order, the same on every machine and run: a Fisher-Yates
// shuffle seeded with the first 16 hex digits of the content hash (order_seed), so any prefix is a
// fair sample of the suite and a stopped run resumes with the same items.
std::vector<std::size_t> item_order(const TaskSuite & suite);
std::uint64_t order_seed(const TaskSuite & suite);

// The suite with only these items (indices into suite.items), in this order; settings, spec and
// content hash kept, so results on it pair with results on the same selection.
TaskSuite select_items(const TaskSuite & suite, const std::vector<std::size_t> & items);

// Whether `output` (a model's generation) satisfies the item's matcher (lm-eval items: its filters,
// then exact_match).
bool matches(const TaskItem & item, const std::string & output);

const char * to_string(ItemKind kind);

}  // namespace switchyard::eval
