// Broken model files must give one clear error, never a crash: truncated at any byte, not GGUF,
// absurd counts and lengths, keys of the wrong type.
#include "model/model_info.h"
#include "support/error.h"
#include "test_support.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace switchyard;

namespace {

std::string model_bytes(const std::string & file) { return test::read_file(test::model_path(file)); }

// Offset of the first key-value pair: magic (4), version (4), tensor count (8), kv count (8).
constexpr std::size_t kFirstKvOffset = 24;

void expect_rejected(const std::string & bytes, const std::string & fragment) {
    try {
        model::inspect_gguf_bytes(bytes.data(), bytes.size(), "bad.gguf");
        FAIL() << "accepted a broken file; expected an error containing '" << fragment << "'";
    } catch (const Error & e) {
        const std::string message = e.what();
        EXPECT_NE(message.find(fragment), std::string::npos) << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << "error must be one line: " << message;
    }
}

}  // namespace

TEST(BadGguf, MissingFileAndDirectory) {
    test::ScratchDir dir;
    EXPECT_THROW(model::inspect_gguf(dir.file("nope.gguf")), Error);
    try {
        model::inspect_gguf(dir.path());
        FAIL();
    } catch (const Error & e) {
        EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos);
    }
}

TEST(BadGguf, NotGguf) {
    expect_rejected("Once upon a time there was a text file.", "not a GGUF file");
    expect_rejected("", "not a GGUF file");
    expect_rejected("GG", "not a GGUF file");
}

// Every cut inside the metadata, and a sample of cuts through the tensor data, of both models.
TEST(BadGguf, TruncatedAtAnyByteIsRejected) {
    for (const char * file : {"stories260K-f32.gguf", "babyllama-0.9M-f32.gguf"}) {
        const std::string bytes = model_bytes(file);
        const auto full = model::inspect_gguf_bytes(bytes.data(), bytes.size(), file);
        ASSERT_EQ(full.tensor_count, 48u);
        std::size_t checked = 0;
        for (std::size_t cut = 0; cut < bytes.size(); cut += (cut < 16384 ? 1 : 4093)) {
            const std::string part = bytes.substr(0, cut);
            EXPECT_THROW(model::inspect_gguf_bytes(part.data(), part.size(), file), Error) << file << " cut at " << cut;
            ++checked;
        }
        EXPECT_GT(checked, 16384u);
    }
}

TEST(BadGguf, TruncatedFileOnDiskNamesBothSizes) {
    test::ScratchDir dir;
    const std::string bytes = model_bytes("stories260K-f32.gguf");
    const auto path = dir.file("cut.gguf");
    test::write_file(path, bytes.substr(0, bytes.size() - 1000));
    try {
        model::inspect_gguf(path);
        FAIL();
    } catch (const Error & e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("truncated"), std::string::npos) << message;
        EXPECT_NE(message.find(std::to_string(bytes.size() - 1000)), std::string::npos) << message;
    }
}

TEST(BadGguf, AbsurdTensorCount) {
    std::string bytes = model_bytes("stories260K-f32.gguf");
    const std::uint64_t absurd = 0x7FFFFFFFFFFFFFFFull;
    std::memcpy(bytes.data() + 8, &absurd, sizeof absurd);
    expect_rejected(bytes, "corrupt or truncated GGUF");
}

TEST(BadGguf, AbsurdKvCount) {
    std::string bytes = model_bytes("stories260K-f32.gguf");
    const std::uint64_t absurd = 0x0FFFFFFFFFFFFFFFull;
    std::memcpy(bytes.data() + 16, &absurd, sizeof absurd);
    expect_rejected(bytes, "corrupt or truncated GGUF");
}

TEST(BadGguf, AbsurdStringLength) {
    std::string bytes = model_bytes("stories260K-f32.gguf");
    const std::uint64_t absurd = 0xFFFFFFFFFFFFull;  // the first key's length
    std::memcpy(bytes.data() + kFirstKvOffset, &absurd, sizeof absurd);
    expect_rejected(bytes, "corrupt or truncated GGUF");
}

TEST(BadGguf, MissingArchitectureIsAnError) {
    // Rename the key general.architecture so the file has none: the reader must say so.
    std::string bytes = model_bytes("stories260K-f32.gguf");
    const auto at = bytes.find("general.architecture");
    ASSERT_NE(at, std::string::npos);
    bytes[at] = 'X';
    expect_rejected(bytes, "no general.architecture");
}
