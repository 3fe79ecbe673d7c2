#include "cli/engine_flags.h"

#include <CLI/CLI.hpp>

namespace switchyard::cli {

namespace {

std::string with_use(const std::string & help, const std::string & use) {
    return use.empty() ? help : help + "; " + use;
}

}  // namespace

CLI::Option * add_threads(CLI::App & cmd, int & threads, const std::string & use) {
    return cmd.add_option("-t,--threads", threads, with_use("CPU threads (default 0: every hardware thread)", use));
}

CLI::Option * add_chunk_context(CLI::App & cmd, int & context) {
    return cmd.add_option("-c,--ctx", context,
                          "Tokens per text chunk (default 0: min(512, the model's declared context))");
}

CLI::Option * add_context(CLI::App & cmd, int & context, const std::string & use) {
    return cmd
        .add_option("-c,--ctx", context,
                    with_use("Context length in tokens per sequence (0: the model's declared length)", use))
        ->capture_default_str();
}

CLI::Option * add_gpu_layers(CLI::App & cmd, int & layers) {
    return cmd.add_option("-g,--gpu-layers", layers, "Layers to offload to a GPU, -1 for all (GPU builds only)")
        ->capture_default_str();
}

}  // namespace switchyard::cli
