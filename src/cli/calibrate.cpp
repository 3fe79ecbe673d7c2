// `switchyard calibrate MODEL --data FILE... -o IMATRIX`: an importance matrix from your own text.
#include "cli/commands.h"
#include "cli/engine_flags.h"
#include "compress/calibrate.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

namespace switchyard::cli {

void add_calibrate(CLI::App & app) {
    auto * cmd = app.add_subcommand(
        "calibrate",
        "Collect an importance matrix by running a model over your own text (llama.cpp GGUF imatrix format)");
    auto o = std::make_shared<compress::CalibrateOptions>();
    auto out = std::make_shared<std::filesystem::path>();
    cmd->add_option("MODEL", o->model, "GGUF model to calibrate")->required();
    cmd->add_option("--data", o->data, "Calibration data: plain-text files, or task suites (.jsonl, their items' text)")
        ->required();
    cmd->add_option("-o,--output", *out, "Where to write the imatrix (GGUF)")->required();
    cmd->add_option("--chunks", o->chunks, "Calibration samples: chunks of --ctx tokens (100-500 is the usual range)")
        ->capture_default_str();
    cmd->add_option("--skip-chunks", o->skip_chunks, "Skip this many chunks first (e.g. to keep them for evaluation)");
    add_chunk_context(*cmd, o->context);
    cmd->add_flag("--normalize", o->normalize, "Collapse whitespace and drop characters the vocabulary cannot encode");
    cmd->add_flag("--include-output", o->include_output, "Also collect for output.weight");
    add_threads(*cmd, o->threads);
    cmd->add_option("--parallel", o->parallel, "Chunks decoded side by side")->capture_default_str();
    cmd->callback([o, out] {
        const auto r = compress::calibrate(*o);
        compress::save_imatrix(r.imatrix, *out);
        fmt::print(
            "wrote {}: {} weight matrices from {} chunks of {} tokens ({} chunks available), {:.0f} tokens/s, perplexity {:.4f}\n",
            out->string(), r.imatrix.entries.size(), r.chunks_used, r.imatrix.chunk_size, r.chunks_available,
            r.tokens / std::max(r.seconds, 1e-9), r.perplexity());
        if (r.chunks_used < 100)
            fmt::print("note: {} samples is fewer than the 100-500 usually recommended\n", r.chunks_used);
        if (r.dropped_characters > 0)
            fmt::print("note: --normalize dropped {} characters the vocabulary cannot encode\n", r.dropped_characters);
    });
}

}  // namespace switchyard::cli
