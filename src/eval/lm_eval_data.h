// The rows of a local data file as lm-eval's datasets.load_dataset("json" | "csv" | "text", data_files=...)
// gives them to its templates: one JSON object per document.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <vector>

namespace switchyard::eval {

// JSON lines (blank lines skipped), or one JSON list of objects. Throws switchyard::Error naming
// the file and line of a malformed document.
std::vector<nlohmann::json> read_json_docs(const std::filesystem::path & file);
// A header row, then one row per document (RFC 4180 quoting). As pandas reads it: a column whose
// values are all integers holds integers, all numbers floats, else strings; an empty field is null.
std::vector<nlohmann::json> read_csv_docs(const std::filesystem::path & file);
// Plain text as datasets' "text" loader reads it, each document {"text": ...}: one per line
// (`paragraphs` false, empty lines included), or one per block between blank lines (empty blocks left out).
std::vector<nlohmann::json> read_text_docs(const std::filesystem::path & file, bool paragraphs);

}  // namespace switchyard::eval
