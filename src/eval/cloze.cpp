#include "eval/cloze.h"

#include "support/atomic_file.h"
#include "support/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

namespace switchyard::eval {

namespace {

// Uniform integer in [0, n) from the generator's raw output: std::uniform_int_distribution
// differs between standard libraries, and a suite must be the same everywhere.
std::size_t draw(std::mt19937_64 & rng, std::size_t n) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t x;
    do {
        x = rng();
    } while (x >= limit);
    return static_cast<std::size_t>(x % n);
}

bool is_word(const std::string & w) {
    return w.size() >= 3 && std::all_of(w.begin(), w.end(), [](unsigned char c) { return std::isalpha(c) != 0; });
}

}  // namespace

std::string build_cloze(const ClozeOptions & o) {
    if (o.choices < 2) throw Error("cloze: --choices must be at least 2");
    const std::string bytes = read_whole_file(o.text, "text");

    // Passages are separated by blank lines; words by whitespace.
    std::vector<std::vector<std::string>> passages;
    std::istringstream lines(bytes);
    std::vector<std::string> current;
    int seen = 0;
    for (std::string line; std::getline(lines, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
            if (!current.empty() && seen++ >= o.skip_passages) passages.push_back(std::move(current));
            current.clear();
            continue;
        }
        std::istringstream words(line);
        for (std::string w; words >> w;) current.push_back(w);
    }
    if (!current.empty() && seen >= o.skip_passages) passages.push_back(std::move(current));

    // Candidate blanks: a plain word with at least a few words of context before it.
    struct Blank {
        std::size_t passage, word;
    };
    std::vector<Blank> blanks;
    std::set<std::string> vocabulary;
    for (std::size_t p = 0; p < passages.size(); ++p) {
        for (std::size_t w = 0; w < passages[p].size(); ++w) {
            if (!is_word(passages[p][w])) continue;
            vocabulary.insert(passages[p][w]);
            if (w >= 5) blanks.push_back({p, w});
        }
    }
    const std::vector<std::string> words(vocabulary.begin(), vocabulary.end());
    if (blanks.size() < o.items || words.size() < static_cast<std::size_t>(o.choices)) {
        throw Error("cloze: {} has {} usable blanks; {} asked for", o.text.string(), blanks.size(), o.items);
    }

    std::mt19937_64 rng(o.seed);
    // A partial Fisher-Yates shuffle picks distinct blanks.
    for (std::size_t i = 0; i < o.items; ++i) std::swap(blanks[i], blanks[i + draw(rng, blanks.size() - i)]);
    std::string out = nlohmann::json({{"suite", {{"name", "cloze-" + o.text.stem().string()}}}}).dump() + "\n";
    for (std::size_t i = 0; i < o.items; ++i) {
        const auto & passage = passages[blanks[i].passage];
        const std::size_t at = blanks[i].word;
        const std::size_t from = at > static_cast<std::size_t>(o.context_words) ? at - o.context_words : 0;
        std::string context;
        for (std::size_t w = from; w < at; ++w) context += (context.empty() ? "" : " ") + passage[w];
        const std::string & answer = passage[at];
        std::vector<std::string> choices = {answer};
        while (choices.size() < static_cast<std::size_t>(o.choices)) {
            const std::string & candidate = words[draw(rng, words.size())];
            if (std::find(choices.begin(), choices.end(), candidate) == choices.end()) choices.push_back(candidate);
        }
        for (std::size_t c = choices.size() - 1; c > 0; --c) std::swap(choices[c], choices[draw(rng, c + 1)]);
        const auto position = std::find(choices.begin(), choices.end(), answer) - choices.begin();
        for (auto & c : choices) c = " " + c;  // the blank follows a space
        out += nlohmann::json(
                   {{"kind", "multiple_choice"}, {"context", context}, {"choices", choices}, {"answer", position}})
                   .dump() +
            "\n";
    }
    return out;
}

}  // namespace switchyard::eval
