// SHA-256 of files, to identify models and data by content (recipes, results store).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace switchyard {

// Lower-case hex digest of the file's bytes from `offset` to the end (offset 0: the whole file).
// Throws switchyard::Error if it cannot be read.
std::string sha256_file(const std::filesystem::path & path, std::uint64_t offset = 0);

// Lower-case hex digest of bytes in memory.
std::string sha256_bytes(std::string_view bytes);

}  // namespace switchyard
