#include "compress/calibrate.h"

#include "engine/llama_engine.h"
#include "engine/normalize.h"
#include "support/error.h"
#include "support/progress.h"

#include <ggml.h>

#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <sstream>

namespace switchyard::compress {

namespace {

// The weight's name inside a graph node's name: llama.cpp may decorate it ("... #name# ...").
std::string weight_name(const char * node_name) {
    std::string name = node_name;
    const auto open = name.find('#');
    if (open == std::string::npos) return name;
    const auto close = name.find('#', open + 1);
    return name.substr(open + 1, close == std::string::npos ? std::string::npos : close - open - 1);
}

bool all_finite(const float * v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) return false;
    }
    return true;
}

// Receives ggml's scheduler callback and sums squared inputs of every weight matrix product,
// the same statistic llama-imatrix collects.
class ActivationCollector {
public:
    explicit ActivationCollector(bool include_output) : include_output_(include_output) {}

    static bool callback(ggml_tensor * t, bool ask, void * self) { return static_cast<ActivationCollector *>(self)->observe(t, ask); }

    std::map<std::string, ImatrixEntry> take() {
        if (!error_.empty()) throw Error(error_);
        return std::move(stats_);
    }

private:
    bool wanted(const ggml_tensor * t) const {
        if (t->op != GGML_OP_MUL_MAT && t->op != GGML_OP_MUL_MAT_ID) return false;
        if (t->src[1]->type != GGML_TYPE_F32) return false;
        const std::string name = weight_name(t->src[0]->name);
        return name.rfind("blk.", 0) == 0 || (include_output_ && name == "output.weight");
    }

    // Bytes of `t` readable on the host, copied off an accelerator when needed.
    const char * host_data(const ggml_tensor * t, std::vector<char> & buffer) {
        if (ggml_backend_buffer_is_host(t->buffer)) return static_cast<const char *>(t->data);
        buffer.resize(ggml_nbytes(t));
        ggml_backend_tensor_get(t, buffer.data(), 0, buffer.size());
        return buffer.data();
    }

    bool observe(ggml_tensor * t, bool ask) {
        if (ask) return wanted(t);
        if (!error_.empty()) return true;
        const ggml_tensor * src0 = t->src[0];
        const ggml_tensor * src1 = t->src[1];
        const std::string name = weight_name(src0->name);
        const char * data = host_data(src1, src1_copy_);
        const std::int64_t columns = src1->ne[0];
        auto & e = stats_[name];

        if (t->op == GGML_OP_MUL_MAT_ID) {
            // Mixture of experts: each routed token adds to its expert's slice and count.
            const ggml_tensor * ids = t->src[2];
            const std::int64_t n_experts = src0->ne[2];
            if (e.sums.empty()) {
                e.sums.assign(columns * n_experts, 0.0f);
                e.counts.assign(n_experts, 0);
            }
            const char * id_data = host_data(ids, ids_copy_);
            for (std::int64_t slot = 0; slot < ids->ne[0]; ++slot) {
                for (std::int64_t row = 0; row < src1->ne[2]; ++row) {
                    const auto expert = *reinterpret_cast<const std::int32_t *>(id_data + row * ids->nb[1] + slot * ids->nb[0]);
                    if (expert < 0 || expert >= n_experts) continue;
                    const auto * x = reinterpret_cast<const float *>(data + (slot % src1->ne[1]) * src1->nb[1] + row * src1->nb[2]);
                    float * acc = e.sums.data() + expert * columns;
                    for (std::int64_t j = 0; j < columns; ++j) acc[j] += x[j] * x[j];
                    ++e.counts[expert];
                }
            }
        } else {
            const std::int64_t matrices = src0->ne[2] * src0->ne[3];
            if (e.sums.empty()) {
                e.sums.assign(columns * matrices, 0.0f);
                e.counts.assign(1, 0);
            }
            for (std::int64_t i3 = 0; i3 < src1->ne[3]; ++i3) {
                for (std::int64_t i2 = 0; i2 < src1->ne[2]; ++i2) {
                    const std::int64_t matrix = (i3 % src0->ne[3]) * src0->ne[2] + (i2 % src0->ne[2]);
                    float * acc = e.sums.data() + matrix * columns;
                    for (std::int64_t row = 0; row < src1->ne[1]; ++row) {
                        const auto * x = reinterpret_cast<const float *>(data + row * src1->nb[1] + i2 * src1->nb[2] + i3 * src1->nb[3]);
                        for (std::int64_t j = 0; j < columns; ++j) acc[j] += x[j] * x[j];
                    }
                }
            }
            e.counts[0] += ggml_nrows(src1) / matrices;
        }
        if (!all_finite(e.sums.data(), e.sums.size())) {
            error_ = "calibration saw non-finite activations entering " + name + ": the model or its input is broken";
        }
        return true;
    }

