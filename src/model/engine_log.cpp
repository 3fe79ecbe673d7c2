#include "model/engine_log.h"

#include <ggml.h>
#include <llama.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

namespace switchyard::model {

namespace {

// Plain character buffers, not std::string: llama.cpp also logs from destructors of objects that
// outlive this thread's thread_local objects (an engine held in a static), and these have no
// destructor to run first.
constexpr std::size_t kLine = 1024;
thread_local char last_error[kLine];
thread_local char pending_line[kLine];  // the line so far: llama.cpp may log one in several calls
thread_local ggml_log_level pending_level = GGML_LOG_LEVEL_INFO;
thread_local const std::function<void(std::string_view)> * line_observer = nullptr;

void append(char * buffer, const char * text) {
    const std::size_t used = std::strlen(buffer);
    std::strncat(buffer, text, kLine - 1 - used);
}

void on_log(ggml_log_level level, const char * text, void *) {
    // A line may come in several calls, the later ones not always marked CONT (llama_model_quantize
    // logs a tensor's name, then its sizes): a line runs to its newline, at its most severe level.
    if (level != GGML_LOG_LEVEL_CONT) {
        if (pending_line[0] == '\0' || level > pending_level) pending_level = level;
    }
    append(pending_line, text);
    const std::size_t length = std::strlen(pending_line);
    if (length == 0 || (pending_line[length - 1] != '\n' && length < kLine - 1)) return;
    std::string line(pending_line);
    pending_line[0] = '\0';
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    if (line.empty()) return;
    if (line_observer != nullptr) (*line_observer)(line);
    if (pending_level == GGML_LOG_LEVEL_ERROR) {
        std::strncpy(last_error, line.c_str(), kLine - 1);
        spdlog::debug("engine: {}", line);
    } else if (pending_level == GGML_LOG_LEVEL_WARN) {
        spdlog::debug("engine: {}", line);
    } else {
        spdlog::trace("engine: {}", line);
    }
}

// ggml aborts the process where it cannot go on; the one a user meets is an RPC worker that went
// away mid-run. One line in switchyard's words instead of ggml's backtrace (which runs gdb).
void on_abort(const char * message) {
    std::fprintf(stderr, "switchyard: error: the engine stopped: %s\n", message);
    std::fflush(stderr);
}

}  // namespace

void install_engine_log() {
    static std::once_flag once;
    std::call_once(once, [] {
        ggml_log_set(on_log, nullptr);
        llama_log_set(on_log, nullptr);
    });
}

void init_llama_backend() {
    static std::once_flag once;
    std::call_once(once, [] {
        install_engine_log();
        ggml_set_abort_callback(on_abort);
        llama_backend_init();
    });
}

EngineLineObserver::EngineLineObserver(std::function<void(std::string_view)> on_line) : on_line_(std::move(on_line)) {
    install_engine_log();
    line_observer = &on_line_;
}

EngineLineObserver::~EngineLineObserver() { line_observer = nullptr; }

void clear_engine_error() { last_error[0] = '\0'; }

std::string last_engine_error() { return last_error; }

}  // namespace switchyard::model
