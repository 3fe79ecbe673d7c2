// lm-eval's YAML tasks as suites: reading the format (templates, includes, few-shot sampling), its
// refusals, and scoring on the real shared models checked against lm-eval's rules computed here
// independently from the raw data (engine tokenize and score, nothing of run_suite's).
#include "decide/plan_file.h"
#include "engine/llama_engine.h"
#include "eval/lm_eval_data.h"
#include "eval/lm_eval_match.h"
#include "eval/lm_eval_task.h"
#include "eval/python_random.h"
#include "eval/run_suite.h"
#include "eval/suite.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <sstream>

using namespace switchyard;
using nlohmann::json;

namespace {

engine::LlamaEngine & babyllama() {
    static engine::LlamaEngine engine({.model_path = test::model_path("babyllama-0.9M-f32.gguf"), .threads = 2});
    return engine;
}

std::filesystem::path examples() { return std::filesystem::path(SWITCHYARD_SOURCE_DIR) / "examples" / "lm-eval"; }
std::filesystem::path shared_data() { return test::data_dir() / "data"; }

std::vector<json> items_of(const std::string & jsonl) {
    std::vector<json> out;
    std::istringstream lines(jsonl);
    for (std::string line; std::getline(lines, line);) {
        auto j = json::parse(line);
        if (!j.contains("suite")) out.push_back(std::move(j));
    }
    return out;
}

eval::TaskSuite suite_of(const eval::LmEvalSuite & built, const test::ScratchDir & dir) {
    const auto file = dir.file(built.name + ".jsonl");
    test::write_file(file, built.jsonl);
    return eval::load_suite(file.string());
}

std::string error_of(const eval::LmEvalOptions & options) {
    try {
        eval::build_lm_eval_suite(options);
    } catch (const Error & e) {
        return e.what();
    }
    return "(no error)";
}

// A task over `docs` (JSON lines in data.jsonl) with `yaml` as its keys.
eval::LmEvalOptions task(const test::ScratchDir & dir, const std::string & yaml, const std::string & docs) {
    test::write_file(dir.file("data.jsonl"), docs);
    test::write_file(dir.file("task.yaml"), yaml);
    return {.task = dir.file("task.yaml")};
}

const std::string kDocs =
    "{\"question\": \"2+2?\", \"choices\": [\"3\", \"4\"], \"label\": 1}\n"
    "{\"question\": \"1+1?\", \"choices\": [\"2\", \"5\"], \"label\": 0}\n";

// lm-eval's TemplateLM.loglikelihood request, written here from its source on the engine alone.
engine::ScoreRequest lm_eval_request(const engine::Engine & e, std::string context, std::string continuation) {
    if (context.empty()) return {e.tokenize("", true), e.tokenize(continuation, false)};
    while (!context.empty() && std::isspace(static_cast<unsigned char>(context.back()))) {
        continuation.insert(continuation.begin(), context.back());
        context.pop_back();
    }
    const auto whole = e.tokenize(context + continuation, false);
    const auto ctx = e.tokenize(context, false);
    return {ctx, std::vector<engine::Token>(whole.begin() + static_cast<std::ptrdiff_t>(ctx.size()), whole.end())};
}

std::size_t chars(const std::string & s) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

}  // namespace

