#include "support/progress.h"

#include <cstdio>

#include <unistd.h>

namespace switchyard {

std::string rough_duration(double seconds) {
    char text[32];
    if (seconds < 90) std::snprintf(text, sizeof text, "%.0f s", seconds);
    else if (seconds < 90 * 60) std::snprintf(text, sizeof text, "%.0f min", seconds / 60);
    else std::snprintf(text, sizeof text, "%.1f h", seconds / 3600);
    return text;
}

std::string time_left(double seconds) {
    char text[48];
    std::snprintf(text, sizeof text, "about %s left", rough_duration(seconds).c_str());
    return text;
}

Progress::Progress(std::string what, std::size_t total, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), terminal_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() {
    if (terminal_ && last_done_ > 0) std::fputc('\n', stderr);
}

void Progress::update(std::size_t done, const std::string & extra) {
    last_done_ = done;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? done / elapsed : 0.0;
    const double eta = rate > 0 && total_ > done ? (total_ - done) / rate : 0.0;
    const double fraction = total_ > 0 ? static_cast<double>(done) / total_ : 1.0;
    const std::string tail = extra.empty() ? "" : ", " + extra;
    if (terminal_) {
        // Redrawing more than a few times a second only costs time.
        if (done < total_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
        last_draw_ = now;
        constexpr int width = 30;
        const int filled = static_cast<int>(fraction * width);
        std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu %s (%.1f/s, %s%s)\033[K", what_.c_str(), filled,
                     "##############################", width - filled, "", done, total_, unit_.c_str(), rate, time_left(eta).c_str(), tail.c_str());
    } else {
        // Logs and CI get one line per tenth of the work.
        const int decile = static_cast<int>(fraction * 10);
        if (decile == last_decile_) return;
        last_decile_ = decile;
        // With the time left once there is a rate to judge it by.
        const std::string left = done > 0 && done < total_ ? ", " + time_left(eta) : "";
        std::fprintf(stderr, "%s: %zu/%zu %s (%.0f%%, %.1f/s%s%s)\n", what_.c_str(), done, total_, unit_.c_str(), fraction * 100, rate, left.c_str(),
                     tail.c_str());
    }
    std::fflush(stderr);
}

}  // namespace switchyard
