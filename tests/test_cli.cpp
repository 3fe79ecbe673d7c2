// The CLI as a user meets it: documented output, and one clear error line for every bad input.
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace switchyard;

using test::expect_clean_failure;

TEST(Cli, InspectJsonOnBothModels) {
    struct Expected {
        const char * file;
        std::uint64_t parameters;
        std::uint64_t vocab;
        bool byte_fallback;
    };
    for (const Expected & x : {Expected{"stories260K-f32.gguf", 292800, 512, true},
                               Expected{"babyllama-0.9M-f32.gguf", 949888, 105, false}}) {
        const auto r = test::run_switchyard({"inspect", "--json", test::model_path(x.file).string()});
        ASSERT_EQ(r.exit_code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["architecture"], "llama");
        EXPECT_EQ(j["parameters"], x.parameters);
        EXPECT_EQ(j["vocab_size"], x.vocab);
        EXPECT_EQ(j["byte_fallback"], x.byte_fallback);
        EXPECT_EQ(j["tensor_types"], nlohmann::json({{"f32", 48}}));
        EXPECT_DOUBLE_EQ(j["bits_per_weight"].get<double>(), 32.0);
        EXPECT_GT(j["file_bytes"].get<std::uint64_t>(), 0u);
        EXPECT_GT(j["context_length"].get<std::uint64_t>(), 0u);
    }
}

