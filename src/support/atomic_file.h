// Output files that appear whole or not at all: written to a temporary file beside the target,
// renamed into place on commit, removed if the writer fails, or Ctrl-C (SIGINT) or SIGTERM ends
// the process before that.
#pragma once

#include <filesystem>
#include <string>

namespace switchyard {

class AtomicFile {
public:
    explicit AtomicFile(std::filesystem::path target);
    ~AtomicFile();  // removes the temporary file unless committed
    AtomicFile(const AtomicFile &) = delete;
    AtomicFile & operator=(const AtomicFile &) = delete;

    // Where to write; same folder as the target, so the rename is atomic.
    const std::filesystem::path & temp_path() const { return temp_; }
    const std::filesystem::path & target() const { return target_; }

    // Moves the finished temporary file into place. Throws switchyard::Error on failure.
    void commit();

private:
    std::filesystem::path target_;
    std::filesystem::path temp_;
    bool committed_ = false;
    int cleanup_slot_ = -1;  // registration for removal on SIGINT/SIGTERM
};

// Writes `contents` to `path` atomically. Throws switchyard::Error (with the reason) on failure.
void write_file_atomically(const std::filesystem::path & path, const std::string & contents);

// The whole file's bytes. Throws switchyard::Error "PATH: cannot open the WHAT" when unreadable.
std::string read_whole_file(const std::filesystem::path & path, const std::string & what);

}  // namespace switchyard
