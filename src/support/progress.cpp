#include "support/progress.h"

#include <unistd.h>

namespace switchyard {

std::string rough_duration(double seconds) {
    char text[32];
    if (seconds < 90)
        std::snprintf(text, sizeof text, "%.0f s", seconds);
    else if (seconds < 90 * 60)
        std::snprintf(text, sizeof text, "%.0f min", seconds / 60);
    else
        std::snprintf(text, sizeof text, "%.1f h", seconds / 3600);
    return text;
}

std::string time_left(double seconds) {
    char text[48];
    std::snprintf(text, sizeof text, "about %s left", rough_duration(seconds).c_str());
    return text;
}

namespace {

double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Progress::Progress(std::string what, std::size_t total, std::string unit)
    : Progress(std::move(what), total, std::move(unit), Options{.terminal = ::isatty(STDERR_FILENO) != 0}) {}

Progress::Progress(std::string what, std::size_t total, std::string unit, Options options)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), options_(std::move(options)) {
    if (!options_.clock) options_.clock = steady_seconds;
    start_ = options_.clock();
}

Progress::~Progress() {
    if (options_.terminal && shown_) std::fputc('\n', options_.out);
}

void Progress::update(std::size_t done, const std::string & extra) {
    const double now = options_.clock();
    const double elapsed = now - start_;
    const bool finished = done >= total_;
    // Short work leaves no trace but its stage's summary; long work ends where it was shown.
    if (elapsed < options_.quiet_seconds && !shown_) return;
    if (finished ? !shown_ && elapsed < options_.quiet_seconds
                 : shown_ && now - last_write_ < (options_.terminal ? 0.2 : options_.log_every_seconds))
        return;
    shown_ = true;
    last_write_ = now;
    const double rate = elapsed > 0 ? done / elapsed : 0.0;
    const double eta = rate > 0 && total_ > done ? (total_ - done) / rate : 0.0;
    const double fraction = total_ > 0 ? static_cast<double>(done) / total_ : 1.0;
    const std::string tail = extra.empty() ? "" : ", " + extra;
    if (options_.terminal) {
        constexpr int width = 30;
        const int filled = static_cast<int>(fraction * width);
        std::fprintf(options_.out, "\r%s [%.*s%*s] %zu/%zu %s (%.1f/s, %s%s)\033[K", what_.c_str(), filled,
                     "##############################", width - filled, "", done, total_, unit_.c_str(), rate,
                     time_left(eta).c_str(), tail.c_str());
    } else {
        // With the time left once there is a rate to judge it by.
        const std::string left = done > 0 && !finished ? ", " + time_left(eta) : "";
        std::fprintf(options_.out, "%s: %zu/%zu %s (%.0f%%, %.1f/s%s%s)\n", what_.c_str(), done, total_, unit_.c_str(),
                     fraction * 100, rate, left.c_str(), tail.c_str());
    }
    std::fflush(options_.out);
}

}  // namespace switchyard
