// Progress lines: none for short work, then at most one log line every ten seconds (or an
// in-place bar on a terminal), on a clock the test moves.
#include "support/progress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

using switchyard::Progress;

namespace {

// What a Progress writes while `work` drives it, its clock at `*now`.
template <typename Work>
std::string written(bool terminal, double * now, Work work) {
    char * buffer = nullptr;
    std::size_t size = 0;
    std::FILE * out = open_memstream(&buffer, &size);
    {
        Progress p("quantize", 100, "tensors", {.terminal = terminal, .out = out, .clock = [now] { return *now; }});
        work(p);
    }
    std::fclose(out);
    std::string text(buffer, size);
    std::free(buffer);
    return text;
}

// 100 items over `seconds`, an update every half second.
auto steady_work(double * now, double seconds) {
    return [now, seconds](Progress & p) {
        for (double t = 0; t <= seconds + 1e-9; t += 0.5) {
            *now = t;
            p.update(static_cast<std::size_t>(100 * t / seconds));
        }
    };
}

}  // namespace

TEST(Progress, ShortWorkShowsNothing) {
    double now = 0;
    EXPECT_EQ(written(false, &now, steady_work(&now, 1.5)), "");
    EXPECT_EQ(written(true, &now, steady_work(&now, 1.5)), "");
}

TEST(Progress, ALogGetsALineAfterTwoSecondsThenOneEveryTenAndTheEnd) {
    double now = 0;
    const std::string log = written(false, &now, steady_work(&now, 60));
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 7) << log;  // at 2, 12, 22, 32, 42, 52 s and the end at 60
    EXPECT_EQ(log.rfind("quantize: 3/100 tensors (3%, 1.5/s, about 65 s left)\n", 0), 0u) << log;
    EXPECT_NE(log.find("quantize: 100/100 tensors (100%, 1.7/s)\n"), std::string::npos) << log;
    EXPECT_EQ(log.find('\r'), std::string::npos);
}

TEST(Progress, ATerminalGetsOneLineRedrawnInPlace) {
    double now = 0;
    const std::string bar = written(true, &now, steady_work(&now, 10));
    EXPECT_EQ(bar.front(), '\r');
    EXPECT_EQ(std::count(bar.begin(), bar.end(), '\n'), 1) << bar;  // ended once, by the destructor
    EXPECT_NE(bar.find("100/100 tensors"), std::string::npos) << bar;
}
