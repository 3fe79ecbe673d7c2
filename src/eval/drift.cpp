#include "eval/drift.h"

#include "support/atomic_file.h"
#include "support/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace switchyard::eval {

bool scored_position(std::size_t pos, std::size_t length) { return pos >= length / 2 && pos + 1 < length; }

Reference record_reference(engine::LlamaEngine & original, std::vector<std::vector<engine::Token>> chunks, int k) {
    Reference ref;
    ref.chunks = std::move(chunks);
    ref.vocab_size = original.model().vocab_size;
    ref.k = k > 0 ? std::min(k, original.model().vocab_size) : original.model().vocab_size;
    // Positions arrive in order within each chunk and chunks in order, so appending keeps one index.
    const auto wanted = [&](std::size_t s, std::size_t pos) { return scored_position(pos, ref.chunks[s].size()); };
    original.forward(ref.chunks, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
        const double norm = stats::log_sum_exp(logits);
        ref.top.push_back(stats::top_k_logprobs(logits, norm, ref.k));
        ref.target_logprob.push_back(static_cast<float>(logits[ref.chunks[s][pos + 1]] - norm));
    }, wanted);
    return ref;
}

Drift measure_drift(const Reference & ref, engine::LlamaEngine & variant) {
    if (variant.model().vocab_size != ref.vocab_size) {
        throw Error("drift: the models' vocabularies differ (" + std::to_string(ref.vocab_size) + " vs " +
                    std::to_string(variant.model().vocab_size) + " tokens); compare them by task accuracy instead");
    }
    std::vector<double> kld;
    kld.reserve(ref.top.size());
    std::size_t agree = 0;
    double nll = 0.0, reference_nll = 0.0, delta_p_squares = 0.0;
    const auto wanted = [&](std::size_t s, std::size_t pos) { return scored_position(pos, ref.chunks[s].size()); };
    variant.forward(ref.chunks, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
        const auto & base = ref.top[kld.size()];
        kld.push_back(stats::kl_divergence_topk(base, logits));
        const auto best = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        agree += best == base.front().index;
        const double logprob = logits[ref.chunks[s][pos + 1]] - stats::log_sum_exp(logits);
        const double reference_logprob = ref.target_logprob[kld.size() - 1];
        nll -= logprob;
        reference_nll -= reference_logprob;
        delta_p_squares += std::pow(std::exp(logprob) - std::exp(reference_logprob), 2);
    }, wanted);
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

constexpr char kMagic[8] = {'S', 'Y', 'R', 'E', 'F', '0', '0', '1'};

template <typename T>
void put(std::string & out, const T & value) {
    out.append(reinterpret_cast<const char *>(&value), sizeof value);
}

// Reads values from a file image, failing cleanly at its end.
class Reader {
public:
    Reader(std::string bytes, std::filesystem::path path) : bytes_(std::move(bytes)), path_(std::move(path)) {}
    template <typename T>
    T get() {
        if (at_ + sizeof(T) > bytes_.size()) throw Error(path_.string() + ": truncated reference file");
        T value;
        std::memcpy(&value, bytes_.data() + at_, sizeof value);
        at_ += sizeof value;
        return value;
    }
    // A count that the rest of the file must be able to hold, at `unit` bytes each.
    std::uint64_t count(std::size_t unit) {
        const auto n = get<std::uint64_t>();
        if (unit > 0 && n > (bytes_.size() - at_) / unit) throw Error(path_.string() + ": corrupt reference file (a count exceeds the file)");
        return n;
    }
    bool done() const { return at_ == bytes_.size(); }

private:
    std::string bytes_;
    std::filesystem::path path_;
    std::size_t at_ = 0;
};

}  // namespace

void save_reference(const Reference & ref, const std::filesystem::path & path) {
    std::string out(kMagic, sizeof kMagic);
    put(out, static_cast<std::int32_t>(ref.k));
    put(out, static_cast<std::int32_t>(ref.vocab_size));
    put(out, static_cast<std::uint64_t>(ref.chunks.size()));
    for (const auto & chunk : ref.chunks) {
        put(out, static_cast<std::uint64_t>(chunk.size()));
        out.append(reinterpret_cast<const char *>(chunk.data()), chunk.size() * sizeof(engine::Token));
    }
    put(out, static_cast<std::uint64_t>(ref.top.size()));
    for (std::size_t i = 0; i < ref.top.size(); ++i) {
        put(out, ref.target_logprob[i]);
        for (const auto & t : ref.top[i]) {
            put(out, t.index);
            put(out, t.logprob);
        }
    }
    write_file_atomically(path, out);
}

Reference load_reference(const std::filesystem::path & path) {
    Reader r(read_whole_file(path, "reference file"), path);
    char magic[sizeof kMagic];
    for (char & c : magic) c = r.get<char>();
    if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) throw Error(path.string() + ": not a switchyard reference file");
    Reference ref;
    ref.k = r.get<std::int32_t>();
    ref.vocab_size = r.get<std::int32_t>();
    if (ref.k < 1 || ref.vocab_size < 1 || ref.k > ref.vocab_size) throw Error(path.string() + ": corrupt reference file (bad k or vocabulary size)");
    ref.chunks.resize(r.count(sizeof(std::uint64_t)));
    for (auto & chunk : ref.chunks) {
        chunk.resize(r.count(sizeof(engine::Token)));
        for (auto & t : chunk) {
            t = r.get<engine::Token>();
            if (t < 0 || t >= ref.vocab_size) throw Error(path.string() + ": corrupt reference file (token outside the vocabulary)");
        }
    }
    const std::size_t per_position = sizeof(float) + static_cast<std::size_t>(ref.k) * (sizeof(std::int32_t) + sizeof(float));
    ref.top.resize(r.count(per_position));
    ref.target_logprob.resize(ref.top.size());
    for (std::size_t i = 0; i < ref.top.size(); ++i) {
        ref.target_logprob[i] = r.get<float>();
        ref.top[i].resize(static_cast<std::size_t>(ref.k));
        for (auto & t : ref.top[i]) {
            t.index = r.get<std::int32_t>();
            t.logprob = r.get<float>();
            if (t.index < 0 || t.index >= ref.vocab_size) throw Error(path.string() + ": corrupt reference file (token outside the vocabulary)");
        }
    }
    std::size_t expected = 0;
    for (const auto & chunk : ref.chunks) {
        for (std::size_t pos = 0; pos < chunk.size(); ++pos) expected += scored_position(pos, chunk.size());
    }
    if (!r.done() || expected != ref.top.size()) throw Error(path.string() + ": corrupt reference file (sizes do not agree)");
    return ref;
}

}  // namespace switchyard::eval
