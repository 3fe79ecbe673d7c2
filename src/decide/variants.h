// The plan's variants of the base model: the importance matrix, each variant built once into the
// output folder (reused while its settings, the base and the matrix are unchanged), and variants
// whose tensors come out byte-identical evaluated once.
#pragma once

#include "decide/decision.h"
#include "decide/plan_file.h"

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace switchyard::decide {

struct VariantBuildOptions {
    std::filesystem::path models_dir;  // where variants and the importance matrix are kept
    std::string base_hash;  // sha256 of the base file, part of every variant's key
    std::filesystem::path results;  // the results store: mix variants keep and reuse their trials there
    int threads = 0;
    bool progress = true;
    std::function<void(const std::string & line)> note;
};

struct BuiltVariants {
    std::vector<Candidate> variants;  // more bits per weight first; each carries its method ladder and place on it
    std::size_t built = 0;
    std::size_t reused = 0;
};

// Builds (or reuses) every variant the plan names, as candidates with the original's capabilities.
// A variant whose tensor data is byte-identical to a milder one's carries `skipped` naming it.
BuiltVariants build_variants(const Plan & plan, const Candidate & original, const VariantBuildOptions & options);

// What identifies a model's weights: the sha256 of its tensor index (names, types, shapes) and of
// its tensor data, without the metadata (which names the file, the tool, the importance matrix).
std::string tensor_data_hash(const std::filesystem::path & model);

}  // namespace switchyard::decide
