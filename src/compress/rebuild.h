// Rebuilding a variant from its recipe, checked byte for byte against the recorded output.
#pragma once

#include <filesystem>
#include <string>

namespace switchyard::compress {

struct RebuildResult {
    std::filesystem::path output;
    std::string sha256;
    bool identical = false;  // same sha256 as the recipe records
};

// `parent` / `output` override the recipe's paths when not empty. Throws switchyard::Error when the
// parent is not the file the recipe was made from, or the method is unknown.
RebuildResult rebuild(const std::filesystem::path & recipe_path, const std::filesystem::path & parent,
                      const std::filesystem::path & output);

}  // namespace switchyard::compress
