// SHA-256 of large files (models, importance matrices, text), computed once and then kept by the
// file's absolute path, size, modification time and inode: hashing a multi-GB model reads every byte, and
// recipes, the results store and the plan each need its digest.
//
// The trade-off: a file rewritten in place with the same size and the same modification time keeps
// its old digest (the same assumption make and rsync make). Anything that changes either is hashed
// again. Entries are small files in a cache folder, each written atomically, so processes sharing
// the folder never read half an entry; two computing the same digest at once both write it, the
// same bytes. A cache that cannot be read or written only costs the hashing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace switchyard {

// ${SWITCHYARD_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/switchyard}/hashes: beside the engine setup.sh caches.
std::filesystem::path default_hash_cache_dir();

struct HashCacheOptions {
    std::filesystem::path dir = default_hash_cache_dir();
    std::uintmax_t min_bytes = 16u << 20;  // smaller files are hashed every time: faster than a cache entry is worth
};

// sha256_file(path, offset), from the cache when the file's size and modification time match the
// entry's. Throws switchyard::Error if the file cannot be read.
std::string cached_sha256_file(const std::filesystem::path & path, std::uint64_t offset = 0,
                               const HashCacheOptions & options = {});

}  // namespace switchyard
