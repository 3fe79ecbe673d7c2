#include "eval/lm_eval_match.h"

#include "support/utf8.h"

#include <re2/re2.h>

#include <cctype>
#include <optional>

namespace switchyard::eval {

namespace {

std::string python_strip(const std::string & s) {
    const auto first = s.find_first_not_of(" \t\n\r\v\f");
    if (first == std::string::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\n\r\v\f") - first + 1);
}

// One entry of Python's re.findall: the whole match without groups, the group with one, else the
// first non-empty group (what the filter keeps of findall's tuple); nullopt: all groups empty.
std::optional<std::string> found(const std::vector<re2::StringPiece> & groups) {
    if (groups.size() == 1) return std::string(groups[0]);
    for (std::size_t g = 1; g < groups.size(); ++g)
        if (!groups[g].empty()) return std::string(groups[g]);
    if (groups.size() == 2) return std::string();
    return std::nullopt;
}

}  // namespace

std::string apply_regex_filter(const LmEvalRegex & filter, const std::string & response) {
    const re2::RE2 re(filter.pattern, re2::RE2::Quiet);
    if (!re.ok()) return filter.fallback;
    std::vector<re2::StringPiece> groups(static_cast<std::size_t>(re.NumberOfCapturingGroups()) + 1);
    std::vector<std::optional<std::string>> matches;
    std::size_t pos = 0;
    while (pos <= response.size() &&
           re.Match(response, pos, response.size(), re2::RE2::UNANCHORED, groups.data(),
                    static_cast<int>(groups.size()))) {
        matches.push_back(found(groups));
        const auto end = static_cast<std::size_t>(groups[0].data() - response.data()) + groups[0].size();
        // After an empty match findall moves on by one character.
        pos = groups[0].empty() ? end + (end < response.size() ? utf8::sequence_length(response, end) : 1) : end;
    }
    if (matches.empty()) return filter.fallback;
    const auto n = static_cast<long>(matches.size());
    const long i = filter.group_select < 0 ? filter.group_select + n : filter.group_select;
    if (i < 0 || i >= n || !matches[static_cast<std::size_t>(i)]) return filter.fallback;
    return python_strip(*matches[static_cast<std::size_t>(i)]);
}

bool lm_eval_exact_match(const LmEvalMatch & match, const std::string & output, const std::string & gold) {
    std::string prediction = output;
    for (const auto & f : match.filters) prediction = apply_regex_filter(f, prediction);
    std::string reference = gold;
    auto normalize = [&](std::string & s) {
        std::string out;
        for (const char c : s) {
            const auto u = static_cast<unsigned char>(c);
            // string.punctuation and string.digits are ASCII; lower() folds ASCII here (Python folds all of Unicode).
            if (match.ignore_punctuation && std::ispunct(u)) continue;
            if (match.ignore_numbers && std::isdigit(u)) continue;
            out += match.ignore_case ? static_cast<char>(std::tolower(u)) : c;
        }
        s = std::move(out);
    };
    normalize(prediction);
    normalize(reference);
    return prediction == reference;
}

}  // namespace switchyard::eval