    bool include_output_;
    std::map<std::string, ImatrixEntry> stats_;
    std::vector<char> src1_copy_;
    std::vector<char> ids_copy_;
    std::string error_;
};

std::string read_text(const std::filesystem::path & path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path.string() + ": cannot open the calibration data");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

double CalibrateResult::perplexity() const { return scored_tokens > 0 ? std::exp(-logprob_sum / scored_tokens) : 0.0; }

CalibrateResult calibrate(const CalibrateOptions & o) {
    if (o.data.empty()) throw Error("calibrate: no data given (--data FILE)");
    if (o.chunks < 1) throw Error("calibrate: --chunks must be at least 1");
    if (o.skip_chunks < 0) throw Error("calibrate: --skip-chunks cannot be negative");

    ActivationCollector collector(o.include_output);
    engine::LlamaEngineOptions eo;
    eo.model_path = o.model;
    eo.threads = o.threads;
    eo.context_length = o.context;
    eo.parallel = std::max(1, o.parallel);
    eo.eval_callback = &ActivationCollector::callback;
    eo.eval_callback_data = &collector;
    if (o.context <= 0) {
        const auto declared = model::inspect_gguf(o.model).context_length;
        eo.context_length = static_cast<int>(std::min<std::uint64_t>(512, declared > 0 ? declared : 512));
    }
    engine::LlamaEngine engine(eo);
    const int ctx = engine.model().context_length;
    if (ctx < 2) throw Error("calibrate: the context must hold at least 2 tokens");

    CalibrateResult result;
    std::vector<engine::Token> tokens;
    std::vector<std::string> datasets;
    for (const auto & path : o.data) {
        std::string text = read_text(path);
        if (o.normalize) {
            engine::NormalizeStats stats;
            text = engine::normalize_for_vocabulary(engine, text, &stats);
            result.dropped_characters += stats.dropped;
        }
        std::vector<engine::Token> part;
        try {
            part = engine.tokenize(text, false);
        } catch (const Error & e) {
            throw Error(path.string() + ": " + e.what() + "; pass --normalize to collapse whitespace and drop such characters");
        }
        tokens.insert(tokens.end(), part.begin(), part.end());
        datasets.push_back(path.filename().string());
    }

    // The same chunks llama-imatrix makes, so the two tools' matrices agree: the token stream
    // starts with BOS, is cut every `ctx` tokens, and each chunk's first token becomes BOS.
    const std::vector<engine::Token> bos = engine.tokenize("", true);  // empty for models without BOS
    tokens.insert(tokens.begin(), bos.begin(), bos.end());
    const auto chunk_length = static_cast<std::size_t>(ctx);
    const std::size_t available = tokens.size() / chunk_length;
    result.chunks_available = static_cast<int>(available > static_cast<std::size_t>(o.skip_chunks) ? available - o.skip_chunks : 0);
    if (result.chunks_available < 1) {
        throw Error(fmt::format("calibrate: the data holds {} tokens, {} chunks of {}; nothing left after skipping {}", tokens.size(), available,
                                ctx, o.skip_chunks));
    }
    result.chunks_used = std::min(o.chunks, result.chunks_available);

    const auto start = std::chrono::steady_clock::now();
    const auto per_call = static_cast<std::size_t>(eo.parallel);
    std::optional<Progress> progress;
    if (o.progress) progress.emplace("calibrate", static_cast<std::size_t>(result.chunks_used), "chunks");
    for (int done = 0; done < result.chunks_used;) {
        std::vector<std::vector<engine::Token>> batch;
        for (std::size_t k = 0; k < per_call && done + static_cast<int>(k) < result.chunks_used; ++k) {
            const std::size_t begin = (static_cast<std::size_t>(o.skip_chunks) + done + k) * chunk_length;
            auto & chunk = batch.emplace_back(tokens.begin() + begin, tokens.begin() + begin + chunk_length);
            if (!bos.empty()) chunk.front() = bos.front();
        }
        for (const double logprob : engine.evaluate(batch)) result.logprob_sum += logprob;
        result.scored_tokens += batch.size() * (chunk_length - 1);
        done += static_cast<int>(batch.size());
        result.tokens += batch.size() * static_cast<std::size_t>(ctx);
        if (progress) {
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            progress->update(static_cast<std::size_t>(done), fmt::format("{:.0f} tok/s", secs > 0 ? result.tokens / secs : 0.0));
        }
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.imatrix.entries = collector.take();
    if (result.imatrix.entries.empty()) throw Error("calibrate: saw no weight matrix products; is this a language model?");
    result.imatrix.datasets = datasets;
    result.imatrix.chunk_count = result.chunks_used;
    result.imatrix.chunk_size = ctx;
    return result;
}

}  // namespace switchyard::compress
