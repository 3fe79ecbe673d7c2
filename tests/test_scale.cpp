// Behaviour at the sizes teams run, on models generated at test time with real shapes (never
// committed): the compact base file, quantization at a real vocabulary size, the KLD error of the
// compact base file on the shared models, the hash cache and `plan --dry-run`.
#include "compress/quantize.h"
#include "decide/dry_run.h"
#include "engine/llama_engine.h"
#include "eval/drift.h"
#include "eval/perplexity.h"
#include "eval/text_chunks.h"
#include "model/model_info.h"
#include "model/synthetic_model.h"
#include "stats/divergence.h"
#include "support/atomic_file.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/sha256.h"
#include "test_support.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

using namespace switchyard;

namespace {

std::filesystem::path text_file() { return test::data_dir() / "data" / "tinystories-valid-head.txt"; }

// The smallest real shape (SmolLM2-135M: vocabulary 49,152), F16 as converters write it.
std::filesystem::path smollm(const test::ScratchDir & dir) {
    const auto path = dir.file("smollm2-135m.gguf");
    model::write_synthetic_model({.shape = model::find_shape("smollm2-135m"), .f16 = true}, path);
    return path;
}

// Llama-3's vocabulary on a model a few layers thin: what decides the base file's size is the
// vocabulary, and this one needs 32-bit token ids.
std::filesystem::path wide_vocabulary(const test::ScratchDir & dir) {
    const auto path = dir.file("wide.gguf");
    model::write_synthetic_model({.shape = {.name = "wide",
                                            .vocab = 128256,
                                            .embedding = 64,
                                            .layers = 1,
                                            .heads = 2,
                                            .kv_heads = 1,
                                            .feed_forward = 128,
                                            .context = 256,
                                            .tied_output = true}},
                                 path);
    return path;
}

// The shared models' small vocabularies lack some characters of the text: `normalize` drops them.
std::vector<std::vector<engine::Token>> chunks_of(const engine::LlamaEngine & e, int context, int chunks) {
    return eval::tokenize_chunks(e,
                                 {.files = {text_file()}, .context = context, .max_chunks = chunks, .normalize = true})
        .chunks;
}

// llama-perplexity's --kl-divergence-base file for the same chunks: a 20-byte header, every token
// as int32, and per scored position the whole logit row in 16 bits plus two floats
// (perplexity.cpp: nv = 2 * ((n_vocab + 1) / 2) + 4 uint16 values).
std::uintmax_t llama_perplexity_base_bytes(const eval::Reference & ref) {
    std::uintmax_t tokens = 0;
    for (const auto & c : ref.chunks) tokens += c.size();
    const std::uintmax_t per_position = 2 * (2 * ((static_cast<std::uintmax_t>(ref.vocab_size) + 1) / 2) + 4);
    return 20 + 4 * tokens + ref.positions() * per_position;
}

void expect_same(const eval::Reference & a, const eval::Reference & b) {
    EXPECT_EQ(a.k, b.k);
    EXPECT_EQ(a.vocab_size, b.vocab_size);
    EXPECT_EQ(a.chunks, b.chunks);
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.best, b.best);
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.target_logprob, b.target_logprob);
}

std::string error_of(const std::filesystem::path & path) {
    try {
        eval::load_reference(path);
    } catch (const Error & e) {
        return e.what();
    }
    return "(loaded)";
}

}  // namespace

