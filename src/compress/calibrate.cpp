#include "compress/calibrate.h"

#include "eval/drift.h"
#include "eval/text_chunks.h"
#include "engine/llama_engine.h"
#include "stats/logprobs.h"
#include "support/error.h"
#include "support/progress.h"

#include <ggml.h>

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <optional>

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

    static bool callback(ggml_tensor * t, bool ask, void * self) {
        return static_cast<ActivationCollector *>(self)->observe(t, ask);
    }

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
                    const auto expert =
                        *reinterpret_cast<const std::int32_t *>(id_data + row * ids->nb[1] + slot * ids->nb[0]);
                    if (expert < 0 || expert >= n_experts) continue;
                    const auto * x =
                        reinterpret_cast<const float *>(data + (slot % src1->ne[1]) * src1->nb[1] + row * src1->nb[2]);
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
                        const auto * x = reinterpret_cast<const float *>(data + row * src1->nb[1] + i2 * src1->nb[2] +
                                                                         i3 * src1->nb[3]);
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

}  // namespace

double CalibrateResult::perplexity() const { return scored_tokens > 0 ? std::exp(-logprob_sum / scored_tokens) : 0.0; }

CalibrateResult calibrate(const CalibrateOptions & o) {
    if (o.chunks < 1) throw Error("calibrate: --chunks must be at least 1");

    ActivationCollector collector(o.include_output);
    engine::LlamaEngineOptions eo;
    eo.model_path = o.model;
    eo.threads = o.threads;
    eo.context_length = o.context;
    eo.parallel = std::max(1, o.parallel);
    eo.eval_callback = &ActivationCollector::callback;
    eo.eval_callback_data = &collector;
    if (o.context <= 0) eo.context_length = eval::default_chunk_context(model::inspect_gguf(o.model).context_length);
    engine::LlamaEngine engine(eo);
    const int ctx = engine.model().context_length;

    CalibrateResult result;
    const eval::TextChunks text = eval::tokenize_chunks(engine,
                                                        {.files = o.data,
                                                         .context = ctx,
                                                         .skip_chunks = o.skip_chunks,
                                                         .max_chunks = o.chunks,
                                                         .normalize = o.normalize});
    result.chunks_available = static_cast<int>(text.available);
    result.chunks_used = static_cast<int>(text.chunks.size());
    result.dropped_characters = text.dropped_characters;

    const auto start = std::chrono::steady_clock::now();
    const auto per_call = static_cast<std::size_t>(eo.parallel);
    std::optional<Progress> progress;
    if (o.progress) progress.emplace("calibrate", text.chunks.size(), "chunks");
    for (std::size_t done = 0; done < text.chunks.size();) {
        const auto batch = std::span(text.chunks).subspan(done, std::min(per_call, text.chunks.size() - done));
        // Logits at every position, as in llama-imatrix: llama.cpp runs the last layer only where
        // logits are wanted, and the matrix must see every token there too. The perplexity on the
        // way is over each chunk's second half, as llama-imatrix reports it.
        engine.forward(batch, [&](std::size_t s, std::size_t pos, std::span<const float> logits) {
            if (!eval::scored_position(pos, batch[s].size())) return;
            result.logprob_sum += logits[batch[s][pos + 1]] - stats::log_sum_exp(logits);
            ++result.scored_tokens;
        });
        done += batch.size();
        result.tokens += batch.size() * static_cast<std::size_t>(ctx);
        if (progress) {
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            progress->update(done, fmt::format("{:.0f} tok/s", secs > 0 ? result.tokens / secs : 0.0));
        }
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.imatrix.entries = collector.take();
    if (result.imatrix.entries.empty())
        throw Error("calibrate: saw no weight matrix products; is this a language model?");
    result.imatrix.datasets = text.sources;
    result.imatrix.chunk_count = result.chunks_used;
    result.imatrix.chunk_size = ctx;
    return result;
}

}  // namespace switchyard::compress
