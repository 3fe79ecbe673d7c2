// Routes llama.cpp / ggml log output into switchyard's logger and keeps the last error it reported.
#pragma once

#include <string>

namespace switchyard::model {

// Installs the log callback for llama.cpp and ggml (idempotent). Engine messages go to the
// switchyard logger at debug level (errors at warn), so they stay out of the way unless -v.
void install_engine_log();

// Installs the log callback and initialises llama.cpp's backends, once per process.
void init_llama_backend();

// Clears, then later returns, the most recent error llama.cpp logged on this thread:
// the detail behind a failed C call, for the one-line message the user sees.
void clear_engine_error();
std::string last_engine_error();

}  // namespace switchyard::model