TEST(BaseFile, RoundTripAtSmolLMsVocabularyIsExactAnd16BitIds) {
    test::ScratchDir dir;
    engine::LlamaEngine base({.model_path = smollm(dir), .threads = 2, .context_length = 64, .parallel = 2});
    const eval::Reference ref = eval::record_reference(base, chunks_of(base, 64, 2), 64);
    ASSERT_EQ(ref.positions(), 2u * 31);
    ASSERT_EQ(ref.ids.size(), ref.positions() * 64);
    const auto path = dir.file("base.ref");
    eval::save_reference(ref, path);
    const eval::Reference back = eval::load_reference(path);
    expect_same(ref, back);
    // 49,152 ids fit in 16 bits: per position 3 floats and 64 × (2 + 2) bytes, after the header and tokens.
    EXPECT_EQ(std::filesystem::file_size(path), 8 + 16 + 8 + 2 * (8 + 64 * 2) + 8 + ref.positions() * (12 + 64 * 4));
    EXPECT_LT(std::filesystem::file_size(path) * 100, llama_perplexity_base_bytes(ref));
    // Decoded rows are sorted log-probabilities, the best one stored exactly.
    std::vector<stats::IndexedLogprob> row(64);
    for (std::size_t i = 0; i < ref.positions(); ++i) {
        back.row(i, row);
        EXPECT_EQ(row.front().logprob, back.best[i]);
        for (std::size_t j = 1; j < row.size(); ++j) EXPECT_LE(row[j].logprob, row[j - 1].logprob);
    }
    // The base against its own stored predictions: the same top token everywhere, next to no drift.
    const eval::Drift self = eval::measure_drift(back, base);
    EXPECT_EQ(self.top1_agreement, 1.0);
    EXPECT_LT(self.kld.mean, 1e-5);
    EXPECT_NEAR(self.perplexity, self.reference_perplexity, 1e-3 * self.reference_perplexity);
}

TEST(BaseFile, AtA128kVocabularyTopKIsUnderAHundredthOfLlamaPerplexitys) {
    test::ScratchDir dir;
    engine::LlamaEngine base({.model_path = wide_vocabulary(dir), .threads = 2, .context_length = 128, .parallel = 2});
    ASSERT_EQ(base.model().vocab_size, 128256);
    const eval::Reference ref = eval::record_reference(base, chunks_of(base, 128, 2), 64);
    const auto path = dir.file("base.ref");
    eval::save_reference(ref, path);
    expect_same(ref, eval::load_reference(path));
    // 32-bit ids now: per position 3 floats and 64 × (4 + 2) bytes; llama-perplexity's row is 256 KB.
    std::uintmax_t tokens = 0;
    for (const auto & c : ref.chunks) tokens += c.size();
    EXPECT_EQ(std::filesystem::file_size(path),
              8 + 16 + 8 + 8 * ref.chunks.size() + 4 * tokens + 8 + ref.positions() * (12 + 64 * 6));
    EXPECT_LT(std::filesystem::file_size(path) * 100, llama_perplexity_base_bytes(ref));
    const eval::Drift self = eval::measure_drift(eval::load_reference(path), base);
    EXPECT_EQ(self.top1_agreement, 1.0);
}