TEST(LmEvalTask, RendersFieldNamesTemplatesIntegerTargetsAndDelimiters) {
    test::ScratchDir dir;
    const auto built = eval::build_lm_eval_suite(task(dir,
                                                      "dataset_path: json\n"
                                                      "dataset_kwargs: {data_files: {test: data.jsonl}}\n"
                                                      "test_split: test\n"
                                                      "output_type: multiple_choice\n"
                                                      "doc_to_text: \"Q: {{question}}\\nA:\"\n"
                                                      "doc_to_target: label\n"
                                                      "doc_to_choice: choices\n"
                                                      "target_delimiter: \"  \"\n",
                                                      kDocs));
    EXPECT_EQ(built.output_type, "multiple_choice");
    EXPECT_EQ(built.name, "task");
    EXPECT_EQ(built.metrics, (std::vector<std::string>{"acc", "acc_norm"}));
    const auto items = items_of(built.jsonl);
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[0]["context"], "Q: 2+2?\nA:");
    EXPECT_EQ(items[0]["choices"], json({"3", "4"}));
    EXPECT_EQ(items[0]["answer"], 1);
    EXPECT_EQ(items[1]["answer"], 0);
    EXPECT_EQ(items[0]["target_delimiter"], "  ");
    EXPECT_EQ(items[0]["scoring"], "lm-eval");

    // A field name as doc_to_text reads the field; a rendered target of digits is a choice index
    // when the task has choices; a list template gives the choices themselves.
    const auto plain = eval::build_lm_eval_suite(task(dir,
                                                      "dataset_path: json\n"
                                                      "dataset_kwargs: {data_files: data.jsonl}\n"
                                                      "validation_split: train\n"
                                                      "output_type: multiple_choice\n"
                                                      "doc_to_text: question\n"
                                                      "doc_to_target: \"{{label}}\"\n"
                                                      "doc_to_choice: \"{{[choices[1], choices[0]]}}\"\n",
                                                      kDocs));
    const auto p = items_of(plain.jsonl);
    EXPECT_EQ(p[0]["context"], "2+2?");
    EXPECT_EQ(p[0]["choices"], json({"4", "3"}));
    EXPECT_EQ(p[0]["answer"], 1);
    EXPECT_EQ(p[0]["target_delimiter"], " ");
}

TEST(LmEvalTask, IncludeMergesWithTheIncludingFileWinning) {
    test::ScratchDir dir;
    test::write_file(dir.file("base.yaml"),
                     "dataset_path: json\noutput_type: multiple_choice\ndoc_to_text: \"base {{question}}\"\n"
                     "doc_to_target: label\ndoc_to_choice: choices\nvalidation_split: train\n");
    const auto built = eval::build_lm_eval_suite(task(
        dir,
        "include: base.yaml\ntask: mine\ndoc_to_text: \"own {{question}}\"\ndataset_kwargs: {data_files: data.jsonl}\n",
        kDocs));
    EXPECT_EQ(built.name, "mine");
    EXPECT_EQ(items_of(built.jsonl)[0]["context"], "own 2+2?");
}

TEST(LmEvalTask, PythonRandomReproducesCPython) {
    // Values printed by CPython 3.11: random.Random(1234).getrandbits(32), .getrandbits(7), ._randbelow(1000).
    eval::PythonRandom r(1234);
    EXPECT_EQ(r.getrandbits(32), 4150886329u);
    EXPECT_EQ(r.getrandbits(7), 99u);
    EXPECT_EQ(r.randbelow(1000), 451u);
    // random.Random(1234): sample(range(10), 3), sample(range(500), 4) (the set strategy), sample(range(30), 8).
    eval::PythonRandom s(1234);
    EXPECT_EQ(s.sample(10, 3), (std::vector<std::size_t>{7, 1, 0}));
    EXPECT_EQ(s.sample(500, 4), (std::vector<std::size_t>{46, 466, 482, 480}));
    EXPECT_EQ(s.sample(30, 8), (std::vector<std::size_t>{25, 18, 1, 21, 22, 2, 3, 11}));
}

