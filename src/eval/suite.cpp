#include "eval/suite.h"

#include "eval/lm_eval_match.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/sha256.h"

#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace switchyard::eval {

namespace {

// A malformed item: the message says which field is wrong; the loader adds the line number.
struct BadItem {
    std::string reason;
};

std::string string_field(const nlohmann::json & j, const char * key) {
    if (!j.contains(key) || !j[key].is_string()) throw BadItem{std::string("field '") + key + "' must be a string"};
    return j[key].get<std::string>();
}

Matcher parse_matcher(const std::string & name) {
    if (name == "exact") return Matcher::exact;
    if (name == "contains") return Matcher::contains;
    if (name == "regex") return Matcher::regex;
    if (name == "number") return Matcher::number;
    throw BadItem{"field 'match' must be exact, contains, regex or number, not '" + name + "'"};
}

// A generation's input: `prompt` (text), or `messages` (a chat, as OpenAI's API takes it).
void read_prompt(const nlohmann::json & j, TaskItem & item) {
    if (j.contains("messages")) {
        const auto & m = j["messages"];
        if (!m.is_array() || m.empty()) throw BadItem{"field 'messages' must be a non-empty list of {role, content}"};
        for (const auto & message : m)
            if (!message.is_object() || !message.contains("role") || !message["role"].is_string())
                throw BadItem{"field 'messages' must be a non-empty list of {role, content}"};
        item.messages = m.dump();
        return;
    }
    item.prompt = string_field(j, "prompt");
}

void read_generation_limits(const nlohmann::json & j, TaskItem & item, std::vector<std::string> default_stop) {
    if (j.contains("max_tokens")) {
        if (!j["max_tokens"].is_number_integer() || j["max_tokens"].get<int>() < 1)
            throw BadItem{"field 'max_tokens' must be a positive integer"};
        item.max_tokens = j["max_tokens"].get<int>();
    }
    if (!j.contains("stop")) {
        item.stop = std::move(default_stop);
        return;
    }
    if (!j["stop"].is_array()) throw BadItem{"field 'stop' must be a list of strings"};
    for (const auto & s : j["stop"]) {
        if (!s.is_string()) throw BadItem{"field 'stop' must be a list of strings"};
        item.stop.push_back(s.get<std::string>());
    }
}

// "scoring": "lm-eval": the fields lm-eval's scoring needs (see TaskItem).
void read_lm_eval(const nlohmann::json & j, TaskItem & item) {
    item.lm_eval = true;
    if (item.kind == ItemKind::multiple_choice)
        item.target_delimiter = j.contains("target_delimiter") ? string_field(j, "target_delimiter") : " ";
    if (item.kind != ItemKind::generation) return;
    if (item.matcher != Matcher::exact)
        throw BadItem{"lm-eval generations are judged by exact_match: field 'match' must be exact"};
    for (const char * flag : {"ignore_case", "ignore_punctuation", "ignore_numbers"})
        if (j.contains(flag) && !j[flag].is_boolean())
            throw BadItem{std::string("field '") + flag + "' must be true or false"};
    item.lm_eval_match.ignore_case = j.value("ignore_case", false);
    item.lm_eval_match.ignore_punctuation = j.value("ignore_punctuation", false);
    item.lm_eval_match.ignore_numbers = j.value("ignore_numbers", false);
    if (!j.contains("filter")) return;
    if (!j["filter"].is_array()) throw BadItem{"field 'filter' must be a list of lm-eval filter steps"};
    for (const auto & f : j["filter"]) {
        const std::string function = f.is_object() ? f.value("function", "") : "";
        if (function == "take_first") continue;
        if (function != "regex" || !f.contains("regex_pattern") || !f["regex_pattern"].is_string())
            throw BadItem{"field 'filter' holds a step other than {function: regex, regex_pattern: ...} or take_first"};
        LmEvalRegex r{.pattern = f["regex_pattern"],
                      .group_select = f.value("group_select", 0),
                      .fallback = f.value("fallback", std::string("[invalid]"))};
        if (!re2::RE2(r.pattern, re2::RE2::Quiet).ok())
            throw BadItem{"field 'filter': regex_pattern is not a valid RE2 regular expression"};
        item.lm_eval_match.filters.push_back(std::move(r));
    }
}

TaskItem parse_native(const nlohmann::json & j) {
    if (!j.is_object()) throw BadItem{"an item must be a JSON object"};
    std::string kind = j.value("kind", "");
    if (kind.empty()) {
        kind = j.contains("choices")                         ? "multiple_choice"
            : j.contains("good")                             ? "pair"
            : j.contains("reference")                        ? "consistency"
            : j.contains("prompt") || j.contains("messages") ? "generation"
                                                             : "";
    }
    TaskItem item;
    if (kind == "multiple_choice") {
        item.kind = ItemKind::multiple_choice;
        item.context = string_field(j, "context");
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() < 2)
            throw BadItem{"field 'choices' must list at least 2 strings"};
        for (const auto & c : j["choices"]) {
            if (!c.is_string() || c.get<std::string>().empty())
                throw BadItem{"field 'choices' must hold non-empty strings only"};
            item.choices.push_back(c.get<std::string>());
        }
        if (!j.contains("answer") || !j["answer"].is_number_integer() || j["answer"].get<int>() < 0 ||
            j["answer"].get<std::size_t>() >= item.choices.size()) {
            throw BadItem{"field 'answer' must be an index into 'choices' (0.." +
                          std::to_string(item.choices.size() - 1) + ")"};
        }
        item.answer = j["answer"].get<int>();
    } else if (kind == "pair") {
        item.kind = ItemKind::pair;
        item.good = string_field(j, "good");
        item.bad = string_field(j, "bad");
    } else if (kind == "generation" || kind == "consistency") {
        item.kind = kind == "generation" ? ItemKind::generation : ItemKind::consistency;
        read_prompt(j, item);
    } else if (kind == "loglikelihood") {
        item.kind = ItemKind::loglikelihood;
        item.context = string_field(j, "context");
        item.continuation = string_field(j, "continuation");
        if (item.continuation.empty()) throw BadItem{"field 'continuation' must not be empty"};
    }
    if (kind == "consistency") {
        item.reference = string_field(j, "reference");
        item.expected = item.reference;
        read_generation_limits(j, item, {});
    } else if (kind == "generation") {
        if (j.contains("answer") && j["answer"].is_number()) {
            item.expected = j["answer"].dump();
        } else {
            item.expected = string_field(j, "answer");
        }
        item.matcher = parse_matcher(j.value("match", "exact"));
        if (item.matcher == Matcher::number) {
            try {
                std::stod(item.expected);
            } catch (const std::exception &) {
                throw BadItem{"field 'answer' must be a number for match 'number'"};
            }
        }
        if (item.matcher == Matcher::regex) {
            const re2::RE2 check(item.expected, re2::RE2::Quiet);
            if (!check.ok()) throw BadItem{"field 'answer' is not a valid RE2 regular expression: " + check.error()};
        }
        // lm-eval's stop strings are its `until`, written into the item; none by default.
        read_generation_limits(j, item,
                               j.contains("scoring") ? std::vector<std::string>{} : std::vector<std::string>{"\n"});
    } else if (kind != "multiple_choice" && kind != "pair" && kind != "loglikelihood") {
        throw BadItem{
            "cannot tell the item's kind: give 'kind' (multiple_choice, pair, generation, consistency, loglikelihood) or its fields"};
    }
    if (j.contains("scoring")) {
        if (j["scoring"] != "lm-eval") throw BadItem{"field 'scoring' must be \"lm-eval\" (or left out)"};
        if (kind != "multiple_choice" && kind != "generation" && kind != "loglikelihood")
            throw BadItem{"\"scoring\": \"lm-eval\" applies to multiple_choice, generation and loglikelihood items"};
        read_lm_eval(j, item);
    }
    if (item.kind == ItemKind::loglikelihood) item.lm_eval = true;
    return item;
}

