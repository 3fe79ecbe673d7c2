#include "eval/lm_eval_task.h"

#include "eval/doc_template.h"
#include "eval/lm_eval_data.h"
#include "eval/python_random.h"
#include "support/error.h"
#include "support/atomic_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace switchyard::eval {

namespace {

using nlohmann::json;

// A config key's value and where it was written ("FILE:LINE"), for errors that name both.
struct Entry {
    json value;
    std::string where;
};
using Config = std::map<std::string, Entry>;

[[noreturn]] void fail(const Config & c, const std::string & key, const std::string & message) {
    const auto it = c.find(key);
    throw Error("{}: {}: {}", it != c.end() ? it->second.where : "task", key, message);
}

// A plain YAML scalar typed as PyYAML (YAML 1.1) types it; a quoted one is a string.
json scalar(const YAML::Node & n) {
    const std::string & s = n.Scalar();
    if (n.Tag() == "!") return s;
    static const std::set<std::string> nulls{"", "~", "null", "Null", "NULL"};
    static const std::set<std::string> trues{"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const std::set<std::string> falses{"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    if (nulls.contains(s)) return nullptr;
    if (trues.contains(s)) return true;
    if (falses.contains(s)) return false;
    static const re2::RE2 integer(R"([-+]?(0|[1-9][0-9_]*))");
    static const re2::RE2 number(R"([-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?)");
    std::string digits = s;
    std::erase(digits, '_');
    if (re2::RE2::FullMatch(s, integer)) return std::stoll(digits);
    if (s != "." && re2::RE2::FullMatch(s, number)) return std::stod(digits);
    return s;
}

json to_json(const YAML::Node & n, const std::string & where, const std::string & key) {
    if (n.Tag() == "!function")
        throw Error(
            "{}: {}: a Python function (!function {}) cannot run here: write the field as a template or a field name",
            where, key, n.Scalar());
    switch (n.Type()) {
        case YAML::NodeType::Sequence: {
            json out = json::array();
            for (std::size_t i = 0; i < n.size(); ++i)
                out.push_back(to_json(n[i], where, fmt::format("{}[{}]", key, i)));
            return out;
        }
        case YAML::NodeType::Map: {
            json out = json::object();
            for (const auto & kv : n)
                out[kv.first.as<std::string>()] = to_json(kv.second, where, key + "." + kv.first.as<std::string>());
            return out;
        }
        case YAML::NodeType::Scalar: return scalar(n);
        default: return nullptr;
    }
}

// The task file with its includes merged in lm-eval's order: included files first, in order, then
// the file's own keys, which win.
Config load_config(const std::filesystem::path & file, std::set<std::filesystem::path> & seen) {
    const auto path = std::filesystem::weakly_canonical(std::filesystem::absolute(file));
    if (!seen.insert(path).second) throw Error("{}: include: the file includes itself", file.string());
    YAML::Node root;
    try {
        root = YAML::Load(read_whole_file(file, "lm-eval task"));
    } catch (const YAML::Exception & e) {
        throw Error("{}:{}: not valid YAML: {}", file.string(), e.mark.line + 1, e.msg);
    }
    if (!root.IsMap()) throw Error("{}: expected a mapping of lm-eval task keys", file.string());
    Config own;
    for (const auto & kv : root) {
        const auto key = kv.first.as<std::string>();
        const std::string where = fmt::format("{}:{}", file.string(), kv.second.Mark().line + 1);
        own[key] = {to_json(kv.second, where, key), where};
    }
    Config merged;
    if (const auto it = own.find("include"); it != own.end()) {
        std::vector<std::string> includes;
        if (it->second.value.is_string())
            includes.push_back(it->second.value);
        else if (it->second.value.is_array() &&
                 std::all_of(it->second.value.begin(), it->second.value.end(),
                             [](const json & j) { return j.is_string(); }))
            includes = it->second.value.get<std::vector<std::string>>();
        else
            fail(own, "include", "must be a file name or a list of them");
        for (const auto & inc : includes) {
            const std::filesystem::path p =
                std::filesystem::path(inc).is_absolute() ? std::filesystem::path(inc) : path.parent_path() / inc;
            if (!std::filesystem::exists(p)) fail(own, "include", fmt::format("no such file: {}", p.string()));
            auto sub = load_config(p, seen);
            sub.erase("task_list");
            for (auto & [k, v] : sub) merged[k] = std::move(v);
        }
        own.erase("include");
    }
    for (auto & [k, v] : own) merged[k] = std::move(v);
    seen.erase(path);
    return merged;
}

const json * get(const Config & c, const std::string & key) {
    const auto it = c.find(key);
    return it == c.end() || it->second.value.is_null() ? nullptr : &it->second.value;
}

std::string string_of(const Config & c, const std::string & key, const std::string & fallback) {
    const json * v = get(c, key);
    if (v == nullptr) return fallback;
    if (!v->is_string()) fail(c, key, "must be a string");
    return *v;
}

std::optional<std::string> optional_string(const Config & c, const std::string & key) {
    if (get(c, key) == nullptr) return std::nullopt;
    return string_of(c, key, "");
}

// What a task may say, as lm-eval's TaskConfig lists it: refused (with the reason), ignored
// (bookkeeping that does not change a score), or read below.
void check_keys(const Config & c) {
    static const std::map<std::string, std::string> refused{
        {"custom_dataset", "a Python dataset builder cannot run here"},
        {"process_docs", "a Python function cannot run here: write the processed documents to a JSON lines file"},
        {"process_results", "a Python function cannot run here"},
        {"use_prompt", "promptsource prompts are not read: write the prompt as doc_to_text"},
        {"doc_to_image", "images are not supported"},
        {"doc_to_audio", "audio is not supported"},
        {"gen_prefix", "not supported"},
        {"group", "a group of tasks: convert each task's YAML on its own"},
        {"task_list", "a group of tasks: convert each task's YAML on its own"},
        {"class", "a Python task class cannot run here"},
    };
    static const std::set<std::string> known{"task",
                                             "task_alias",
                                             "tag",
                                             "dataset_path",
                                             "dataset_name",
                                             "dataset_kwargs",
                                             "training_split",
                                             "validation_split",
                                             "test_split",
                                             "fewshot_split",
                                             "doc_to_text",
                                             "doc_to_target",
                                             "doc_to_choice",
                                             "unsafe_code",
                                             "description",
                                             "target_delimiter",
                                             "fewshot_delimiter",
                                             "fewshot_config",
                                             "num_fewshot",
                                             "metric_list",
                                             "output_type",
                                             "generation_kwargs",
                                             "repeats",
                                             "filter_list",
                                             "should_decontaminate",
                                             "doc_to_decontamination_query",
                                             "metadata"};
    for (const auto & [key, entry] : c) {
        if (const auto r = refused.find(key); r != refused.end()) {
            if (!entry.value.is_null()) fail(c, key, r->second);
        } else if (!known.contains(key)) {
            fail(c, key, "not a key of lm-eval's task format");
        }
    }
}

// Python's str.isdigit for the strings templates give (ASCII digits).
bool is_digits(const std::string & s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// Python's str() of a document value, as lm-eval casts a target for exact_match.
std::string python_str(const json & v) {
    if (v.is_string()) return v;
    if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
    if (v.is_null()) return "None";
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (d == static_cast<double>(static_cast<long long>(d))) return fmt::format("{}.0", static_cast<long long>(d));
        return fmt::format("{}", d);
    }
    return v.dump();
}

// The task's templates applied to documents, as lm-eval's ConfigurableTask does.
class Templates {
public:
    explicit Templates(const Config & c) : c_(c), has_choice_(get(c, "doc_to_choice") != nullptr) {}

    json render(const std::string & key, const std::string & source, const json & doc) const {
        try {
            return render_doc_template(source, doc);
        } catch (const Error & e) {
            fail(c_, key, fmt::format("the template fails on a document: {}", e.what()));
        }
    }

    // doc_to_text: a number, a field's value, or the rendered template (digits become a number
    // when the task has choices).
    json text(const json & spec, const json & doc, const std::string & key = "doc_to_text") const {
        if (spec.is_number_integer()) return spec;
        if (!spec.is_string()) fail(c_, key, "must be a template or a field name");
        const std::string s = spec;
        if (doc.contains(s)) return doc[s];
        json out = render(key, s, doc);
        if (out.is_string() && is_digits(out) && has_choice_) return std::stoll(out.get<std::string>());
        return out;
    }

    // doc_to_target: as doc_to_text, and a rendered "[...]" list stays a list.
    json target(const json & spec, const json & doc, const std::string & key = "doc_to_target") const {
        if (spec.is_array()) return spec;
        return text(spec, doc, key);
    }

    std::vector<std::string> choices(const json & spec, const json & doc,
                                     const std::string & key = "doc_to_choice") const {
        json list;
        if (spec.is_array())
            list = spec;
        else if (spec.is_object()) {
            list = json::array();
            for (const auto & [k, v] : spec.items()) list.push_back(v);
        } else if (spec.is_string() && doc.contains(spec.get<std::string>()))
            list = doc[spec.get<std::string>()];
        else if (spec.is_string())
            list = render(key, spec, doc);
        if (!list.is_array())
            fail(
                c_, key,
                "must give a list of choices (a list, a field holding one, or a template of one expression such as \"{{[a, b]}}\")");
        std::vector<std::string> out;
        for (const auto & e : list) {
            if (!e.is_string()) fail(c_, key, fmt::format("gives a choice that is not a string: {}", e.dump()));
            out.push_back(e);
        }
        return out;
    }

private:
    const Config & c_;
    bool has_choice_;
};

std::filesystem::path resolve(const std::filesystem::path & base, const std::string & file) {
    const std::filesystem::path p(file);
    return p.is_absolute() ? p : base / p;
}

// data_files as datasets reads them: one file or a list (the split "train"), or split -> file(s).
std::map<std::string, std::vector<std::filesystem::path>> data_files(const Config & c,
                                                                     const std::filesystem::path & base) {
    const json * kwargs = get(c, "dataset_kwargs");
    if (kwargs == nullptr || !kwargs->is_object() || !kwargs->contains("data_files"))
        fail(c, "dataset_kwargs", "give data_files: the local files that hold the documents");
    for (const auto & [k, v] : kwargs->items())
        if (k != "data_files" && k != "sample_by")
            fail(c, "dataset_kwargs", fmt::format("'{}' is not supported (data_files; sample_by for text)", k));
    auto files = [&](const json & v) {
        std::vector<std::filesystem::path> out;
        for (const auto & f : v.is_array() ? v : json::array({v})) {
            if (!f.is_string()) fail(c, "dataset_kwargs", "data_files must name files");
            out.push_back(resolve(base, f));
        }
        return out;
    };
    const json & d = (*kwargs)["data_files"];
    std::map<std::string, std::vector<std::filesystem::path>> out;
    if (d.is_object()) {
        for (const auto & [split, v] : d.items()) out[split] = files(v);
    } else {
        out["train"] = files(d);
    }
    return out;
}

struct Fewshot {
    std::string sampler = "default";
    std::optional<std::string> split;
    json doc_to_text, doc_to_choice, doc_to_target;
    std::string target_delimiter, fewshot_delimiter;
    std::optional<std::vector<std::size_t>> indices;
    std::optional<std::vector<json>> samples;
};

Fewshot fewshot_config(const Config & c, const std::string & target_delimiter, const std::string & fewshot_delimiter) {
    Fewshot f{.sampler = "default",
              .split = optional_string(c, "fewshot_split"),
              .doc_to_text = c.count("doc_to_text") ? c.at("doc_to_text").value : json(),
              .doc_to_choice = c.count("doc_to_choice") ? c.at("doc_to_choice").value : json(),
              .doc_to_target = c.count("doc_to_target") ? c.at("doc_to_target").value : json(),
              .target_delimiter = target_delimiter,
              .fewshot_delimiter = fewshot_delimiter,
              .indices = std::nullopt,
              .samples = std::nullopt};
    const json * cfg = get(c, "fewshot_config");
    if (cfg == nullptr) return f;
    if (!cfg->is_object()) fail(c, "fewshot_config", "must be a mapping");
    for (const auto & [k, v] : cfg->items()) {
        if (v.is_null()) continue;
        if (k == "sampler") {
            if (!v.is_string() || (v != "default" && v != "first_n"))
                fail(c, "fewshot_config", "sampler must be default or first_n");
            f.sampler = v;
        } else if (k == "split") {
            if (!v.is_string()) fail(c, "fewshot_config", "split must be a split's name");
            f.split = v.get<std::string>();
        } else if (k == "doc_to_text")
            f.doc_to_text = v;
        else if (k == "doc_to_choice")
            f.doc_to_choice = v;
        else if (k == "doc_to_target")
            f.doc_to_target = v;
        else if (k == "target_delimiter" && v.is_string())
            f.target_delimiter = v;
        else if (k == "fewshot_delimiter" && v.is_string())
            f.fewshot_delimiter = v;
        else if (k == "fewshot_indices" && v.is_array())
            f.indices = v.get<std::vector<std::size_t>>();
        else if (k == "samples" && v.is_array())
            f.samples = v.get<std::vector<json>>();
        else
            fail(c, "fewshot_config", fmt::format("'{}' is not supported here", k));
    }
    return f;
}

// lm-eval's metric_list (or its defaults for the output type), checked against what the suite
// computes; metrics it does not compute are noted. Returns exact_match's options.
LmEvalMatch read_metrics(const Config & c, const std::string & output_type, LmEvalSuite & suite) {
    LmEvalMatch match;
    const std::map<std::string, std::vector<std::string>> defaults{{"multiple_choice", {"acc", "acc_norm"}},
                                                                   {"loglikelihood", {"perplexity", "acc"}},
                                                                   {"generate_until", {"exact_match"}}};
    std::vector<json> list;
    if (const json * m = get(c, "metric_list")) {
        if (!m->is_array()) fail(c, "metric_list", "must be a list of {metric: NAME}");
        list = m->get<std::vector<json>>();
    } else {
        for (const auto & name : defaults.at(output_type)) list.push_back({{"metric", name}});
    }
    const std::map<std::string, std::set<std::string>> computed{
        {"multiple_choice", {"acc", "acc_norm"}}, {"loglikelihood", {"acc"}}, {"generate_until", {"exact_match"}}};
    for (std::size_t i = 0; i < list.size(); ++i) {
        const json & m = list[i];
        if (!m.is_object() || !m.contains("metric") || !m["metric"].is_string())
            fail(c, "metric_list", fmt::format("entry {} must say metric: NAME", i));
        const std::string name = m["metric"];
        if (output_type == "loglikelihood" && name == "perplexity") {
            suite.notes.push_back(
                "perplexity: not computed (the suite measures acc); switchyard eval --text FILE measures perplexity");
            continue;
        }
        if (!computed.at(output_type).contains(name))
            fail(c, "metric_list",
                 fmt::format("metric '{}' is not computed for output_type {} (supported: {})", name, output_type,
                             fmt::join(computed.at(output_type), ", ")));
        for (const auto & [k, v] : m.items()) {
            if (k == "metric" || k == "aggregation" || k == "higher_is_better") continue;
            const bool flag = name == "exact_match" &&
                (k == "ignore_case" || k == "ignore_punctuation" || k == "ignore_numbers") && v.is_boolean();
            if (!flag) fail(c, "metric_list", fmt::format("metric '{}': option '{}' is not supported", name, k));
            (k == "ignore_case"              ? match.ignore_case
                 : k == "ignore_punctuation" ? match.ignore_punctuation
                                             : match.ignore_numbers) = v.get<bool>();
        }
        if (std::find(suite.metrics.begin(), suite.metrics.end(), name) == suite.metrics.end())
            suite.metrics.push_back(name);
    }
    if (suite.metrics.empty()) fail(c, "metric_list", "names no metric the suite can compute");
    return match;
}

// filter_list: one pipeline of `regex` and `take_first` steps (a generation has one response, so
// take_first keeps it as it is).
std::vector<LmEvalRegex> read_filters(const Config & c) {
    const json * f = get(c, "filter_list");
    if (f == nullptr) return {};
    if (!f->is_array() || f->size() != 1 || !(*f)[0].is_object() || !(*f)[0].contains("filter") ||
        !(*f)[0]["filter"].is_array())
        fail(c, "filter_list", "must hold exactly one pipeline {name, filter: [...]} (a suite scores one)");
    std::vector<LmEvalRegex> out;
    for (const auto & step : (*f)[0]["filter"]) {
        const std::string function = step.is_object() ? step.value("function", "") : "";
        if (function == "take_first") continue;
        if (function != "regex")
            fail(c, "filter_list", fmt::format("filter function '{}' is not supported (regex, take_first)", function));
        LmEvalRegex r{.pattern = R"(#### (\-?[0-9\.\,]+))", .group_select = 0, .fallback = "[invalid]"};
        for (const auto & [k, v] : step.items()) {
            if (k == "function") continue;
            if (k == "regex_pattern" && v.is_string())
                r.pattern = v;
            else if (k == "group_select" && v.is_number_integer())
                r.group_select = v;
            else if (k == "fallback" && v.is_string())
                r.fallback = v;
            else
                fail(c, "filter_list", fmt::format("regex option '{}' is not supported", k));
        }
        const re2::RE2 check(r.pattern, re2::RE2::Quiet);
        if (!check.ok())
            fail(c, "filter_list",
                 fmt::format("regex_pattern '{}' does not compile as RE2 (no look-around or back-references): {}",
                             r.pattern, check.error()));
        out.push_back(std::move(r));
    }
    return out;
}

struct Generation {
    std::vector<std::string> until;
    int max_gen_toks = 256;  // lm-eval's DEFAULT_MAX_GEN_TOKS
};

Generation read_generation(const Config & c, const std::string & fewshot_delimiter) {
    Generation g{.until = {fewshot_delimiter}, .max_gen_toks = 256};
    const json * k = get(c, "generation_kwargs");
    if (k == nullptr) return g;
    if (!k->is_object()) fail(c, "generation_kwargs", "must be a mapping");
    for (const auto & [key, v] : k->items()) {
        if (key == "until") {
            if (v.is_string())
                g.until = {v.get<std::string>()};
            else if (v.is_array() && std::all_of(v.begin(), v.end(), [](const json & s) { return s.is_string(); }))
                g.until = v.get<std::vector<std::string>>();
            else
                fail(c, "generation_kwargs", "until must be a string or a list of strings");
        } else if (key == "max_gen_toks" && v.is_number_integer() && v.get<int>() > 0) {
            g.max_gen_toks = v;
        } else if ((key == "do_sample" && v == false) ||
                   (key == "temperature" && v.is_number() && v.get<double>() == 0.0)) {
            continue;
        } else if (key == "do_sample" || key == "temperature") {
            fail(c, "generation_kwargs",
                 "sampling is not supported: suites generate greedily (do_sample: false, temperature: 0)");
        } else {
            fail(c, "generation_kwargs",
                 fmt::format("'{}' is not supported (until, max_gen_toks, do_sample: false, temperature: 0)", key));
        }
    }
    return g;
}

// `sample_by` ("line" or "paragraph"): how the text loader cuts documents.
std::vector<json> read_docs(const std::string & format, const std::string & sample_by,
                            const std::vector<std::filesystem::path> & files) {
    std::vector<json> docs;
    for (const auto & f : files) {
        if (!std::filesystem::exists(f)) throw Error("{}: no such data file (dataset_kwargs.data_files)", f.string());
        auto part = format == "csv" ? read_csv_docs(f)
            : format == "text"      ? read_text_docs(f, sample_by == "paragraph")
                                    : read_json_docs(f);
        docs.insert(docs.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    return docs;
}

}  // namespace

LmEvalSuite build_lm_eval_suite(const LmEvalOptions & options) {
    std::set<std::filesystem::path> seen;
    if (!std::filesystem::exists(options.task)) throw Error("{}: no such task file", options.task.string());
    const Config c = load_config(options.task, seen);
    check_keys(c);
    if (!doc_templates_available()) render_doc_template("", json::object());  // says what the build lacks

    LmEvalSuite suite;
    suite.name = string_of(c, "task", options.task.stem().string());
    suite.output_type = string_of(c, "output_type", "generate_until");
    if (suite.output_type == "loglikelihood_rolling")
        fail(c, "output_type",
             "loglikelihood_rolling (perplexity) is not a suite: measure it with switchyard eval -m MODEL --text FILE");
    if (suite.output_type != "multiple_choice" && suite.output_type != "loglikelihood" &&
        suite.output_type != "generate_until")
        fail(c, "output_type",
             fmt::format("'{}' is not one of multiple_choice, loglikelihood, generate_until", suite.output_type));
    if (const json * r = get(c, "repeats"); r != nullptr && *r != 1)
        fail(c, "repeats", "only 1 is supported (suites generate greedily)");

    const std::string format = string_of(c, "dataset_path", "");
    if (format == "parquet")
        fail(
            c, "dataset_path",
            "parquet cannot be read here (no Parquet library): convert the files to JSON lines and say dataset_path: json");
    if (format != "json" && format != "csv" && format != "text")
        fail(
            c, "dataset_path",
            fmt::format(
                "'{}' is not local data: download it, save it as JSON lines and say dataset_path: json with dataset_kwargs.data_files",
                format));
    const json * kwargs = get(c, "dataset_kwargs");
    const std::string sample_by =
        kwargs && kwargs->is_object() && kwargs->contains("sample_by") && (*kwargs)["sample_by"].is_string()
        ? (*kwargs)["sample_by"].get<std::string>()
        : "line";
    if (kwargs && kwargs->is_object() && kwargs->contains("sample_by") &&
        (format != "text" || (sample_by != "line" && sample_by != "paragraph")))
        fail(c, "dataset_kwargs", "sample_by must be line or paragraph, with dataset_path: text");
    const auto base =
        options.data_dir.empty() ? std::filesystem::absolute(options.task).parent_path() : options.data_dir;
    const auto splits = data_files(c, base);
    const auto test_split = optional_string(c, "test_split");
    const auto validation_split = optional_string(c, "validation_split");
    const auto training_split = optional_string(c, "training_split");
    const std::string split = !options.split.empty() ? options.split
        : test_split                                 ? *test_split
        : validation_split                           ? *validation_split
                                                     : "";
    if (split.empty())
        fail(c, "test_split", "give test_split or validation_split (the documents to evaluate), or --split");
    auto split_docs = [&](const std::string & name, const std::string & key) {
        const auto it = splits.find(name);
        if (it == splits.end()) fail(c, key, fmt::format("split '{}' is not in dataset_kwargs.data_files", name));
        return read_docs(format, sample_by, it->second);
    };
    std::vector<json> docs =
        split_docs(split, options.split.empty() ? (test_split ? "test_split" : "validation_split") : "test_split");
    if (docs.empty()) fail(c, "dataset_kwargs", fmt::format("split '{}' holds no documents", split));
    if (options.limit > 0 && docs.size() > options.limit) docs.resize(options.limit);

    const std::string target_delimiter = string_of(c, "target_delimiter", " ");
    const std::string fewshot_delimiter = string_of(c, "fewshot_delimiter", "\n\n");
    const Templates t(c);
    const json text_spec = get(c, "doc_to_text") ? c.at("doc_to_text").value : json();
    const json target_spec = get(c, "doc_to_target") ? c.at("doc_to_target").value : json();
    const json choice_spec = get(c, "doc_to_choice") ? c.at("doc_to_choice").value : json();
    if (text_spec.is_null()) fail(c, "doc_to_text", "missing");
    if (target_spec.is_null()) fail(c, "doc_to_target", "missing");
    if (suite.output_type == "multiple_choice" && choice_spec.is_null())
        fail(c, "doc_to_choice", "missing (multiple_choice needs the choices)");
    const std::string description = string_of(c, "description", "");

    const json * shots_value = get(c, "num_fewshot");
    if (shots_value != nullptr && (!shots_value->is_number_integer() || *shots_value < 0))
        fail(c, "num_fewshot", "must be a whole number");
    const auto shots = shots_value ? shots_value->get<std::size_t>() : std::size_t{0};
    const Fewshot fs = fewshot_config(c, target_delimiter, fewshot_delimiter);
    std::vector<json> pool;
    if (shots > 0) {
        // lm-eval's fewshot_docs: the few-shot split, else given samples, else training, validation, test.
        if (fs.split)
            pool = split_docs(*fs.split, "fewshot_split");
        else if (fs.samples)
            pool = *fs.samples;
        else if (training_split)
            pool = split_docs(*training_split, "training_split");
        else if (validation_split)
            pool = split_docs(*validation_split, "validation_split");
        else if (test_split)
            pool = split_docs(*test_split, "test_split");
        if (fs.indices) {
            std::vector<json> picked;
            for (const auto i : *fs.indices) {
                if (i >= pool.size())
                    fail(c, "fewshot_config",
                         fmt::format("fewshot_indices: {} is past the {} few-shot documents", i, pool.size()));
                picked.push_back(pool[i]);
            }
            pool = std::move(picked);
        }
    }
    // lm-eval leaves the evaluated document out of its own examples when the few-shot split is the
    // test split (drawing one more to make up for it).
    const bool exclude_self = fs.split == test_split;
    if (shots > 0 && pool.size() < shots + (exclude_self && fs.sampler == "default" ? 1 : 0))
        fail(c, "num_fewshot",
             fmt::format("{} examples asked for, the few-shot documents hold {}", shots, pool.size()));
    PythonRandom rnd(options.fewshot_seed);

    const LmEvalMatch metrics = read_metrics(c, suite.output_type, suite);
    LmEvalMatch match = metrics;
    if (suite.output_type == "generate_until")
        match.filters = read_filters(c);
    else if (get(c, "filter_list"))
        fail(c, "filter_list", "filters apply to generate_until tasks only");
    const Generation gen = suite.output_type == "generate_until" ? read_generation(c, fewshot_delimiter) : Generation{};
    if (suite.output_type != "generate_until" && get(c, "generation_kwargs"))
        fail(c, "generation_kwargs", "applies to generate_until tasks only");

    auto answer_text = [&](const json & a, const std::optional<std::vector<std::string>> & choices) -> std::string {
        if (choices && a.is_number_integer()) {
            const auto i = a.get<long long>();
            if (i < 0 || static_cast<std::size_t>(i) >= choices->size())
                fail(c, "doc_to_target", fmt::format("index {} is past the {} choices", i, choices->size()));
            return (*choices)[static_cast<std::size_t>(i)];
        }
        if (a.is_array() && !a.empty() && a[0].is_string()) return a[0];
        if (!a.is_string())
            fail(c, "doc_to_target", fmt::format("a few-shot answer must be a string, found {}", a.dump()));
        return a;
    };

    json header = {{"suite", {{"name", suite.name}}}};
    suite.jsonl = header.dump() + "\n";
    for (std::size_t d = 0; d < docs.size(); ++d) {
        const json & doc = docs[d];
        std::string context = description.empty() ? "" : python_str(t.text(description, doc, "description"));
        if (shots > 0) {
            std::vector<json> examples;
            if (fs.sampler == "first_n") {
                for (const auto & x : pool)
                    if (examples.size() < shots && !(exclude_self && x == doc)) examples.push_back(x);
            } else if (!exclude_self) {
                for (const auto i : rnd.sample(pool.size(), shots)) examples.push_back(pool[i]);
            } else {
                for (const auto i : rnd.sample(pool.size(), shots + 1))
                    if (pool[i] != doc) examples.push_back(pool[i]);
                examples.resize(std::min(examples.size(), shots));
            }
            if (examples.size() != shots)
                fail(c, "num_fewshot",
                     fmt::format("{} examples asked for, {} available for document {}", shots, examples.size(), d + 1));
            for (const auto & ex : examples) {
                const json q = t.text(fs.doc_to_text, ex);
                if (!q.is_string()) fail(c, "doc_to_text", "gives a number (lm-eval's multiple inputs): not supported");
                std::optional<std::vector<std::string>> ch;
                if (!fs.doc_to_choice.is_null()) ch = t.choices(fs.doc_to_choice, ex);
                const json a = t.target(fs.doc_to_target, ex);
                const bool has_answer = !a.is_null() && a != "";
                context += q.get<std::string>();
                if (has_answer) context += fs.target_delimiter + answer_text(a, ch) + fs.fewshot_delimiter;
            }
        }
        const json q = t.text(text_spec, doc);
        if (!q.is_string())
            fail(c, "doc_to_text",
                 fmt::format("gives {} for document {}, not a string (lm-eval's multiple inputs are not supported)",
                             q.dump(), d + 1));
        context += q.get<std::string>();
        const json target = t.target(target_spec, doc);
        std::optional<std::vector<std::string>> choices;
        if (!choice_spec.is_null()) choices = t.choices(choice_spec, doc);
        if (target.is_array()) fail(c, "doc_to_target", "gives a list (several right answers): not supported");

        json item;
        if (suite.output_type == "multiple_choice") {
            long long gold = -1;
            if (target.is_number_integer())
                gold = target.get<long long>();
            else if (target.is_string()) {
                const auto it = std::find(choices->begin(), choices->end(), target.get<std::string>());
                gold = it == choices->end() ? -1 : it - choices->begin();
            }
            if (gold < 0 || static_cast<std::size_t>(gold) >= choices->size())
                fail(c, "doc_to_target",
                     fmt::format("gives {} for document {}: not one of its {} choices", target.dump(), d + 1,
                                 choices->size()));
            item = {{"kind", "multiple_choice"}, {"scoring", "lm-eval"},
                    {"context", context},        {"target_delimiter", target_delimiter},
                    {"choices", *choices},       {"answer", gold}};
        } else if (suite.output_type == "loglikelihood") {
            if (!target.is_string())
                fail(c, "doc_to_target",
                     fmt::format("gives {} for document {}: loglikelihood needs a string", target.dump(), d + 1));
            item = {{"kind", "loglikelihood"}, {"scoring", "lm-eval"}, {"context", context}, {"continuation", target}};
        } else {
            const std::string gold = choices ? answer_text(target, choices) : python_str(target);
            item = {{"kind", "generation"}, {"scoring", "lm-eval"},           {"prompt", context},
                    {"answer", gold},       {"max_tokens", gen.max_gen_toks}, {"stop", gen.until}};
            if (!match.filters.empty()) {
                json filters = json::array();
                for (const auto & f : match.filters)
                    filters.push_back({{"function", "regex"},
                                       {"regex_pattern", f.pattern},
                                       {"group_select", f.group_select},
                                       {"fallback", f.fallback}});
                item["filter"] = filters;
            }
            if (match.ignore_case) item["ignore_case"] = true;
            if (match.ignore_punctuation) item["ignore_punctuation"] = true;
            if (match.ignore_numbers) item["ignore_numbers"] = true;
        }
        suite.jsonl += item.dump() + "\n";
        ++suite.items;
    }
    return suite;
}

}  // namespace switchyard::eval
