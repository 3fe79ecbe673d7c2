// The engine check: proves that the llama.cpp build runs on this CPU and computes right, once
// after it is built, before a user's plan finds out in the middle of its work.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace switchyard::compress {

struct EngineCheckOptions {
    std::filesystem::path work_dir;  // receives the synthetic model, its variants and the reference
    int threads = 0;  // 0: every hardware thread, and at least 4 (thread-local CPU state is checked too)
};

// One kernel family's verdict: its variant's predictions against the F32 model's on the same tokens.
struct KernelCheck {
    std::string type;  // llama-quantize name, "F32" for the reference
    std::string tensor_type;  // the ggml type the family's matrices must really have
    bool passed = false;
    std::string failure;  // what went wrong, as one sentence; empty when passed
    double mean_kld = 0;  // nats per token
    double top1_agreement = 0;
    std::size_t positions = 0;
};

// Writes the synthetic "check" model (rows of 256, so every type applies), quantizes it to one
// type per kernel family (Q8_0, Q4_0, Q4_K_S, IQ4_NL) and evaluates a few hundred tokens with each,
// every step in a child process: an engine that dies (an instruction this CPU lacks, such as
// ggml's AMX kernels) or computes garbage is reported with the type and step where it happened.
// `on_check` sees each verdict as it comes. Stops at the first failure.
std::vector<KernelCheck> check_engine(const EngineCheckOptions & options,
                                      const std::function<void(const KernelCheck &)> & on_check = {});

}  // namespace switchyard::compress
