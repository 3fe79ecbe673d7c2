#include "model/engine_log.h"

#include <ggml.h>
#include <llama.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <string>

namespace switchyard::model {

namespace {

thread_local std::string last_error;
thread_local std::string pending_line;  // llama.cpp may log one line in several calls
thread_local ggml_log_level pending_level = GGML_LOG_LEVEL_INFO;

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

void on_log(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_CONT) {
        pending_line += text;
    } else {
        pending_line = text;
        pending_level = level;
    }
    if (pending_line.empty() || pending_line.back() != '\n') return;
    const std::string line = trimmed(pending_line);
    pending_line.clear();
    if (line.empty()) return;
    if (pending_level == GGML_LOG_LEVEL_ERROR) {
        last_error = line;
        spdlog::debug("engine: {}", line);
    } else if (pending_level == GGML_LOG_LEVEL_WARN) {
        spdlog::debug("engine: {}", line);
    } else {
        spdlog::trace("engine: {}", line);
    }
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
        llama_backend_init();
    });
}

void clear_engine_error() { last_error.clear(); }

std::string last_engine_error() { return last_error; }

}  // namespace switchyard::model