TEST(LmEvalTask, FewShotContextsAreLmEvalsWithItsSeed) {
    test::ScratchDir dir;
    std::string docs;
    for (int i = 0; i < 6; ++i)
        docs += json{{"q", "q" + std::to_string(i)}, {"a", "a" + std::to_string(i)}}.dump() + "\n";
    const auto built = eval::build_lm_eval_suite(
        task(dir,
             "dataset_path: json\ndataset_kwargs: {data_files: {test: data.jsonl}}\n"
             "test_split: test\nfewshot_split: test\nnum_fewshot: 2\noutput_type: loglikelihood\n"
             "doc_to_text: q\ndoc_to_target: a\n",
             docs));
    // Printed by Python: rnd = random.Random(1234); per document, rnd.sample(docs, 3) without the
    // document itself, first two, each "q a\n\n", then the document's q.
    const std::vector<std::string> expected{"q3 a3\n\nq4 a4\n\nq0", "q0 a0\n\nq4 a4\n\nq1", "q5 a5\n\nq0 a0\n\nq2",
                                            "q2 a2\n\nq1 a1\n\nq3", "q0 a0\n\nq5 a5\n\nq4", "q4 a4\n\nq3 a3\n\nq5"};
    const auto items = items_of(built.jsonl);
    ASSERT_EQ(items.size(), expected.size());
    for (std::size_t i = 0; i < items.size(); ++i) EXPECT_EQ(items[i]["context"], expected[i]) << i;
    EXPECT_EQ(items[0]["continuation"], "a0");
    EXPECT_EQ(built.notes.size(), 1u);  // perplexity, a default metric of loglikelihood, is not computed
}

TEST(LmEvalTask, RefusesWhatItCannotReproduceInOneLineNamingTheKey) {
    test::ScratchDir dir;
    const std::string ok =
        "dataset_path: json\ndataset_kwargs: {data_files: data.jsonl}\nvalidation_split: train\noutput_type: generate_until\n"
        "doc_to_text: question\ndoc_to_target: label\n";
    EXPECT_NE(error_of(task(dir, ok + "doc_to_choice: !function utils.choices\n", kDocs))
                  .find("doc_to_choice: a Python function (!function utils.choices)"),
              std::string::npos);
    EXPECT_NE(error_of(task(dir, ok + "process_docs: !function utils.process\n", kDocs)).find("process_docs"),
              std::string::npos);
    EXPECT_NE(error_of(task(dir, ok + "doc_to_txet: question\n", kDocs))
                  .find("doc_to_txet: not a key of lm-eval's task format"),
              std::string::npos);
    EXPECT_NE(error_of(task(dir, ok + "filter_list: [{name: x, filter: [{function: majority_vote}]}]\n", kDocs))
                  .find("filter function 'majority_vote'"),
              std::string::npos);
    EXPECT_NE(error_of(task(dir, ok + "metric_list: [{metric: bleu}]\n", kDocs)).find("metric 'bleu'"),
              std::string::npos);
    const auto parquet = error_of(task(dir, "dataset_path: parquet\ndataset_kwargs: {data_files: d.parquet}\n", kDocs));
    EXPECT_NE(parquet.find("dataset_path: parquet cannot be read here"), std::string::npos) << parquet;
    EXPECT_NE(parquet.find("JSON lines"), std::string::npos);
    EXPECT_NE(error_of(task(dir, "dataset_path: json\noutput_type: loglikelihood_rolling\n", kDocs))
                  .find("switchyard eval -m MODEL --text FILE"),
              std::string::npos);
    const auto missing =
        error_of(task(dir,
                      "dataset_path: json\ndataset_kwargs: {data_files: nowhere.jsonl}\nvalidation_split: train\n"
                      "doc_to_text: q\ndoc_to_target: a\n",
                      kDocs));
    EXPECT_NE(missing.find("nowhere.jsonl: no such data file"), std::string::npos) << missing;
    const auto malformed = error_of(task(dir, ok, kDocs + "{\"question\": oops}\n"));
    EXPECT_NE(malformed.find("data.jsonl:3: not valid JSON"), std::string::npos) << malformed;
    const auto indented = error_of(task(dir, ok + "description: \"{% if question %}\\nQ{% endif %}\"\n", kDocs));
    EXPECT_NE(indented.find("description: the template fails on a document: a {% block %} at the end of a line"),
              std::string::npos)
        << indented;

    // Through the command: exit 1, one line naming the file and line of the key.
    test::write_file(dir.file("bad.yaml"), "dataset_path: json\ndoc_to_text: [unclosed\n");
    test::expect_clean_failure(
        test::run_switchyard({"tasks", "lm-eval", dir.file("bad.yaml").string(), "-o", dir.file("o.jsonl").string()}),
        "not valid YAML");
    test::write_file(dir.file("fn.yaml"), ok + "doc_to_choice: !function utils.choices\n");
    test::expect_clean_failure(
        test::run_switchyard({"tasks", "lm-eval", dir.file("fn.yaml").string(), "-o", dir.file("o.jsonl").string()}),
        dir.file("fn.yaml").string() + ":7: doc_to_choice: a Python function");
}

