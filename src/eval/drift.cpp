#include "eval/drift.h"

#include "support/atomic_file.h"
#include "support/error.h"
#include "support/progress.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include <fmt/format.h>

namespace switchyard::eval {

void to_json(nlohmann::json & j, const Drift & d) {
    j = {{"kld", d.kld},
         {"top1_agreement", d.top1_agreement},
         {"rms_delta_p", d.rms_delta_p},
         {"perplexity", d.perplexity},
         {"nll_sum", d.nll_sum},
         {"reference_perplexity", d.reference_perplexity},
         {"positions", d.positions}};
}

void from_json(const nlohmann::json & j, Drift & d) {
    j.at("kld").get_to(d.kld);
    j.at("top1_agreement").get_to(d.top1_agreement);
    j.at("rms_delta_p").get_to(d.rms_delta_p);
    j.at("perplexity").get_to(d.perplexity);
    d.nll_sum = j.value("nll_sum", 0.0);
    j.at("reference_perplexity").get_to(d.reference_perplexity);
    j.at("positions").get_to(d.positions);
}

bool scored_position(std::size_t pos, std::size_t length) { return pos >= length / 2 && pos + 1 < length; }

engine::LlamaEngineOptions chunk_engine_options(const std::filesystem::path & model, std::uint64_t vocab_size,
                                                int threads, int context) {
    constexpr std::uint64_t kLogitsBudget = 32u << 20, kBatchTokens = 512;
    const auto length = static_cast<std::uint64_t>(std::max(context, 2));
    const std::uint64_t scored = length - 1 - length / 2;  // the positions scored_position takes
    const std::uint64_t by_memory = kLogitsBudget / std::max<std::uint64_t>(1, scored * vocab_size * sizeof(float));
    const std::uint64_t chunks = std::max<std::uint64_t>(1, std::min(kBatchTokens / length, by_memory));
    // A chunk longer than a batch is fed in parts of 512 tokens, the latter ones all scored.
    const std::uint64_t batch = length > kBatchTokens ? kBatchTokens : chunks * length;
    return {.model_path = model,
            .threads = threads,
            .context_length = context,
            .parallel = static_cast<int>(chunks),
            .batch_size = static_cast<int>(batch),
            .max_outputs = static_cast<int>(std::min(batch, chunks * scored))};
}

namespace {

constexpr double kMaxCode = 65535.0;

std::size_t scored_count(const std::vector<std::vector<engine::Token>> & chunks) {
    std::size_t n = 0;
    for (const auto & chunk : chunks) {
        for (std::size_t pos = 0; pos < chunk.size(); ++pos) n += scored_position(pos, chunk.size());
    }
    return n;
}

}  // namespace

void Reference::row(std::size_t i, std::span<stats::IndexedLogprob> out) const {
    const std::size_t at = i * static_cast<std::size_t>(k);
    for (std::size_t j = 0; j < out.size(); ++j) {
        out[j] = {ids[at + j], static_cast<float>(best[i] - static_cast<double>(codes[at + j]) * step[i])};
    }
}

Reference record_reference(engine::LlamaEngine & original, std::vector<std::vector<engine::Token>> chunks, int k,
                           bool progress) {
    Reference ref;
    ref.chunks = std::move(chunks);
    ref.vocab_size = original.model().vocab_size;
    ref.k = k > 0 ? std::min(k, original.model().vocab_size) : original.model().vocab_size;
    const std::size_t positions = scored_count(ref.chunks), width = static_cast<std::size_t>(ref.k);
    ref.ids.reserve(positions * width);
    ref.codes.reserve(positions * width);
    ref.best.reserve(positions);
    ref.step.reserve(positions);
    ref.target_logprob.reserve(positions);
    // One row and one sorting buffer for every position: nothing is allocated per position.
    std::vector<stats::IndexedLogprob> top(width);
    std::vector<std::int32_t> scratch;
    std::optional<Progress> bar;
    if (progress) bar.emplace("original's predictions", positions, "positions");
    // Positions arrive in order within each chunk and chunks in order, so appending keeps one index.
    const auto wanted = [&](std::size_t s, std::size_t pos) { return scored_position(pos, ref.chunks[s].size()); };
    original.forward(
        ref.chunks,
        [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
            const double norm = stats::log_sum_exp(logits);
            stats::top_k_logprobs(logits, norm, top, scratch);
            const double best = top.front().logprob, range = best - top.back().logprob;
            const double step = std::isfinite(range) && range > 0 ? range / kMaxCode : 0.0;
            for (const auto & t : top) {
                ref.ids.push_back(t.index);
                ref.codes.push_back(
                    step > 0 ? static_cast<std::uint16_t>(std::min(kMaxCode, std::round((best - t.logprob) / step)))
                             : 0);
            }
            ref.best.push_back(static_cast<float>(best));
            ref.step.push_back(static_cast<float>(step));
            ref.target_logprob.push_back(static_cast<float>(logits[ref.chunks[s][pos + 1]] - norm));
            if (bar) bar->update(ref.target_logprob.size());
        },
        wanted);
    return ref;
}

Drift measure_drift(const Reference & ref, engine::LlamaEngine & variant, bool progress) {
    if (variant.model().vocab_size != ref.vocab_size) {
        throw Error("drift: the models' vocabularies differ ({} vs {} tokens); compare them by task accuracy instead",
                    ref.vocab_size, variant.model().vocab_size);
    }
    std::vector<double> kld;
    kld.reserve(ref.positions());
    std::vector<stats::IndexedLogprob> base(static_cast<std::size_t>(ref.k));  // decoded row, reused
    std::optional<Progress> bar;
    if (progress) bar.emplace("drift", ref.positions(), "positions");
    std::size_t agree = 0;
    double nll = 0.0, reference_nll = 0.0, delta_p_squares = 0.0;
    const auto wanted = [&](std::size_t s, std::size_t pos) { return scored_position(pos, ref.chunks[s].size()); };
    variant.forward(
        ref.chunks,
        [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
            const std::size_t i = kld.size();
            ref.row(i, base);
            kld.push_back(stats::kl_divergence_topk(base, logits));
            const auto best =
                static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            agree += best == base.front().index;
            const double logprob = logits[ref.chunks[s][pos + 1]] - stats::log_sum_exp(logits);
            const double reference_logprob = ref.target_logprob[i];
            nll -= logprob;
            reference_nll -= reference_logprob;
            delta_p_squares += std::pow(std::exp(logprob) - std::exp(reference_logprob), 2);
            if (bar) bar->update(kld.size());
        },
        wanted);
    Drift d;
    d.positions = kld.size();
    d.top1_agreement = d.positions > 0 ? static_cast<double>(agree) / d.positions : 0.0;
    d.nll_sum = nll;
    d.perplexity = d.positions > 0 ? std::exp(nll / d.positions) : 0.0;
    d.reference_perplexity = d.positions > 0 ? std::exp(reference_nll / d.positions) : 0.0;
    d.rms_delta_p = d.positions > 0 ? std::sqrt(delta_p_squares / d.positions) : 0.0;
    d.kld = stats::summarize(std::move(kld));
    return d;
}

namespace {

constexpr char kMagicPrefix[5] = {'S', 'Y', 'R', 'E', 'F'};
constexpr char kPerplexityMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};  // llama-perplexity's base file

template <typename T>
void put(std::string & out, const T & value) {
    out.append(reinterpret_cast<const char *>(&value), sizeof value);
}

void put_ids(std::string & out, std::span<const engine::Token> ids, std::size_t id_bytes) {
    for (const auto id : ids) {
        if (id_bytes == 2)
            put(out, static_cast<std::uint16_t>(id));
        else
            put(out, static_cast<std::int32_t>(id));
    }
}

// Reads values from a file image, failing cleanly at its end.
class Reader {
public:
    Reader(std::string bytes, std::filesystem::path path) : bytes_(std::move(bytes)), path_(std::move(path)) {}
    template <typename T>
    T get() {
        if (at_ + sizeof(T) > bytes_.size())
            throw Error("{}: truncated base file (an interrupted copy?); record it again with --save-base",
                        path_.string());
        T value;
        std::memcpy(&value, bytes_.data() + at_, sizeof value);
        at_ += sizeof value;
        return value;
    }
    // A count that the rest of the file must be able to hold, at `unit` bytes each.
    std::uint64_t count(std::size_t unit) {
        const auto n = get<std::uint64_t>();
        if (unit > 0 && n > (bytes_.size() - at_) / unit)
            throw Error("{}: truncated or corrupt base file (a count exceeds the file)", path_.string());
        return n;
    }
    engine::Token id(std::size_t id_bytes, int vocab_size) {
        const engine::Token t = id_bytes == 2 ? static_cast<engine::Token>(get<std::uint16_t>()) : get<std::int32_t>();
        if (t < 0 || t >= vocab_size)
            throw Error("{}: corrupt base file (token outside the vocabulary)", path_.string());
        return t;
    }
    bool done() const { return at_ == bytes_.size(); }
    std::size_t size() const { return bytes_.size(); }
    const char * data() const { return bytes_.data(); }

private:
    std::string bytes_;
    std::filesystem::path path_;
    std::size_t at_ = 0;
};

// 16-bit ids while the vocabulary fits in them.
std::size_t id_bytes_for(int vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// The header's first 8 bytes: "SYREF" and the format version in three digits; a clear sentence for
// anything else.
void check_magic(const Reader & r, const std::filesystem::path & path) {
    const std::string name = path.string();
    if (r.size() >= sizeof kPerplexityMagic && std::memcmp(r.data(), kPerplexityMagic, sizeof kPerplexityMagic) == 0) {
        throw Error(
            "{}: a llama-perplexity --kl-divergence-base file; --base-file reads the files `switchyard eval --save-base` writes",
            name);
    }
    if (r.size() < 8 || std::memcmp(r.data(), kMagicPrefix, sizeof kMagicPrefix) != 0) {
        throw Error("{}: not a switchyard base file (`switchyard eval --save-base` writes them)", name);
    }
    const std::string digits(r.data() + 5, 3);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        throw Error("{}: not a switchyard base file (`switchyard eval --save-base` writes them)", name);
    }
    const int version = std::stoi(digits);
    if (version != kReferenceFormat) {
        throw Error(
            "{}: base file format {}, {} switchyard; this one reads format {}: record it again with --save-base", name,
            version, version < kReferenceFormat ? "written by an older" : "from a newer", kReferenceFormat);
    }
}

}  // namespace