TEST(BaseFile, ForeignOldNewerAndTruncatedFilesAreNamedClearly) {
    test::ScratchDir dir;
    const auto write = [&](const std::string & name, const std::string & bytes) {
        test::write_file(dir.file(name), bytes);
        return dir.file(name);
    };
    EXPECT_NE(error_of(write("lp.kld", std::string("_logits_") + std::string(64, '\0')))
                  .find("llama-perplexity --kl-divergence-base file"),
              std::string::npos);
    EXPECT_NE(error_of(write("old.ref", "SYREF001" + std::string(64, '\0')))
                  .find("base file format 1, written by an older switchyard"),
              std::string::npos);
    EXPECT_NE(error_of(write("new.ref", "SYREF007" + std::string(64, '\0')))
                  .find("base file format 7, from a newer switchyard"),
              std::string::npos);
    EXPECT_NE(error_of(write("text.ref", "hello, world")).find("not a switchyard base file"), std::string::npos);
    EXPECT_NE(error_of(write("empty.ref", "")).find("not a switchyard base file"), std::string::npos);

    engine::LlamaEngine base(
        {.model_path = test::model_path("stories260K-f32.gguf"), .threads = 2, .context_length = 64});
    const auto good = dir.file("good.ref");
    eval::save_reference(eval::record_reference(base, chunks_of(base, 64, 2), 16), good);
    const std::string bytes = test::read_file(good);
    for (const std::size_t cut : {std::size_t{20}, std::size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
        const std::string message = error_of(write("cut.ref", bytes.substr(0, cut)));
        EXPECT_NE(message.find("cut.ref: truncated"), std::string::npos) << cut << ": " << message;
    }
    EXPECT_NE(error_of(write("long.ref", bytes + "x")).find("bytes after its end"), std::string::npos);
    // Through the CLI: one line, exit code 1.
    test::expect_clean_failure(test::run_switchyard({"eval", "-m", test::model_path("stories260K-f32.gguf").string(),
                                                     "--base-file", dir.file("old.ref").string()}),
                               "record it again with --save-base");
}

// `eval -m BASE --text T --save-base F` records the model's own predictions, as llama-perplexity's
// --kl-divergence-base does, in the one pass that gives its perplexity; a variant compared with
// that file gets the KLD a run with --base gives.
TEST(BaseFile, EvalRecordsAModelsOwnPredictionsInTheSamePassAsItsPerplexity) {
    test::ScratchDir dir;
    const auto original = test::model_path("stories260K-f32.gguf").string();
    const auto q4 = dir.file("q4.gguf").string();
    compress::quantize({.input = original, .output = q4, .type = "Q4_0", .threads = 2});
    const std::vector<std::string> text = {"--text", text_file().string(), "-c", "64", "--chunks",
                                           "4",      "--normalize",        "-t", "2",  "--json"};
    const auto eval = [&](std::vector<std::string> args) {
        args.insert(args.begin(), "eval");
        args.insert(args.end(), text.begin(), text.end());
        const auto r = test::run_switchyard(args);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
    };
    const auto base = dir.file("base.ref").string();
    const auto plain = eval({"-m", original});
    const auto recorded = eval({"-m", original, "--save-base", base});
    ASSERT_TRUE(std::filesystem::exists(base));
    // To the single precision the file keeps each position's log-probability in.
    EXPECT_NEAR(recorded.value("perplexity", 0.0), plain.value("perplexity", -1.0),
                1e-7 * plain.value("perplexity", 0.0));
    EXPECT_FALSE(recorded.contains("drift"));

    const auto from_file = test::run_switchyard({"eval", "-m", q4, "--base-file", base, "-t", "2", "--json"});
    ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
    const auto with_base = eval({"-m", q4, "--base", original});
    const double kld = nlohmann::json::parse(from_file.out)["drift"]["kld"]["mean"].get<double>();
    EXPECT_GT(kld, 1e-3);
    EXPECT_NEAR(kld, with_base["drift"]["kld"]["mean"].get<double>(), 1e-9 * kld);

    test::expect_clean_failure(
        test::run_switchyard({"eval", "-m", q4, "--base-file", base, "--save-base", dir.file("again.ref").string()}),
        "cannot be combined");
}

// The shared models' Q4_0 against their F32 originals: the mean KLD from a default (top-64) base
// file, written and read back, within 1% of the exact KLD over whole logit rows.
TEST(BaseFile, DefaultTopKKldIsWithinOnePercentOfExactOnTheSharedModelsQ4_0) {
    for (const char * name : {"stories260K-f32.gguf", "babyllama-0.9M-f32.gguf"}) {
        test::ScratchDir dir;
        const auto q4 = dir.file("q4.gguf");
        compress::quantize({.input = test::model_path(name), .output = q4, .type = "Q4_0", .threads = 2});
        engine::LlamaEngine base({.model_path = test::model_path(name), .threads = 2, .context_length = 128});
        engine::LlamaEngine variant({.model_path = q4, .threads = 2, .context_length = 128});
        const auto chunks = chunks_of(base, 128, 8);

        std::vector<std::vector<float>> rows;
        const auto wanted = [&](std::size_t s, std::size_t pos) {
            return eval::scored_position(pos, chunks[s].size());
        };
        base.forward(
            chunks,
            [&](std::size_t, std::size_t, std::span<const float> logits) {
                rows.emplace_back(logits.begin(), logits.end());
            },
            wanted);
        double exact = 0.0;
        std::size_t i = 0;
        variant.forward(
            chunks,
            [&](std::size_t, std::size_t, std::span<const float> logits) {
                exact += stats::kl_divergence(rows[i++], logits);
            },
            wanted);
        exact /= static_cast<double>(rows.size());

        const auto path = dir.file("base.ref");
        eval::save_reference(eval::record_reference(base, chunks, 64), path);
        const eval::Drift drift = eval::measure_drift(eval::load_reference(path), variant);
        ASSERT_EQ(drift.positions, rows.size());
        EXPECT_GT(exact, 1e-3) << name;  // Q4_0 really moves the predictions
        EXPECT_NEAR(drift.kld.mean, exact, 0.01 * exact) << name;
    }
}

TEST(Quantize, Q4_K_MAtSmolLMsVocabularyRunsAndKeepsTheShape) {
    test::ScratchDir dir;
    const auto f16 = smollm(dir);
    const auto out = dir.file("q4km.gguf");
    const auto r = test::run_switchyard({"quantize", f16.string(), out.string(), "Q4_K_M", "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const model::ModelInfo info = model::inspect_gguf(out);
    EXPECT_EQ(info.vocab_size, 49152u);
    EXPECT_EQ(info.parameters, model::inspect_gguf(f16).parameters);
    EXPECT_GT(info.bits_per_weight, 4.5);
    EXPECT_LT(info.bits_per_weight, 6.5);
    EXPECT_GT(info.tensor_types.at("q4_K"), 0u);
    EXPECT_TRUE(std::filesystem::exists(out.string() + ".recipe.json"));
    // It runs: a finite perplexity on real text.
    const auto e = test::run_switchyard(
        {"eval", "-m", out.string(), "--text", text_file().string(), "-c", "64", "--chunks", "2", "-t", "2", "--json"});
    ASSERT_EQ(e.exit_code, 0) << e.err;
    const double ppl = nlohmann::json::parse(e.out)["perplexity"].get<double>();
    EXPECT_TRUE(std::isfinite(ppl));
    EXPECT_GT(ppl, 1.0);
}

// Passes over text chunks hold whole chunks per batch and reserve logits only for the scored half:
// one chunk per call at a 152k vocabulary (llama-perplexity's -b = -c), two at 49k, four at 512.
TEST(Eval, ChunkPassesBatchWholeChunksAndReserveOnlyTheirScoredLogits) {
    const auto at_qwen = eval::chunk_engine_options("m.gguf", 151936, 2, 128);
    EXPECT_EQ(at_qwen.parallel, 1);
    EXPECT_EQ(at_qwen.batch_size, 128);
    EXPECT_EQ(at_qwen.max_outputs, 63);  // positions 64..126 of a 128-token chunk
    const auto at_smollm = eval::chunk_engine_options("m.gguf", 49152, 2, 128);
    EXPECT_EQ(at_smollm.parallel, 2);
    EXPECT_EQ(at_smollm.batch_size, 256);
    EXPECT_EQ(at_smollm.max_outputs, 2 * 63);
    const auto small = eval::chunk_engine_options("m.gguf", 512, 2, 128);
    EXPECT_EQ(small.parallel, 4);
    EXPECT_EQ(small.batch_size, 512);
    EXPECT_EQ(small.max_outputs, 4 * 63);
    const auto longer = eval::chunk_engine_options("m.gguf", 512, 2, 1024);
    EXPECT_EQ(longer.parallel, 1);
    EXPECT_EQ(longer.batch_size, 512);  // the chunk in two calls, the second all scored
    EXPECT_EQ(longer.max_outputs, 511);
}

// The memory saved by those options costs no accuracy: the perplexity at SmolLM's vocabulary is
// the one a scoring engine (32 sequences, batches of 512 with logits for every position) gives.
TEST(Eval, ChunkOptionsGiveTheSamePerplexityAsFullBatches) {
    test::ScratchDir dir;
    const auto path = smollm(dir);
    double full = 0, chunked = 0;
    {
        engine::LlamaEngine e(
            {.model_path = path, .threads = 2, .context_length = 64, .parallel = engine::scoring_parallel(64)});
        full = eval::measure_perplexity(
                   e, eval::tokenize_chunks(e, {.files = {text_file()}, .context = 64, .max_chunks = 8}))
                   .perplexity;
    }
    engine::LlamaEngine e(eval::chunk_engine_options(path, 49152, 2, 64));
    chunked =
        eval::measure_perplexity(e, eval::tokenize_chunks(e, {.files = {text_file()}, .context = 64, .max_chunks = 8}))
            .perplexity;
    EXPECT_GT(full, 1.0);
    EXPECT_NEAR(chunked, full, 1e-9 * full);
}

TEST(HashCache, ASecondCallReadsNothingUntilTheTimeOrTheFileChanges) {
    test::ScratchDir dir;
    const HashCacheOptions cache{.dir = dir.file("hashes"), .min_bytes = 0};
    const auto file = dir.file("model.bin");
    test::write_file(file, std::string(1 << 20, 'a'));
    const std::string first = cached_sha256_file(file, 0, cache);
    EXPECT_EQ(first, sha256_file(file));
    EXPECT_EQ(cached_sha256_file(file, 16, cache), sha256_file(file, 16));  // another offset, another entry

    // Rewritten in place with the same size and the same time: the cache cannot tell, and answers
    // from the entry without reading the file (the trade-off the header documents).
    const auto when = std::filesystem::last_write_time(file);
    {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.write("b", 1);
    }
    std::filesystem::last_write_time(file, when);
    EXPECT_EQ(cached_sha256_file(file, 0, cache), first);
    // A new modification time: hashed again.
    std::filesystem::last_write_time(file, when + std::chrono::seconds(1));
    const std::string second = cached_sha256_file(file, 0, cache);
    EXPECT_NE(second, first);
    EXPECT_EQ(second, sha256_file(file));
    // Replaced by a rename with the old size and time: another inode, hashed again.
    write_file_atomically(file, std::string(1 << 20, 'c'));
    std::filesystem::last_write_time(file, when + std::chrono::seconds(1));
    EXPECT_EQ(cached_sha256_file(file, 0, cache), sha256_file(file));

    // Small files are not worth an entry by default; an unusable cache folder costs only the hashing.
    test::ScratchDir other;
    EXPECT_EQ(cached_sha256_file(file, 0, {.dir = other.file("hashes")}), sha256_file(file));
    EXPECT_FALSE(std::filesystem::exists(other.file("hashes")));
    test::write_file(other.file("plain"), "x");
    EXPECT_EQ(cached_sha256_file(file, 0, {.dir = other.file("plain") / "hashes", .min_bytes = 0}), sha256_file(file));
    EXPECT_THROW(cached_sha256_file(dir.file("missing.bin"), 0, cache), Error);
}

TEST(HashCache, ProcessesSharingTheCacheAgreeAndLeaveWholeEntries) {
    test::ScratchDir dir;
    const auto file = dir.file("model.bin");
    test::write_file(file, std::string(4 << 20, 'z'));
    const HashCacheOptions cache{.dir = dir.file("hashes"), .min_bytes = 0};
    std::vector<std::thread> workers;
    std::vector<std::string> digests(8);
    for (std::size_t i = 0; i < digests.size(); ++i)
        workers.emplace_back([&, i] { digests[i] = cached_sha256_file(file, 0, cache); });
    for (auto & w : workers) w.join();
    for (const auto & d : digests) EXPECT_EQ(d, sha256_file(file));
    std::size_t entries = 0;
    for (const auto & e : std::filesystem::directory_iterator(cache.dir)) {
        ++entries;
        EXPECT_EQ(e.path().extension(), ".txt") << e.path();  // no temporary file left behind
    }
    EXPECT_EQ(entries, 1u);
}

// The estimate is tokens and weights over the sampled rates, stage by stage (constructed numbers).
TEST(DryRun, EstimatesEachStageFromTheSampledRates) {
    decide::PlanWork w{.base = "b",
                       .base_parameters = 1'000'000,
                       .context = 100,
                       .calibration_tokens = 2000,
                       .variants = {"Q8_0", "Q4_0"},
                       .variants_kept = {"Q5_0"},
                       .screen_tokens = 500,
                       .local_candidates = 5,
                       .remote_candidates = 1,
                       .suites = {{.name = "s", .items = 10, .score_tokens = 1000, .generate_tokens = 50}},
                       .speed_prefill_tokens = 300,
                       .speed_decode_tokens = 100};
    const decide::WorkRates rates{
        .forward_tokens_per_s = 1000, .decode_tokens_per_s = 50, .quantize_weights_per_s = 500'000};
    const auto stages = decide::estimate_stages(w, rates);
    ASSERT_EQ(stages.size(), 5u);
    EXPECT_EQ(stages[0].stage, "calibrate");
    EXPECT_NEAR(stages[0].seconds, 1.15 * 2.0, 1e-9);
    EXPECT_EQ(stages[1].stage, "variants");
    EXPECT_NEAR(stages[1].seconds, 2 * 2.0, 1e-9);  // two to build at 2 s each; the kept one costs nothing
    EXPECT_EQ(stages[2].stage, "screen");
    EXPECT_NEAR(stages[2].seconds, 4 * 0.5, 1e-9);  // the original and three variants
    EXPECT_EQ(stages[3].stage, "tasks");
    EXPECT_NEAR(stages[3].seconds, 5 * (1.0 + 1.0), 1e-9);
    EXPECT_NE(stages[3].work.find("1 suites × 6 candidates"), std::string::npos) << stages[3].work;
    EXPECT_NE(stages[3].work.find("1 through endpoints, not estimated"), std::string::npos) << stages[3].work;
    EXPECT_EQ(stages[4].stage, "speed");
    EXPECT_NEAR(stages[4].seconds, 5 * (0.3 + 2.0), 1e-9);
    const std::string page = decide::format_dry_run(w, rates, stages);
    EXPECT_NE(page.find("total"), std::string::npos);
    EXPECT_NE(page.find("30 s"), std::string::npos) << page;  // 2.3 + 4 + 2 + 10 + 11.5 = 29.8 s
    // Sequential tests: the task stage at the share a candidate is expected to read, and what
    // every item would take beside it.
    w.expected_share = 0.4;
    const auto sequential = decide::estimate_stages(w, rates);
    EXPECT_NEAR(sequential[3].seconds, 0.4 * 5 * (1.0 + 1.0), 1e-9);
    EXPECT_NE(sequential[3].work.find(
                  "expected to read 40% of them, one near the limit all (10 s if every candidate read every item)"),
              std::string::npos)
        << sequential[3].work;
}

TEST(DryRun, OnSmolLMsShapeCountsTheWorkAndWritesNothing) {
    test::ScratchDir dir;
    smollm(dir);
    const auto data = test::data_dir() / "data";
    test::write_file(dir.file("plan.yaml"),
                     fmt::format(R"(base:
  name: smol
  path: smollm2-135m.gguf
variants:
  - {{type: Q8_0}}
  - {{type: Q4_K_M}}
  - {{type: Q4_0, imatrix: false}}
calibration:
  files: [{0}/tinystories-valid-head.txt]
  samples: 8
  context: 64
screen:
  files: [{0}/tinystories-valid-head.txt]
  chunks: 4
  context: 64
tasks:
  - cloze: {{text: {0}/tinystories-valid-head.txt, items: 20, skip_passages: 1500}}
    name: story-cloze
  - spec: blimp:{0}/blimp/anaphor_gender_agreement.jsonl
speed: {{prompt_tokens: 32, generate_tokens: 8, repeats: 1}}
)",
                                 data.string()));
    const auto out = dir.file("out");
    const auto r =
        test::run_switchyard({"plan", dir.file("plan.yaml").string(), "--dry-run", "-o", out.string(), "-t", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("dry run: nothing is built, measured or written"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("base: smol, 134.5M parameters, chunks of 512 tokens"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("512 tokens through the base"), std::string::npos) << r.out;  // 8 samples of 64
    EXPECT_NE(r.out.find("3 to build (Q8_0+imatrix, Q4_K_M+imatrix, Q4_0)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("4 models × 256 tokens"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("2 suites × 4 candidates"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("4 candidates × 832 prompt and 208 generated tokens"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sequential tests: a candidate with no true drop is expected to read "), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("total"), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(out)) << "a dry run writes nothing";
}