TEST(LmEvalTask, ReadsCsvAndTextAsDatasetsDoes) {
    test::ScratchDir dir;
    test::write_file(dir.file("d.csv"), "q,label,score\n\"a, \"\"quoted\"\"\",1,0.5\nb,2,\n");
    const auto rows = eval::read_csv_docs(dir.file("d.csv"));
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0]["q"], "a, \"quoted\"");
    EXPECT_EQ(rows[0]["label"], 1);
    EXPECT_EQ(rows[0]["score"], 0.5);
    EXPECT_TRUE(rows[1]["score"].is_null());
    test::write_file(dir.file("t.txt"), "one\ntwo\n\n\nthree\n");
    EXPECT_EQ(eval::read_text_docs(dir.file("t.txt"), true).size(), 2u);
    EXPECT_EQ(eval::read_text_docs(dir.file("t.txt"), false).size(), 5u);  // the empty lines too
}

TEST(LmEvalTask, RegexFilterAndExactMatchFollowLmEval) {
    const eval::LmEvalRegex first_number{.pattern = R"((\d+))", .group_select = 0, .fallback = "[invalid]"};
    EXPECT_EQ(eval::apply_regex_filter(first_number, "it is 42 or 7"), "42");
    EXPECT_EQ(
        eval::apply_regex_filter({.pattern = R"((\d+))", .group_select = -1, .fallback = "[invalid]"}, "it is 42 or 7"),
        "7");
    EXPECT_EQ(eval::apply_regex_filter(first_number, "none"), "[invalid]");
    EXPECT_EQ(
        eval::apply_regex_filter({.pattern = R"(A: (\w+)|B: (\w+))", .group_select = 0, .fallback = "x"}, "B: yes"),
        "yes");
    const eval::LmEvalMatch loose{
        .filters = {}, .ignore_case = true, .ignore_punctuation = true, .ignore_numbers = false};
    EXPECT_TRUE(eval::lm_eval_exact_match(loose, "Time,", "time"));
    EXPECT_FALSE(eval::lm_eval_exact_match({}, " time", "time"));  // exact_match does not strip
}

TEST(LmEvalScoring, TokenLayoutIsLmEvals) {
    // A context ending in a space: lm-eval moves the space into the continuation and takes the
    // continuation's tokens from the joint text, with no BOS in front.
    auto & e = babyllama();
    test::ScratchDir dir;
    test::write_file(dir.file("s.jsonl"),
                     "{\"kind\": \"loglikelihood\", \"context\": \"Once upon a \", \"continuation\": \"time\"}\n"
                     "{\"kind\": \"loglikelihood\", \"context\": \"\", \"continuation\": \"Once\"}\n");
    const auto suite = eval::load_suite(dir.file("s.jsonl").string());
    ASSERT_EQ(suite.items.size(), 2u);
    const auto result = eval::run_suite(e, suite, {.normalize = false, .progress = false});
    const std::vector<engine::ScoreRequest> requests{lm_eval_request(e, "Once upon a ", "time"),
                                                     lm_eval_request(e, "", "Once")};
    EXPECT_EQ(requests[0].context, e.tokenize("Once upon a", false));
    EXPECT_EQ(requests[1].context, e.tokenize("", true));  // BOS alone
    const auto scores = e.score(requests, 1);
    for (std::size_t i = 0; i < 2; ++i) {
        const bool greedy = std::all_of(scores[i].tokens.begin(), scores[i].tokens.end(),
                                        [](const auto & t) { return t.top[0].token == t.token; });
        EXPECT_EQ(result.outcomes[i].correct, greedy) << i;
    }
    EXPECT_EQ(result.tokens_unique,
              requests[0].context.size() + requests[0].continuation.size() + requests[1].context.size() +
                  requests[1].continuation.size());
}