TaskItem parse_blimp(const nlohmann::json & j) {
    TaskItem item;
    item.kind = ItemKind::pair;
    item.good = string_field(j, "sentence_good");
    item.bad = string_field(j, "sentence_bad");
    return item;
}

// LAMBADA: predict the passage's last word; right when the continuation starts with exactly it.
TaskItem parse_lambada(const nlohmann::json & j) {
    const std::string text = string_field(j, "text");
    const auto cut = text.find_last_of(' ');
    if (cut == std::string::npos || cut + 1 >= text.size()) throw BadItem{"field 'text' has no last word to predict"};
    TaskItem item;
    item.kind = ItemKind::generation;
    item.prompt = text.substr(0, cut);
    // RE2 has no look-ahead: the word ends where the output does or at a non-alphanumeric.
    item.expected = "^\\s*" + re2::RE2::QuoteMeta(text.substr(cut + 1)) + "(?:$|[^A-Za-z0-9])";
    item.matcher = Matcher::regex;
    item.max_tokens = 24;
    item.stop = {"\n"};
    return item;
}

std::string trim(const std::string & s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

TaskSuite load_suite(const std::string & spec) {
    std::string adapter;
    std::string path = spec;
    if (const auto colon = spec.find(':');
        colon != std::string::npos && (spec.rfind("blimp:", 0) == 0 || spec.rfind("lambada:", 0) == 0)) {
        adapter = spec.substr(0, colon);
        path = spec.substr(colon + 1);
    }
    const std::string bytes = read_whole_file(path, "task suite");
    TaskSuite suite;
    suite.spec = spec;
    suite.content_hash = sha256_bytes(adapter + "\n" + bytes);
    const std::string stem = std::filesystem::path(path).stem().string();
    suite.settings.name = adapter.empty() ? stem : adapter + "-" + stem;

    std::istringstream lines(bytes);
    std::size_t number = 0;
    for (std::string line; std::getline(lines, line);) {
        ++number;
        if (trim(line).empty()) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error &) {
            suite.skipped.push_back({number, "not valid JSON"});
            continue;
        }
        if (adapter.empty() && j.is_object() && j.contains("suite")) {
            const auto & s = j["suite"];
            if (!s.is_object()) throw Error("{}:{}: 'suite' must be an object of settings", path, number);
            suite.settings.name = s.value("name", suite.settings.name);
            suite.settings.critical = s.value("critical", false);
            suite.settings.requires_capability = s.value("requires", "");
            continue;
        }
        try {
            TaskItem item = adapter == "blimp" ? parse_blimp(j)
                : adapter == "lambada"         ? parse_lambada(j)
                                               : parse_native(j);
            item.line = number;
            suite.items.push_back(std::move(item));
        } catch (const BadItem & bad) {
            suite.skipped.push_back({number, bad.reason});
        } catch (const nlohmann::json::exception & e) {
            suite.skipped.push_back({number, e.what()});
        }
    }
    if (suite.items.empty()) throw Error("{}: no usable items ({} malformed lines)", path, suite.skipped.size());
    return suite;
}

