#include "compress/imatrix.h"

#include "model/engine_log.h"
#include "support/atomic_file.h"
#include "support/error.h"

#include <ggml.h>
#include <ggml-cpp.h>
#include <gguf.h>

#include <cmath>
#include <fstream>
#include <memory>

namespace switchyard::compress {

namespace {

constexpr const char * kDatasetsKey = "imatrix.datasets";
constexpr const char * kChunkCountKey = "imatrix.chunk_count";
constexpr const char * kChunkSizeKey = "imatrix.chunk_size";
constexpr std::string_view kSumsSuffix = ".in_sum2";
constexpr std::string_view kCountsSuffix = ".counts";

bool strip_suffix(std::string & s, std::string_view suffix) {
    if (s.size() <= suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
    s.resize(s.size() - suffix.size());
    return true;
}

// The legacy format: n_entries, then per entry name, ncall, nval, values (already divided by the
// count and multiplied by ncall); optionally the chunk count and a dataset name.
Imatrix load_legacy(const std::filesystem::path & path) {
    const std::string where = path.string();
    std::ifstream in(path, std::ios::binary);
    const auto file_size = std::filesystem::file_size(path);
    auto read_i32 = [&](const char * what) {
        std::int32_t v = 0;
        in.read(reinterpret_cast<char *>(&v), sizeof v);
        if (!in) throw Error("{}: not an imatrix file (GGUF or legacy): cannot read {}", where, what);
        return v;
    };
    Imatrix m;
    m.legacy = true;
    const std::int32_t n = read_i32("the entry count");
    if (n < 1 || static_cast<std::uint64_t>(n) > file_size / 16)
        throw Error("{}: not an imatrix file: implausible entry count {}", where, n);
    for (std::int32_t i = 0; i < n; ++i) {
        const std::int32_t len = read_i32("an entry name length");
        if (len < 1 || len > 4096)
            throw Error("{}: corrupt imatrix: entry {} has a name of length {}", where, i + 1, len);
        std::string name(static_cast<std::size_t>(len), '\0');
        in.read(name.data(), len);
        const std::int32_t ncall = read_i32("a call count");
        const std::int32_t nval = read_i32("a value count");
        if (nval < 1 || static_cast<std::uint64_t>(nval) * sizeof(float) > file_size) {
            throw Error("{}: corrupt imatrix: entry '{}' claims {} values", where, name, nval);
        }
        auto & e = m.entries[name];
        e.sums.resize(static_cast<std::size_t>(nval));
        in.read(reinterpret_cast<char *>(e.sums.data()), static_cast<std::streamsize>(nval * sizeof(float)));
        if (!in) throw Error("{}: truncated imatrix: entry '{}' is cut short", where, name);
        e.counts = {ncall};
    }
    if (in.peek() != EOF) {
        m.chunk_count = read_i32("the chunk count");
        std::int32_t len = 0;
        if (in.read(reinterpret_cast<char *>(&len), sizeof len) && len > 0 && len < 65536) {
            std::string dataset(static_cast<std::size_t>(len), '\0');
            if (in.read(dataset.data(), len)) m.datasets.push_back(dataset);
        }
    }
    return m;
}

}  // namespace

Imatrix load_imatrix(const std::filesystem::path & path) {
    const std::string where = path.string();
    if (!std::filesystem::is_regular_file(path)) throw Error("{}: no such imatrix file", where);
    char magic[4] = {};
    std::ifstream(path, std::ios::binary).read(magic, 4);
    if (std::string_view(magic, 4) != "GGUF") return load_legacy(path);

    model::install_engine_log();
    model::clear_engine_error();
    ggml_context * raw_ctx = nullptr;
    gguf_context_ptr gguf(gguf_init_from_file(path.c_str(), {.no_alloc = false, .ctx = &raw_ctx}));
    ggml_context_ptr ctx(raw_ctx);
    if (!gguf) throw Error("{}: corrupt or truncated imatrix GGUF: {}", where, model::last_engine_error());

    Imatrix m;
    if (const auto id = gguf_find_key(gguf.get(), kDatasetsKey); id >= 0 &&
        gguf_get_kv_type(gguf.get(), id) == GGUF_TYPE_ARRAY && gguf_get_arr_type(gguf.get(), id) == GGUF_TYPE_STRING) {
        for (std::size_t i = 0; i < gguf_get_arr_n(gguf.get(), id); ++i)
            m.datasets.emplace_back(gguf_get_arr_str(gguf.get(), id, i));
    }
    auto u32 = [&](const char * key) -> std::int32_t {
        const auto id = gguf_find_key(gguf.get(), key);
        return id >= 0 && gguf_get_kv_type(gguf.get(), id) == GGUF_TYPE_UINT32
            ? static_cast<std::int32_t>(gguf_get_val_u32(gguf.get(), id))
            : 0;
    };
    m.chunk_count = u32(kChunkCountKey);
    m.chunk_size = u32(kChunkSizeKey);

    std::map<std::string, std::pair<const ggml_tensor *, const ggml_tensor *>> parts;
    for (ggml_tensor * t = ggml_get_first_tensor(ctx.get()); t != nullptr; t = ggml_get_next_tensor(ctx.get(), t)) {
        std::string name = t->name;
        if (strip_suffix(name, kSumsSuffix)) {
            parts[name].first = t;
        } else if (strip_suffix(name, kCountsSuffix)) {
            parts[name].second = t;
        }
    }
    if (parts.empty())
        throw Error("{}: GGUF file holds no importance data (no <tensor>.in_sum2 / .counts tensors)", where);
    for (const auto & [name, pair] : parts) {
        const auto [sums, counts] = pair;
        if (sums == nullptr || counts == nullptr)
            throw Error("{}: corrupt imatrix: '{}' lacks its in_sum2 or counts tensor", where, name);
        if (sums->type != GGML_TYPE_F32 || counts->type != GGML_TYPE_F32)
            throw Error("{}: corrupt imatrix: '{}' is not F32", where, name);
        const auto n_counts = ggml_nelements(counts);
        if (n_counts < 1 || ggml_nelements(sums) % n_counts != 0)
            throw Error("{}: corrupt imatrix: '{}' has inconsistent sizes", where, name);
        auto & e = m.entries[name];
        const auto * s = static_cast<const float *>(sums->data);
        e.sums.assign(s, s + ggml_nelements(sums));
        const auto * c = static_cast<const float *>(counts->data);
        for (std::int64_t i = 0; i < n_counts; ++i) e.counts.push_back(std::lround(c[i]));
    }
    return m;
}

void save_imatrix(const Imatrix & m, const std::filesystem::path & path) {
    std::size_t data_bytes = 0;
    for (const auto & [name, e] : m.entries) {
        data_bytes +=
            2 * ggml_tensor_overhead() + (e.sums.size() + e.counts.size()) * sizeof(float) + 2 * GGML_MEM_ALIGN;
    }
    ggml_context_ptr ctx(ggml_init({.mem_size = data_bytes + 1024, .mem_buffer = nullptr, .no_alloc = false}));
    gguf_context_ptr gguf(gguf_init_empty());
    gguf_set_val_str(gguf.get(), "general.type", "imatrix");
    std::vector<const char *> datasets;
    for (const auto & d : m.datasets) datasets.push_back(d.c_str());
    gguf_set_arr_str(gguf.get(), kDatasetsKey, datasets.data(), datasets.size());
    gguf_set_val_u32(gguf.get(), kChunkCountKey, static_cast<std::uint32_t>(m.chunk_count));
    gguf_set_val_u32(gguf.get(), kChunkSizeKey, static_cast<std::uint32_t>(m.chunk_size));
    for (const auto & [name, e] : m.entries) {
        const auto n_mat = static_cast<std::int64_t>(e.counts.size());
        ggml_tensor * sums =
            ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, static_cast<std::int64_t>(e.sums.size()) / n_mat, n_mat);
        ggml_tensor * counts = ggml_new_tensor_2d(ctx.get(), GGML_TYPE_F32, 1, n_mat);
        ggml_format_name(sums, "%s.in_sum2", name.c_str());
        ggml_format_name(counts, "%s.counts", name.c_str());
        std::copy(e.sums.begin(), e.sums.end(), static_cast<float *>(sums->data));
        for (std::int64_t i = 0; i < n_mat; ++i)
            static_cast<float *>(counts->data)[i] = static_cast<float>(e.counts[i]);
        gguf_add_tensor(gguf.get(), sums);
        gguf_add_tensor(gguf.get(), counts);
    }
    AtomicFile out(path);
    if (!gguf_write_to_file(gguf.get(), out.temp_path().c_str(), false))
        throw Error("{}: cannot write the imatrix (disk full?)", path.string());
    out.commit();
}

std::map<std::string, std::vector<float>> column_importance(const Imatrix & m) {
    std::map<std::string, std::vector<float>> out;
    for (const auto & [name, e] : m.entries) {
        auto & v = out[name];
        v.resize(e.sums.size());
        if (m.legacy) {
            const auto ncall = e.counts.empty() ? 0 : e.counts[0];
            for (std::size_t i = 0; i < v.size(); ++i)
                v[i] = ncall > 0 ? e.sums[i] / static_cast<float>(ncall) : e.sums[i];
            continue;
        }
        const std::size_t columns = e.sums.size() / e.counts.size();
        for (std::size_t mat = 0; mat < e.counts.size(); ++mat) {
            const auto count = static_cast<float>(e.counts[mat]);
            for (std::size_t j = 0; j < columns; ++j) {
                v[mat * columns + j] = count > 0 ? e.sums[mat * columns + j] / count : 1.0f;
            }
        }
    }
    return out;
}

void check_imatrix_matches(const Imatrix & m, const model::ModelInfo & info,
                           const std::filesystem::path & imatrix_path) {
    const auto & model_path = info.path;
    std::map<std::string, const model::TensorInfo *> tensors;
    for (const auto & t : info.tensors) tensors[t.name] = &t;
    for (const auto & [name, e] : m.entries) {
        const auto it = tensors.find(name);
        if (it == tensors.end()) {
            throw Error("{}: this imatrix is not for {}: it has data for '{}', a tensor the model lacks",
                        imatrix_path.string(), model_path.string(), name);
        }
        const auto & ne = it->second->shape;
        const std::uint64_t columns = ne.empty() ? 0 : ne[0];
        const std::uint64_t matrices = ne.size() > 2 ? ne[2] : 1;
        if (e.sums.size() != columns * matrices) {
            throw Error("{}: this imatrix is not for {}: '{}' has {} values but the tensor has {} input columns",
                        imatrix_path.string(), model_path.string(), name, e.sums.size(), columns * matrices);
        }
    }
}

}  // namespace switchyard::compress
