// The error types switchyard throws: Error for problems a user can fix (bad input, bad flags),
// InvariantError (through SWITCHYARD_INVARIANT) for a bug of switchyard's own.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace switchyard {

// Carries one complete, user-facing sentence; the CLI prints it as the single error line.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string & message) : std::runtime_error(message) {}
    // The sentence from a format string checked at compile time: Error("{}: no such file", name).
    // (At least one argument: a lone string is the sentence itself, braces and all.)
    template <typename First, typename... Rest>
    explicit Error(fmt::format_string<First, Rest...> format, First && first, Rest &&... rest)
        : std::runtime_error(fmt::format(format, std::forward<First>(first), std::forward<Rest>(rest)...)) {}
};

// A broken invariant: switchyard's bug, not the user's. Thrown rather than aborting so that one bad
// request costs a 500 (serve) or one command's failure, never the process; the message says where.
class InvariantError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

}  // namespace switchyard

// Checks what must hold whatever the input; WHAT says it in words ("the route's models are loaded").
#define SWITCHYARD_INVARIANT(condition, what)                                                           \
    do {                                                                                                \
        if (!(condition))                                                                               \
            throw ::switchyard::InvariantError(                                                         \
                fmt::format("{}:{}: invariant broken: {} ({})", __FILE__, __LINE__, what, #condition)); \
    } while (false)
