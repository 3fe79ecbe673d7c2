// Streaming access to a GGUF's float tensors, and rewriting a GGUF tensor by tensor with some float
// weights changed on the way (pruning, AWQ scaling): metadata and every other byte stay as they were.
#pragma once

#include <ggml-cpp.h>
#include <ggml.h>
#include <gguf.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace switchyard::compress {

// A GGUF's tensor index, with reads of single tensors from the file.
class GgufReader {
public:
    explicit GgufReader(const std::filesystem::path & path);  // throws switchyard::Error if unreadable

    const gguf_context * gguf() const { return gguf_.get(); }
    std::int64_t count() const { return gguf_get_n_tensors(gguf_.get()); }
    ggml_tensor * tensor(std::int64_t i) const;
    ggml_tensor * find(const std::string & name) const;  // nullptr when absent

    // The tensor's bytes as stored; throws on a truncated file.
    void read(std::int64_t i, std::vector<char> & raw);
    // An F32/F16/BF16 tensor's values; throws for other types or absent names.
    std::vector<float> floats(const std::string & name);

private:
    struct FileClose {
        void operator()(std::FILE * f) const { std::fclose(f); }
    };

    std::filesystem::path path_;
    gguf_context_ptr gguf_;
    ggml_context_ptr tensors_;
    std::unique_ptr<std::FILE, FileClose> file_;
};

bool is_float_tensor(const ggml_tensor * t);  // F32, F16 or BF16
std::vector<float> to_floats(const ggml_tensor * t, const std::vector<char> & raw);
void from_floats(const ggml_tensor * t, const std::vector<float> & values, std::vector<char> & raw);

// Called for each float tensor in file order; changes `values` in place and returns true, or
// returns false to copy the tensor's bytes unchanged.
using TensorChange = std::function<bool(const ggml_tensor * t, std::vector<float> & values)>;

// Writes `input` to `output` (a path the caller commits atomically), one tensor at a time.
// Throws switchyard::Error when a read or write fails.
void rewrite_gguf(const std::filesystem::path & input, const std::filesystem::path & output,
                  const TensorChange & change);

}  // namespace switchyard::compress