TEST(LmEvalScoring, BlimpAccAndAccNormEqualLmEvalsRulesOnBabyllama) {
    auto & e = babyllama();
    test::ScratchDir dir;
    const std::size_t limit = 300;
    const auto built = eval::build_lm_eval_suite(
        {.task = examples() / "blimp_anaphor_gender_agreement.yaml", .data_dir = shared_data(), .limit = limit});
    const auto result = eval::run_suite(e, suite_of(built, dir), {.normalize = false, .progress = false});
    // Independently: each raw pair, choices " good" and " bad" after BOS, argmax (first on ties).
    std::ifstream raw(shared_data() / "blimp" / "anaphor_gender_agreement.jsonl");
    std::size_t n = 0, acc = 0, acc_norm = 0, i = 0;
    for (std::string line; i < limit && std::getline(raw, line); ++i) {
        const auto doc = json::parse(line);
        const std::vector<std::string> choices{doc["sentence_good"], doc["sentence_bad"]};
        std::vector<engine::ScoreRequest> requests;
        for (const auto & c : choices) requests.push_back(lm_eval_request(e, "", " " + c));
        const auto s = e.score(requests);
        const double good = s[0].total_logprob(), bad = s[1].total_logprob();
        const bool right = good >= bad;
        const bool right_norm = good / chars(choices[0]) >= bad / chars(choices[1]);
        ++n;
        acc += right;
        acc_norm += right_norm;
        ASSERT_EQ(result.outcomes[i].correct, right) << "document " << i;
        ASSERT_EQ(result.outcomes[i].correct_norm, right_norm) << "document " << i;
    }
    EXPECT_EQ(n, limit);
    EXPECT_EQ(result.scored, n);
    EXPECT_EQ(result.correct, acc);
    EXPECT_EQ(result.correct_norm, acc_norm);
    std::printf("babyllama blimp_anaphor_gender_agreement: acc %zu/%zu, acc_norm %zu/%zu\n", acc, n, acc_norm, n);
}

TEST(LmEvalScoring, LambadaGreedyAccEqualsLmEvalsRulesOnBabyllama) {
    auto & e = babyllama();
    test::ScratchDir dir;
    const std::size_t limit = 300;
    const auto built = eval::build_lm_eval_suite(
        {.task = examples() / "lambada_openai.yaml", .data_dir = shared_data(), .limit = limit});
    const auto result = eval::run_suite(e, suite_of(built, dir), {.normalize = false, .progress = false});
    const auto window = static_cast<std::size_t>(e.model().context_length);
    std::ifstream raw(shared_data() / "lambada-test.jsonl");
    std::size_t scored = 0, acc = 0, i = 0;
    for (std::string line; i < limit && std::getline(raw, line); ++i) {
        const std::string text = json::parse(line)["text"];
        const auto cut = text.rfind(' ');
        engine::ScoreRequest r;
        try {
            r = lm_eval_request(e, text.substr(0, cut), text.substr(cut));
        } catch (const engine::UnencodableText &) {
            EXPECT_TRUE(result.outcomes[i].unencodable) << i;
            continue;
        }
        // Left truncation to the window (one token fewer than lm-eval keeps: docs/lm-eval.md).
        if (r.context.size() + r.continuation.size() > window)
            r.context.erase(r.context.begin(),
                            r.context.end() - static_cast<std::ptrdiff_t>(window - r.continuation.size()));
        const auto s = e.score(std::vector<engine::ScoreRequest>{r}, 1);
        const bool greedy = std::all_of(s[0].tokens.begin(), s[0].tokens.end(),
                                        [](const auto & t) { return t.logprob >= t.top[0].logprob; });
        ++scored;
        acc += greedy;
        ASSERT_EQ(result.outcomes[i].correct, greedy) << "document " << i;
    }
    EXPECT_EQ(result.scored, scored);
    EXPECT_EQ(result.correct, acc);
    std::printf("babyllama lambada_openai (first %zu): acc %zu/%zu, unencodable %zu\n", limit, acc, scored,
                result.unencodable);
}

