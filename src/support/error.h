// The error type every switchyard module throws for problems a user can fix (bad input, bad flags).
#pragma once

#include <stdexcept>
#include <string>

namespace switchyard {

// Carries one complete, user-facing sentence; the CLI prints it as the single error line.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string & message) : std::runtime_error(message) {}
};

}  // namespace switchyard
