// Progress of long work: nothing for work done within a couple of seconds; then a live bar with
// rate and time left on a terminal, or in a log a plain line at most every ten seconds.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>

namespace switchyard {

// "45 s", "12 min", "2.5 h".
std::string rough_duration(double seconds);
// "about 45 s left".
std::string time_left(double seconds);

class Progress {
public:
    struct Options {
        bool terminal;  // redraw one line in place (else: lines for a log)
        double quiet_seconds = 2;  // work finished sooner shows nothing (its stage's own line says it)
        double log_every_seconds = 10;  // in a log, at most one line this often
        std::FILE * out = stderr;
        std::function<double()> clock;  // seconds since any fixed point; default: the steady clock
    };
    // `what` names the work ("calibrate"), `unit` the items counted ("chunks"); on stderr, a bar
    // when it is a terminal.
    Progress(std::string what, std::size_t total, std::string unit);
    Progress(std::string what, std::size_t total, std::string unit, Options options);
    ~Progress();  // ends the bar's line

    // Reports `done` items so far; `extra` is appended (e.g. "1520 tok/s").
    void update(std::size_t done, const std::string & extra = {});

private:
    std::string what_;
    std::string unit_;
    std::size_t total_;
    Options options_;
    bool shown_ = false;  // a bar or a line has been written
    double start_;
    double last_write_ = 0;
};

}  // namespace switchyard