TEST(LmEvalScoring, TinyStoriesExactMatchEqualsLmEvalsRulesOnBabyllama) {
    auto & e = babyllama();
    test::ScratchDir dir;
    const std::size_t limit = 200;
    const auto built = eval::build_lm_eval_suite(
        {.task = examples() / "tinystories_next_word.yaml", .data_dir = shared_data(), .limit = limit});
    ASSERT_EQ(built.items, limit);
    const auto suite = suite_of(built, dir);
    const auto result = eval::run_suite(e, suite, {.normalize = false, .progress = false});
    // Independently: paragraphs of the raw text, greedy generation until "\n" or ".", the first
    // word of the output against the paragraph's seventh word, case and punctuation aside.
    const std::string text = test::read_file(shared_data() / "tinystories-valid-head.txt");
    std::vector<std::string> paragraphs;
    for (std::size_t start = 0; start < text.size() && paragraphs.size() < limit;) {
        auto end = text.find("\n\n", start);
        if (end == std::string::npos) end = text.size();
        if (end > start) paragraphs.push_back(text.substr(start, end - start));
        start = end + 2;
    }
    const auto strip = [](std::string s) {
        std::string out;
        for (char c : s)
            if (!std::ispunct(static_cast<unsigned char>(c)))
                out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return out;
    };
    std::size_t right = 0, scored = 0;
    for (std::size_t i = 0; i < paragraphs.size(); ++i) {
        std::vector<std::string> words;
        std::string w;
        for (char c : paragraphs[i] + " ") {
            if (c == ' ') {
                words.push_back(w);
                w.clear();
            } else {
                w += c;
            }
        }
        if (result.outcomes[i].unencodable) continue;
        // The fixture's templates: six words and the seventh, or all but the last and the last.
        const std::size_t at = words.size() > 7 ? 6 : words.size() - 1;
        std::string prompt;
        for (std::size_t k = 0; k < at; ++k) prompt += (k > 0 ? " " : "") + words[k];
        // As lm-eval sends it by default: token ids without special tokens, so no BOS.
        engine::GenerateRequest g{
            .prompt = {}, .prompt_tokens = e.tokenize(prompt, false), .max_tokens = 8, .stop = {"\n", "."}};
        g.sampling.temperature = 0;
        const auto out = e.generate(std::vector<engine::GenerateRequest>{g})[0].text;
        std::smatch m;
        const std::string first = std::regex_search(out, m, std::regex("[A-Za-z']+")) ? m.str(0) : "[invalid]";
        const bool ok = strip(first) == strip(words[at]);
        ++scored;
        right += ok;
        ASSERT_EQ(result.outcomes[i].output, out) << i;
        ASSERT_EQ(result.outcomes[i].correct, ok) << i << ": " << out << " vs " << words[at];
    }
    EXPECT_EQ(result.correct, right);
    EXPECT_GT(right, 0u);
    std::printf("babyllama tinystories_next_word (first %zu): exact_match %zu/%zu\n", limit, right, scored);
}

TEST(LmEvalPlan, ReadsAnLmEvalTaskAndBuildsItsSuite) {
    test::ScratchDir dir;
    const auto plan = decide::parse_plan("base: {path: m.gguf}\ntasks:\n  - lm_eval: {task: " +
                                             (examples() / "blimp_anaphor_gender_agreement.yaml").string() +
                                             ", data: " + shared_data().string() + ", limit: 50}\n",
                                         "plan.yaml", dir.path());
    ASSERT_EQ(plan.tasks.size(), 1u);
    const auto & t = plan.tasks[0];
    EXPECT_TRUE(t.built());
    EXPECT_EQ(t.built_name(), "lm-eval-blimp_anaphor_gender_agreement");
    const auto jsonl = decide::build_task_suite(t);
    EXPECT_EQ(items_of(jsonl).size(), 50u);
    EXPECT_NE(jsonl.find("{\"suite\":{\"name\":\"blimp_anaphor_gender_agreement\"}}"), std::string::npos);
}
