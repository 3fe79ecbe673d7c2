#include "eval/lm_eval_data.h"

#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <sstream>

namespace switchyard::eval {

std::vector<nlohmann::json> read_json_docs(const std::filesystem::path & file) {
    const std::string bytes = read_whole_file(file, "data file");
    std::vector<nlohmann::json> docs;
    const auto first = bytes.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && bytes[first] == '[') {
        nlohmann::json all;
        try {
            all = nlohmann::json::parse(bytes);
        } catch (const nlohmann::json::parse_error & e) {
            throw Error("{}: not valid JSON: {}", file.string(), e.what());
        }
        for (std::size_t i = 0; i < all.size(); ++i) {
            if (!all[i].is_object()) throw Error("{}: element {} of the list is not a JSON object", file.string(), i);
            docs.push_back(std::move(all[i]));
        }
        return docs;
    }
    std::istringstream lines(bytes);
    std::size_t number = 0;
    for (std::string line; std::getline(lines, line);) {
        ++number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error &) {
            throw Error("{}:{}: not valid JSON", file.string(), number);
        }
        if (!j.is_object()) throw Error("{}:{}: a document must be a JSON object", file.string(), number);
        docs.push_back(std::move(j));
    }
    return docs;
}

std::vector<nlohmann::json> read_text_docs(const std::filesystem::path & file, bool paragraphs) {
    const std::string bytes = read_whole_file(file, "data file");
    std::vector<nlohmann::json> docs;
    const std::string separator = paragraphs ? "\n\n" : "\n";
    std::size_t start = 0;
    while (start < bytes.size()) {
        auto end = bytes.find(separator, start);
        if (end == std::string::npos) end = bytes.size();
        std::string text = bytes.substr(start, end - start);
        if (!paragraphs && !text.empty() && text.back() == '\r') text.pop_back();
        if (!paragraphs || !text.empty()) docs.push_back({{"text", std::move(text)}});
        start = end + separator.size();
    }
    return docs;
}

namespace {

// Rows of fields; quoted fields may hold commas, doubled quotes and line breaks.
std::vector<std::vector<std::string>> csv_rows(const std::string & bytes, const std::filesystem::path & file) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool quoted = false;
    std::size_t line = 1;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const char c = bytes[i];
        if (quoted) {
            if (c == '"' && i + 1 < bytes.size() && bytes[i + 1] == '"') {
                field += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                line += c == '\n';
                field += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            row.push_back(std::move(field));
            field.clear();
        } else if (c == '\n' || c == '\r') {
            if (c == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n') ++i;
            ++line;
            row.push_back(std::move(field));
            field.clear();
            if (!(row.size() == 1 && row[0].empty())) rows.push_back(std::move(row));
            row.clear();
        } else {
            field += c;
        }
    }
    if (quoted) throw Error("{}:{}: a quoted field is not closed", file.string(), line);
    if (!field.empty() || !row.empty()) {
        row.push_back(std::move(field));
        rows.push_back(std::move(row));
    }
    return rows;
}

}  // namespace

std::vector<nlohmann::json> read_csv_docs(const std::filesystem::path & file) {
    const auto rows = csv_rows(read_whole_file(file, "data file"), file);
    if (rows.empty()) throw Error("{}: no header row", file.string());
    const auto & header = rows[0];
    static const re2::RE2 integer(R"([-+]?\d+)");
    static const re2::RE2 number(R"([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)");
    enum class Type { integer, number, text };
    std::vector<Type> types(header.size(), Type::integer);
    for (std::size_t r = 1; r < rows.size(); ++r) {
        if (rows[r].size() != header.size())
            throw Error("{}: row {} has {} fields, the header {}", file.string(), r + 1, rows[r].size(), header.size());
        for (std::size_t c = 0; c < header.size(); ++c) {
            const auto & v = rows[r][c];
            // pandas: a column of integers with a gap becomes floats (NaN has no integer form).
            if (v.empty())
                types[c] = types[c] == Type::integer ? Type::number : types[c];
            else if (types[c] == Type::integer && !re2::RE2::FullMatch(v, integer))
                types[c] = re2::RE2::FullMatch(v, number) ? Type::number : Type::text;
            else if (types[c] == Type::number && !re2::RE2::FullMatch(v, number))
                types[c] = Type::text;
        }
    }
    std::vector<nlohmann::json> docs;
    for (std::size_t r = 1; r < rows.size(); ++r) {
        nlohmann::json doc = nlohmann::json::object();
        for (std::size_t c = 0; c < header.size(); ++c) {
            const auto & v = rows[r][c];
            if (v.empty())
                doc[header[c]] = nullptr;
            else if (types[c] == Type::integer)
                doc[header[c]] = std::stoll(v);
            else if (types[c] == Type::number)
                doc[header[c]] = std::stod(v);
            else
                doc[header[c]] = v;
        }
        docs.push_back(std::move(doc));
    }
    return docs;
}

}  // namespace switchyard::eval
