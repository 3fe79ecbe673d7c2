#include "eval/text_chunks.h"

#include "engine/normalize.h"
#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace switchyard::eval {

namespace {

void collect_strings(const nlohmann::json & value, std::string & out) {
    if (value.is_string()) {
        out += value.get<std::string>();
        out += '\n';
    } else if (value.is_array() || value.is_object()) {
        for (const auto & v : value) collect_strings(v, out);
    }
}

// The fields that hold an item's text in switchyard's suites and the shared data's formats;
// the rest (ids, labels, categories) is metadata.
constexpr const char * kTextFields[] = {"text", "context", "prompt",        "choices",     "answer",
                                        "good", "bad",     "sentence_good", "sentence_bad"};

void collect_item_text(const nlohmann::json & item, std::string & out) {
    bool found = false;
    if (item.is_object()) {
        for (const char * key : kTextFields) {
            if (item.contains(key)) {
                collect_strings(item[key], out);
                found = true;
            }
        }
    }
    if (!found) collect_strings(item, out);
}

// A task suite (JSONL) calibrates with the text of its items.
std::string text_of_suite(const std::filesystem::path & path, const std::string & contents) {
    std::string text;
    std::size_t line_number = 0;
    std::istringstream lines(contents);
    for (std::string line; std::getline(lines, line);) {
        ++line_number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            collect_item_text(nlohmann::json::parse(line), text);
        } catch (const nlohmann::json::parse_error &) {
            throw Error("{}:{}: not a JSON object (suites are JSONL: one item per line)", path.string(), line_number);
        }
    }
    return text;
}

}  // namespace

int default_chunk_context(std::uint64_t declared_context) {
    return static_cast<int>(std::min<std::uint64_t>(512, declared_context > 0 ? declared_context : 512));
}

TextChunks tokenize_chunks(const engine::Engine & engine, const TextChunkOptions & o) {
    if (o.files.empty()) throw Error("no text given (--data FILE)");
    if (o.context < 2) throw Error("chunks need a context of at least 2 tokens");
    if (o.skip_chunks < 0) throw Error("--skip-chunks cannot be negative");
    TextChunks result;
    // The stream starts with BOS, is cut every `context` tokens, and each chunk's first token
    // becomes BOS: llama-imatrix's and llama-perplexity's layout, so results compare with theirs.
    const std::vector<engine::Token> bos = engine.tokenize("", true);  // empty for models without BOS
    std::vector<engine::Token> tokens = bos;
    for (const auto & path : o.files) {
        const std::string bytes = read_whole_file(path, "text file");
        std::string text = path.extension() == ".jsonl" ? text_of_suite(path, bytes) : bytes;
        if (o.normalize) {
            engine::NormalizeStats stats;
            text = engine::normalize_for_vocabulary(engine, text, &stats);
            result.dropped_characters += stats.dropped;
        }
        try {
            const auto part = engine.tokenize(text, false);
            tokens.insert(tokens.end(), part.begin(), part.end());
        } catch (const Error & e) {
            throw Error("{}: {}; pass --normalize to collapse whitespace and drop such characters", path.string(),
                        e.what());
        }
        result.sources.push_back(path.filename().string());
    }
    result.stream = tokens;
    const auto length = static_cast<std::size_t>(o.context);
    const std::size_t total = tokens.size() / length;
    const auto skip = static_cast<std::size_t>(o.skip_chunks);
    result.available = total > skip ? total - skip : 0;
    if (result.available == 0) {
        throw Error("the text holds {} tokens, {} chunks of {}: nothing left after skipping {}", tokens.size(), total,
                    length, skip);
    }
    const std::size_t take = o.max_chunks > 0
        ? std::min<std::size_t>(result.available, static_cast<std::size_t>(o.max_chunks))
        : result.available;
    for (std::size_t c = skip; c < skip + take; ++c) {
        auto & chunk = result.chunks.emplace_back(tokens.begin() + c * length, tokens.begin() + (c + 1) * length);
        if (!bos.empty()) chunk.front() = bos.front();
    }
    return result;
}

}  // namespace switchyard::eval