void save_reference(const Reference & ref, const std::filesystem::path & path) {
    const std::size_t id_bytes = id_bytes_for(ref.vocab_size), width = static_cast<std::size_t>(ref.k);
    std::string out = fmt::format("SYREF{:03d}", kReferenceFormat);
    put(out, static_cast<std::uint32_t>(ref.k));
    put(out, static_cast<std::uint32_t>(ref.vocab_size));
    put(out, static_cast<std::uint32_t>(id_bytes));
    put(out, std::uint32_t{0});  // reserved
    put(out, static_cast<std::uint64_t>(ref.chunks.size()));
    for (const auto & chunk : ref.chunks) {
        put(out, static_cast<std::uint64_t>(chunk.size()));
        put_ids(out, chunk, id_bytes);
    }
    put(out, static_cast<std::uint64_t>(ref.positions()));
    out.reserve(out.size() + ref.positions() * (3 * sizeof(float) + width * (id_bytes + sizeof(std::uint16_t))));
    for (std::size_t i = 0; i < ref.positions(); ++i) {
        put(out, ref.target_logprob[i]);
        put(out, ref.best[i]);
        put(out, ref.step[i]);
        put_ids(out, std::span(ref.ids).subspan(i * width, width), id_bytes);
        out.append(reinterpret_cast<const char *>(ref.codes.data() + i * width), width * sizeof(std::uint16_t));
    }
    write_file_atomically(path, out);
}

