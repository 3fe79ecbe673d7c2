// Routes llama.cpp / ggml log output into switchyard's logger and keeps the last error it reported.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace switchyard::model {

// Installs the log callback for llama.cpp and ggml (idempotent). Engine messages go to the
// switchyard logger at debug level (errors at warn), so they stay out of the way unless -v.
void install_engine_log();

// Installs the log callback and initialises llama.cpp's backends, once per process.
void init_llama_backend();

// While it lives, sees every whole line llama.cpp logs on the thread that made it: how a C call
// with no progress callback (llama_model_quantize logs "[  12/ 147] name ...") says where it is.
// One per thread at a time; the callback must not throw.
class EngineLineObserver {
public:
    explicit EngineLineObserver(std::function<void(std::string_view line)> on_line);
    ~EngineLineObserver();
    EngineLineObserver(const EngineLineObserver &) = delete;
    EngineLineObserver & operator=(const EngineLineObserver &) = delete;

private:
    std::function<void(std::string_view)> on_line_;
};

// Clears, then later returns, the most recent error llama.cpp logged on this thread:
// the detail behind a failed C call, for the one-line message the user sees.
void clear_engine_error();
std::string last_engine_error();

}  // namespace switchyard::model
