// Progress of long work: a live bar with rate and time left on a terminal; otherwise a plain line per
// tenth of the work, with the time left.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace switchyard {

// "45 s", "12 min", "2.5 h".
std::string rough_duration(double seconds);
// "about 45 s left".
std::string time_left(double seconds);

class Progress {
public:
    // `what` names the work ("calibrate"), `unit` the items counted ("chunks").
    Progress(std::string what, std::size_t total, std::string unit);
    ~Progress();  // ends the bar's line

    // Reports `done` items so far; `extra` is appended (e.g. "1520 tok/s").
    void update(std::size_t done, const std::string & extra = {});

private:
    std::string what_;
    std::string unit_;
    std::size_t total_;
    bool terminal_;
    int last_decile_ = -1;
    std::size_t last_done_ = 0;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace switchyard
