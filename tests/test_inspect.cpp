#include "model/model_info.h"
#include "test_support.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace switchyard;

TEST(Inspect, Stories260K) {
    const auto info = model::inspect_gguf(test::model_path("stories260K-f32.gguf"));
    EXPECT_EQ(info.architecture, "llama");
    EXPECT_EQ(info.parameters, 292800u);
    EXPECT_EQ(info.tensor_count, 48u);
    EXPECT_EQ(info.tensor_types, (std::map<std::string, std::uint64_t>{{"f32", 48}}));
    EXPECT_EQ(info.file_bytes, 1185376u);
    EXPECT_DOUBLE_EQ(info.bits_per_weight, 32.0);
    EXPECT_EQ(info.vocab_size, 512u);
    EXPECT_TRUE(info.byte_fallback);
    EXPECT_EQ(info.tokenizer, "llama");
    EXPECT_EQ(info.context_length, 2048u);
    EXPECT_EQ(info.file_type, "all F32");
    EXPECT_TRUE(info.file_type_derived);  // the file has no general.file_type
    EXPECT_FALSE(info.has_chat_template);
    EXPECT_EQ(info.capabilities, std::vector<std::string>{"text"});
}

TEST(Inspect, BabyLlama) {
    const auto info = model::inspect_gguf(test::model_path("babyllama-0.9M-f32.gguf"));
    EXPECT_EQ(info.architecture, "llama");
    EXPECT_EQ(info.parameters, 949888u);
    EXPECT_EQ(info.tensor_count, 48u);
    EXPECT_EQ(info.tensor_types, (std::map<std::string, std::uint64_t>{{"f32", 48}}));
    EXPECT_EQ(info.vocab_size, 105u);
    EXPECT_FALSE(info.byte_fallback);
    EXPECT_EQ(info.context_length, 128u);
    EXPECT_EQ(info.block_count, 5u);
    EXPECT_EQ(info.embedding_length, 128u);
}

TEST(Inspect, JsonHasTheDocumentedKeys) {
    const nlohmann::json j = model::inspect_gguf(test::model_path("stories260K-f32.gguf"));
    for (const char * key : {"architecture", "parameters", "file_bytes", "bits_per_weight", "tensor_types",
                             "context_length", "vocab_size", "byte_fallback"}) {
        EXPECT_TRUE(j.contains(key)) << key;
    }
    EXPECT_EQ(j["tensor_types"]["f32"], 48);
    EXPECT_EQ(j["parameters"], 292800);
}
