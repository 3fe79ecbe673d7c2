#include "support/atomic_file.h"

#include "support/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include <unistd.h>

namespace switchyard {

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
    const auto folder = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
    if (!std::filesystem::is_directory(folder)) throw Error(target_.string() + ": the folder " + folder.string() + " does not exist");
    std::random_device rd;
    temp_ = folder / ("." + target_.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000));
}

AtomicFile::~AtomicFile() {
    if (!committed_) {
        std::error_code ec;
        std::filesystem::remove(temp_, ec);
    }
}

void AtomicFile::commit() {
    std::error_code ec;
    std::filesystem::rename(temp_, target_, ec);
    if (ec) throw Error(target_.string() + ": cannot move the finished file into place: " + ec.message());
    committed_ = true;
}

void write_file_atomically(const std::filesystem::path & path, const std::string & contents) {
    AtomicFile file(path);
    std::FILE * out = std::fopen(file.temp_path().c_str(), "wb");
    if (out == nullptr) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
    const bool written = std::fwrite(contents.data(), 1, contents.size(), out) == contents.size();
    // fclose flushes: a full disk shows up here as well.
    const bool closed = std::fclose(out) == 0;
    if (!written || !closed) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
    file.commit();
}

}  // namespace switchyard
