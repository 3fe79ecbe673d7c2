#include "decide/search.h"

#include <fmt/format.h>

#include <cstddef>
#include <deque>

namespace switchyard::decide {

std::optional<std::size_t> next_probe(const std::vector<std::optional<Outcome>> & ladder) {
    const auto n = static_cast<std::ptrdiff_t>(ladder.size());
    std::ptrdiff_t failing = n;
    for (std::ptrdiff_t i = 0; i < n; ++i)
        if (ladder[i] == Outcome::fail) {
            failing = i;
            break;
        }
    std::ptrdiff_t passing = -1;
    for (std::ptrdiff_t i = 0; i < failing; ++i)
        if (ladder[i] == Outcome::pass) passing = i;
    // The most aggressive stretch first: a pass there makes everything below it moot.
    for (std::ptrdiff_t hi = failing - 1; hi > passing; --hi) {
        if (ladder[hi]) continue;
        std::ptrdiff_t lo = hi;
        while (lo - 1 > passing && !ladder[lo - 1]) --lo;
        return static_cast<std::size_t>((lo + hi) / 2);
    }
    return std::nullopt;
}

std::vector<std::size_t> probe_order(std::size_t n) {
    std::vector<std::size_t> order;
    std::vector<bool> seen(n, false);
    std::deque<std::vector<std::optional<Outcome>>> states{std::vector<std::optional<Outcome>>(n)};
    while (!states.empty()) {
        auto state = std::move(states.front());
        states.pop_front();
        const auto probe = next_probe(state);
        if (!probe) continue;
        if (!seen[*probe]) {
            seen[*probe] = true;
            order.push_back(*probe);
        }
        for (const auto outcome : {Outcome::pass, Outcome::fail}) {
            state[*probe] = outcome;
            states.push_back(state);
        }
    }
    return order;
}


}  // namespace switchyard::decide