Reference load_reference(const std::filesystem::path & path) {
    Reader r(read_whole_file(path, "base file"), path);
    check_magic(r, path);
    for (int i = 0; i < 8; ++i) r.get<char>();
    Reference ref;
    const auto k = r.get<std::uint32_t>(), vocab = r.get<std::uint32_t>(), id_bytes = r.get<std::uint32_t>();
    r.get<std::uint32_t>();
    if (k < 1 || vocab < 1 || k > vocab ||
        vocab > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()) ||
        id_bytes != id_bytes_for(static_cast<int>(vocab))) {
        throw Error("{}: corrupt base file (bad k, vocabulary size or id width)", path.string());
    }
    ref.k = static_cast<int>(k);
    ref.vocab_size = static_cast<int>(vocab);
    ref.chunks.resize(r.count(sizeof(std::uint64_t)));
    for (auto & chunk : ref.chunks) {
        chunk.resize(r.count(id_bytes));
        for (auto & t : chunk) t = r.id(id_bytes, ref.vocab_size);
    }
    const std::size_t width = k, per_position = 3 * sizeof(float) + width * (id_bytes + sizeof(std::uint16_t));
    const std::size_t positions = r.count(per_position);
    if (positions != scored_count(ref.chunks))
        throw Error("{}: corrupt base file (positions and tokens do not agree)", path.string());
    ref.ids.reserve(positions * width);
    ref.codes.reserve(positions * width);
    ref.best.reserve(positions);
    ref.step.reserve(positions);
    ref.target_logprob.reserve(positions);
    for (std::size_t i = 0; i < positions; ++i) {
        ref.target_logprob.push_back(r.get<float>());
        ref.best.push_back(r.get<float>());
        ref.step.push_back(r.get<float>());
        if (!std::isfinite(ref.best.back()) || !std::isfinite(ref.step.back()) || ref.step.back() < 0) {
            throw Error("{}: corrupt base file (a stored scale is not a number)", path.string());
        }
        for (std::size_t j = 0; j < width; ++j) ref.ids.push_back(r.id(id_bytes, ref.vocab_size));
        for (std::size_t j = 0; j < width; ++j) ref.codes.push_back(r.get<std::uint16_t>());
    }
    if (!r.done()) throw Error("{}: corrupt base file (bytes after its end)", path.string());
    return ref;
}

}  // namespace switchyard::eval