TEST(Cli, InspectText) {
    const auto r = test::run_switchyard({"inspect", test::model_path("babyllama-0.9M-f32.gguf").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("949888"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("f32 x 48"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("byte fallback: no"), std::string::npos) << r.out;
}

TEST(Cli, GenerateGreedyStories260K) {
    const auto r = test::run_switchyard({"generate", "-m", test::model_path("stories260K-f32.gguf").string(), "-p",
                                         "Once upon a time", "-n", "40", "--temp", "0", "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind(", there was a little girl named Lily. She loved to play outside in the park.", 0), 0u)
        << r.out;
    EXPECT_EQ(r.err, "");  // llama.cpp's own logging stays quiet unless -v
}

TEST(Cli, GenerateMissingModel) {
    expect_clean_failure(test::run_switchyard({"generate", "-m", "/nonexistent/model.gguf", "-p", "hi"}),
                         "no such file");
}

TEST(Cli, InspectMissingFile) {
    expect_clean_failure(test::run_switchyard({"inspect", "/nonexistent/model.gguf"}),
                         "/nonexistent/model.gguf: no such file");
}

TEST(Cli, NotGguf) {
    test::ScratchDir dir;
    test::write_file(dir.file("notes.gguf"), "these are not model weights\n");
    expect_clean_failure(test::run_switchyard({"inspect", dir.file("notes.gguf").string()}), "not a GGUF file");
    expect_clean_failure(test::run_switchyard({"generate", "-m", dir.file("notes.gguf").string(), "-p", "hi"}),
                         "not a GGUF file");
}

TEST(Cli, TruncatedGguf) {
    test::ScratchDir dir;
    const std::string bytes = test::read_file(test::model_path("stories260K-f32.gguf"));
    for (std::size_t cut : {std::size_t{3}, std::size_t{20}, std::size_t{700}, bytes.size() / 2, bytes.size() - 1}) {
        const auto path = dir.file("cut-" + std::to_string(cut) + ".gguf");
        test::write_file(path, bytes.substr(0, cut));
        const char * expected = cut < 4 ? "not a GGUF file"
            : cut < 8192                ? "corrupt or truncated GGUF"
                                        : "truncated GGUF";
        expect_clean_failure(test::run_switchyard({"inspect", path.string()}), expected);
        expect_clean_failure(test::run_switchyard({"generate", "-m", path.string(), "-p", "hi"}), expected);
    }
}

TEST(Cli, AbsurdCountsAndLengths) {
    test::ScratchDir dir;
    const std::string bytes = test::read_file(test::model_path("stories260K-f32.gguf"));
    struct Patch {
        const char * name;
        std::size_t offset;
        std::uint64_t value;
    };
    for (const Patch & p : {Patch{"tensors", 8, 0x7FFFFFFFFFFFFFFFull}, Patch{"string", 24, 0xFFFFFFFFFFFFull}}) {
        std::string patched = bytes;
        std::memcpy(patched.data() + p.offset, &p.value, sizeof p.value);
        const auto path = dir.file(std::string(p.name) + ".gguf");
        test::write_file(path, patched);
        expect_clean_failure(test::run_switchyard({"inspect", path.string()}), "corrupt or truncated GGUF");
        expect_clean_failure(test::run_switchyard({"generate", "-m", path.string(), "-p", "hi"}),
                             "corrupt or truncated GGUF");
    }
}

TEST(Cli, PromptTheVocabularyCannotEncode) {
    const auto r = test::run_switchyard({"generate", "-m", test::model_path("babyllama-0.9M-f32.gguf").string(), "-p",
                                         "Once upon a time\nthere was", "--temp", "0"});
    expect_clean_failure(r, "cannot encode U+000A (newline)");
}

TEST(Cli, HelpListsTheCommands) {
    const auto r = test::run_switchyard({"--help"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("inspect"), std::string::npos);
    EXPECT_NE(r.out.find("generate"), std::string::npos);
}

TEST(Cli, BadFlagsExitWithUsageError) {
    const auto r = test::run_switchyard({"generate", "-p", "hi"});  // no model
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("--model"), std::string::npos) << r.err;
}

// The compression commands, as a user meets them: a report on success, one clear line on failure.
TEST(Cli, QuantizeReportsAndRefusesBadInput) {
    test::ScratchDir dir;
    const auto model = test::model_path("babyllama-0.9M-f32.gguf").string();
    const auto ok = test::run_switchyard({"quantize", model, dir.file("q4.gguf").string(), "q4_0", "-t", "2"});
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_NE(ok.out.find("q4_0 x 36"), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("kept as q8_0   output.weight"), std::string::npos) << ok.out;
    EXPECT_TRUE(std::filesystem::exists(dir.file("q4.gguf.recipe.json")));
    const auto rebuilt = test::run_switchyard(
        {"rebuild", dir.file("q4.gguf.recipe.json").string(), "-o", dir.file("again.gguf").string()});
    EXPECT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
    EXPECT_NE(rebuilt.out.find("identical"), std::string::npos) << rebuilt.out;

    expect_clean_failure(test::run_switchyard({"quantize", model, dir.file("x.gguf").string(), "Q3_0"}),
                         "unknown quantization type 'Q3_0'");
    expect_clean_failure(
        test::run_switchyard({"quantize", dir.file("q4.gguf").string(), dir.file("x.gguf").string(), "Q4_0"}),
        "already quantized");
    expect_clean_failure(
        test::run_switchyard({"quantize", model, dir.file("x.gguf").string(), "Q4_0", "--tensor-type", "attn_v"}),
        "expected REGEX=TYPE");
    EXPECT_FALSE(std::filesystem::exists(dir.file("x.gguf")));
}

TEST(Cli, CalibratePruneAndMixErrors) {
    test::ScratchDir dir;
    const auto model = test::model_path("babyllama-0.9M-f32.gguf").string();
    const auto text = (test::data_dir() / "data" / "tinystories-valid-head.txt").string();
    expect_clean_failure(test::run_switchyard({"calibrate", model, "--data", text, "-o", dir.file("i.gguf").string()}),
                         "pass --normalize");
    expect_clean_failure(
        test::run_switchyard({"prune", model, dir.file("p.gguf").string(), "--method", "wanda", "--sparsity", "0.5"}),
        "pass --imatrix");
    expect_clean_failure(test::run_switchyard({"prune", model, dir.file("p.gguf").string(), "--pattern", "4:3"}),
                         "expected unstructured or N:M");
    expect_clean_failure(test::run_switchyard({"mix", model, dir.file("m.gguf").string(), "--budget", "10K", "--data",
                                               text, "--normalize", "--chunks", "2"}),
                         "below the smallest file");
    expect_clean_failure(test::run_switchyard({"compare", model, test::model_path("stories260K-f32.gguf").string(),
                                               "--data", text, "--normalize", "--chunks", "2"}),
                         "vocabularies differ");
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Cli, EvalReportsMalformedLinesAndRecordsResults) {
    test::ScratchDir dir;
    test::write_file(dir.file("s.jsonl"), "{\"good\": \"The dog runs.\", \"bad\": \"The dog run.\"}\n{\"good\": 3}\n");
    const auto model = test::model_path("stories260K-f32.gguf").string();
    const auto store = dir.file("results.sqlite").string();
    const auto r = test::run_switchyard(
        {"eval", "-m", model, "--tasks", dir.file("s.jsonl").string(), "--results", store, "--json", "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("s.jsonl:2: skipped: field 'good' must be a string"), std::string::npos) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["suites"][0]["n"], 1);
    EXPECT_EQ(j["suites"][0]["skipped"], 1);
    EXPECT_EQ(j["suites"][0]["ci95"].size(), 2u);
    const auto listed = test::run_switchyard({"results", "--results", store, "list"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    EXPECT_NE(listed.out.find("finished"), std::string::npos) << listed.out;

    expect_clean_failure(test::run_switchyard({"eval", "-m", model}), "nothing to measure");
    expect_clean_failure(
        test::run_switchyard({"eval", "-m", model, "--tasks", dir.file("none.jsonl").string(), "--no-results"}),
        "cannot open");
}
