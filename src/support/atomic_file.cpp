#include "support/atomic_file.h"

#include "support/error.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <unistd.h>

namespace switchyard {

namespace {

// Temporary files in progress, removed if Ctrl-C or a kill (SIGINT, SIGTERM) ends the process:
// the signal handler may only touch fixed storage and call async-signal-safe unlink().
constexpr int kMaxPending = 32;
char pending_paths[kMaxPending][4096];
std::atomic<bool> pending_used[kMaxPending];

void remove_pending_and_die(int signal) {
    for (int i = 0; i < kMaxPending; ++i) {
        if (pending_used[i].load()) ::unlink(pending_paths[i]);
    }
    std::signal(signal, SIG_DFL);
    std::raise(signal);
}

void install_cleanup_handlers() {
    static std::once_flag once;
    std::call_once(once, [] {
        for (const int sig : {SIGINT, SIGTERM}) {
            struct sigaction current {};
            // Leave a handler the program installed itself (a server's, say) alone.
            if (::sigaction(sig, nullptr, &current) == 0 && current.sa_handler == SIG_DFL)
                std::signal(sig, remove_pending_and_die);
        }
    });
}

int register_pending(const std::filesystem::path & path) {
    install_cleanup_handlers();
    const std::string text = path.string();
    if (text.size() >= sizeof pending_paths[0]) return -1;
    for (int i = 0; i < kMaxPending; ++i) {
        bool expected = false;
        if (pending_used[i].compare_exchange_strong(expected, true)) {
            std::memcpy(pending_paths[i], text.c_str(), text.size() + 1);
            return i;
        }
    }
    return -1;  // too many at once: such a file is still removed on normal failure paths
}

void unregister_pending(int slot) {
    if (slot >= 0) pending_used[slot].store(false);
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
    const auto folder = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
    if (!std::filesystem::is_directory(folder))
        throw Error("{}: the folder {} does not exist", target_.string(), folder.string());
    std::random_device rd;
    temp_ = folder /
        ("." + target_.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
         std::to_string(rd() % 100000));
    cleanup_slot_ = register_pending(temp_);
}

AtomicFile::~AtomicFile() {
    if (!committed_) {
        std::error_code ec;
        std::filesystem::remove(temp_, ec);
    }
    unregister_pending(cleanup_slot_);
}

void AtomicFile::commit() {
    std::error_code ec;
    std::filesystem::rename(temp_, target_, ec);
    if (ec) throw Error("{}: cannot move the finished file into place: {}", target_.string(), ec.message());
    committed_ = true;
}

std::string read_whole_file(const std::filesystem::path & path, const std::string & what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("{}: cannot open the {}", path.string(), what);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
}

void write_file_atomically(const std::filesystem::path & path, const std::string & contents) {
    AtomicFile file(path);
    std::FILE * out = std::fopen(file.temp_path().c_str(), "wb");
    if (out == nullptr) throw Error("{}: cannot write: {}", path.string(), std::strerror(errno));
    const bool written = std::fwrite(contents.data(), 1, contents.size(), out) == contents.size();
    // fclose flushes: a full disk shows up here as well.
    const bool closed = std::fclose(out) == 0;
    if (!written || !closed) throw Error("{}: cannot write: {}", path.string(), std::strerror(errno));
    file.commit();
}

}  // namespace switchyard
