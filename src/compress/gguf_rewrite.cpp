#include "compress/gguf_rewrite.h"

#include "model/engine_log.h"
#include "support/error.h"

#include <cerrno>
#include <cstring>

namespace switchyard::compress {

GgufReader::GgufReader(const std::filesystem::path & path) : path_(path) {
    ggml_context * raw = nullptr;
    model::clear_engine_error();
    gguf_.reset(gguf_init_from_file(path.c_str(), {.no_alloc = true, .ctx = &raw}));
    tensors_.reset(raw);
    if (!gguf_) throw Error("{}: cannot read: {}", path.string(), model::last_engine_error());
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) throw Error("{}: cannot open: {}", path.string(), std::strerror(errno));
}

ggml_tensor * GgufReader::tensor(std::int64_t i) const {
    return ggml_get_tensor(tensors_.get(), gguf_get_tensor_name(gguf_.get(), i));
}

ggml_tensor * GgufReader::find(const std::string & name) const { return ggml_get_tensor(tensors_.get(), name.c_str()); }

void GgufReader::read(std::int64_t i, std::vector<char> & raw) {
    raw.resize(gguf_get_tensor_size(gguf_.get(), i));
    const auto offset = static_cast<long>(gguf_get_data_offset(gguf_.get()) + gguf_get_tensor_offset(gguf_.get(), i));
    if (std::fseek(file_.get(), offset, SEEK_SET) != 0 ||
        std::fread(raw.data(), 1, raw.size(), file_.get()) != raw.size()) {
        throw Error("{}: cannot read tensor {} (truncated file?)", path_.string(),
                    gguf_get_tensor_name(gguf_.get(), i));
    }
}

std::vector<float> GgufReader::floats(const std::string & name) {
    const auto i = gguf_find_tensor(gguf_.get(), name.c_str());
    if (i < 0) throw Error("{}: has no tensor {}", path_.string(), name);
    const ggml_tensor * t = tensor(i);
    if (!is_float_tensor(t))
        throw Error("{}: {} is {}, not F32/F16/BF16", path_.string(), name, ggml_type_name(t->type));
    std::vector<char> raw;
    read(i, raw);
    return to_floats(t, raw);
}

bool is_float_tensor(const ggml_tensor * t) {
    return t->type == GGML_TYPE_F32 || t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_BF16;
}

std::vector<float> to_floats(const ggml_tensor * t, const std::vector<char> & raw) {
    const auto n = ggml_nelements(t);
    std::vector<float> values(static_cast<std::size_t>(n));
    switch (t->type) {
        case GGML_TYPE_F32: std::memcpy(values.data(), raw.data(), values.size() * sizeof(float)); break;
        case GGML_TYPE_F16:
            ggml_fp16_to_fp32_row(reinterpret_cast<const ggml_fp16_t *>(raw.data()), values.data(), n);
            break;
        case GGML_TYPE_BF16:
            ggml_bf16_to_fp32_row(reinterpret_cast<const ggml_bf16_t *>(raw.data()), values.data(), n);
            break;
        default: break;
    }
    return values;
}

void from_floats(const ggml_tensor * t, const std::vector<float> & values, std::vector<char> & raw) {
    const auto n = ggml_nelements(t);
    switch (t->type) {
        case GGML_TYPE_F32: std::memcpy(raw.data(), values.data(), values.size() * sizeof(float)); break;
        case GGML_TYPE_F16: ggml_fp32_to_fp16_row(values.data(), reinterpret_cast<ggml_fp16_t *>(raw.data()), n); break;
        case GGML_TYPE_BF16:
            ggml_fp32_to_bf16_row(values.data(), reinterpret_cast<ggml_bf16_t *>(raw.data()), n);
            break;
        default: break;
    }
}

void rewrite_gguf(const std::filesystem::path & input, const std::filesystem::path & output,
                  const TensorChange & change) {
    GgufReader in(input);
    gguf_context_ptr out(gguf_init_empty());
    gguf_set_kv(out.get(), in.gguf());
    for (std::int64_t i = 0; i < in.count(); ++i) gguf_add_tensor(out.get(), in.tensor(i));

    std::unique_ptr<std::FILE, int (*)(std::FILE *)> dst(std::fopen(output.c_str(), "wb"), std::fclose);
    if (!dst) throw Error("{}: cannot open for writing: {}", output.string(), std::strerror(errno));
    std::vector<char> meta(gguf_get_meta_size(out.get()));
    gguf_get_meta_data(out.get(), meta.data());
    bool ok = std::fwrite(meta.data(), 1, meta.size(), dst.get()) == meta.size();

    std::vector<char> raw;
    std::uint64_t written = 0;  // bytes of the data section so far
    const std::vector<char> padding(gguf_get_alignment(out.get()), 0);
    for (std::int64_t i = 0; i < in.count() && ok; ++i) {
        const ggml_tensor * t = in.tensor(i);
        in.read(i, raw);
        if (is_float_tensor(t)) {
            std::vector<float> values = to_floats(t, raw);
            if (change(t, values)) from_floats(t, values, raw);
        }
        const std::uint64_t offset = gguf_get_tensor_offset(out.get(), i);
        ok = ok && std::fwrite(padding.data(), 1, offset - written, dst.get()) == offset - written;
        ok = ok && std::fwrite(raw.data(), 1, raw.size(), dst.get()) == raw.size();
        written = offset + raw.size();
    }
    const std::uint64_t end = GGML_PAD(written, padding.size());
    ok = ok && std::fwrite(padding.data(), 1, end - written, dst.get()) == end - written;
    ok = (std::fclose(dst.release()) == 0) && ok;  // fclose flushes: a full disk shows up here
    if (!ok) throw Error("{}: cannot write: {}", output.string(), std::strerror(errno));
}

}  // namespace switchyard::compress
