#include "support/hash_cache.h"

#include "support/atomic_file.h"
#include "support/error.h"
#include "support/sha256.h"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>

#include <sys/stat.h>

namespace switchyard {

std::filesystem::path default_hash_cache_dir() {
    if (const char * dir = std::getenv("SWITCHYARD_CACHE_DIR"); dir != nullptr && *dir != '\0')
        return std::filesystem::path(dir) / "hashes";
    if (const char * xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0')
        return std::filesystem::path(xdg) / "switchyard" / "hashes";
    const char * home = std::getenv("HOME");
    return std::filesystem::path(home != nullptr && *home != '\0' ? home : ".") / ".cache" / "switchyard" / "hashes";
}

std::string cached_sha256_file(const std::filesystem::path & path, std::uint64_t offset,
                               const HashCacheOptions & options) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || static_cast<std::uintmax_t>(st.st_size) < options.min_bytes ||
        options.dir.empty())
        return sha256_file(path, offset);
    // The inode too: a file replaced by a rename (as every atomic writer does) is another file even
    // when size and time agree.
    const std::string file_id =
        fmt::format("{} {}.{:09d} {}:{}", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_dev, st.st_ino);
    std::error_code ec;
    const std::string absolute = std::filesystem::weakly_canonical(path, ec).string();
    // One entry per file and offset, named by a digest of both; it holds them again, so a name
    // collision is read as a miss.
    const std::string who = fmt::format("{}\n{}", absolute, offset);
    const auto entry = options.dir / (sha256_bytes(who) + ".txt");
    const std::string stamp = fmt::format("{}\n{}\n", who, file_id);
    if (std::ifstream in(entry); in) {
        std::stringstream text;
        text << in.rdbuf();
        const std::string s = text.str();
        // The stamp, then a 64-digit digest and a newline: anything else is a miss.
        if (s.size() == stamp.size() + 65 && s.compare(0, stamp.size(), stamp) == 0 && s.back() == '\n')
            return s.substr(stamp.size(), 64);
    }
    const std::string digest = sha256_file(path, offset);
    try {
        std::filesystem::create_directories(options.dir);
        write_file_atomically(entry, stamp + digest + "\n");
    } catch (const std::exception &) {
        // A read-only or full cache folder: the digest is right all the same.
    }
    return digest;
}

}  // namespace switchyard