std::uint64_t order_seed(const TaskSuite & suite) {
    std::uint64_t seed = 0;
    for (std::size_t i = 0; i < 16 && i < suite.content_hash.size(); ++i) {
        const char c = suite.content_hash[i];
        seed = seed * 16 +
            static_cast<std::uint64_t>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                                                                                   : (std::tolower(c) - 'a' + 10) & 15);
    }
    return seed;
}

std::vector<std::size_t> item_order(const TaskSuite & suite) {
    std::vector<std::size_t> order(suite.items.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    // mt19937_64's sequence is fixed by the standard; std::shuffle and the distributions are not.
    std::mt19937_64 rng(order_seed(suite));
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
    return order;
}

TaskSuite select_items(const TaskSuite & suite, const std::vector<std::size_t> & items) {
    TaskSuite out{.settings = suite.settings, .skipped = {}, .spec = suite.spec, .content_hash = suite.content_hash};
    out.items.reserve(items.size());
    for (const std::size_t i : items) out.items.push_back(suite.items.at(i));
    return out;
}

bool matches(const TaskItem & item, const std::string & output) {
    if (item.lm_eval) return lm_eval_exact_match(item.lm_eval_match, output, item.expected);
    switch (item.matcher) {
        case Matcher::exact: return trim(output) == trim(item.expected);
        case Matcher::contains: return output.find(item.expected) != std::string::npos;
        case Matcher::regex: return re2::RE2::PartialMatch(output, re2::RE2(item.expected, re2::RE2::Quiet));
        case Matcher::number: {
            static const re2::RE2 number(R"((-?\d+(?:\.\d+)?))");
            std::string first;
            if (!re2::RE2::PartialMatch(output, number, &first)) return false;
            const double got = std::stod(first);
            const double want = std::stod(item.expected);
            return std::abs(got - want) <= 1e-9 * std::max(1.0, std::abs(want));
        }
    }
    return false;
}

const char * to_string(ItemKind kind) {
    switch (kind) {
        case ItemKind::multiple_choice: return "multiple_choice";
        case ItemKind::pair: return "pair";
        case ItemKind::generation: return "generation";
        case ItemKind::consistency: return "consistency";
        case ItemKind::loglikelihood: return "loglikelihood";
    }
    return "unknown";
}

}  // namespace switchyard::eval
