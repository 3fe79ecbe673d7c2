// lm-eval's YAML task format read as a switchyard suite: local data files (dataset_path json or
// csv), its templates, few-shot sampling and output types, turned into items that run_suite
// scores as lm-eval does (docs/lm-eval.md). What it cannot reproduce is refused, never guessed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace switchyard::eval {

struct LmEvalOptions {
    std::filesystem::path task;  // the YAML file
    std::filesystem::path data_dir;  // data_files resolve against it; empty: the YAML's folder
    std::string split;  // empty: test_split, else validation_split, as lm-eval picks
    std::size_t limit = 0;  // the first N documents only (lm-eval's --limit N); 0: all
    std::uint64_t fewshot_seed = 1234;  // lm-eval's --fewshot_random_seed
};

struct LmEvalSuite {
    std::string name;  // the task's `task:`, else the YAML's stem
    std::string output_type;  // multiple_choice, loglikelihood or generate_until
    std::string jsonl;  // the suite: a settings line, then one item per document
    std::size_t items = 0;
    std::vector<std::string> metrics;  // what its results measure (acc, acc_norm, exact_match)
    std::vector<std::string> notes;  // metrics the task asks for that the suite does not compute
};

// Throws switchyard::Error, one line naming the file, key or data line: a bad YAML, a key or a
// feature it cannot reproduce (a Python !function, process_docs, an unknown filter or metric,
// parquet data, loglikelihood_rolling), a missing data file, a malformed data line.
LmEvalSuite build_lm_eval_suite(const LmEvalOptions & options);

}  // namespace switchyard::eval
