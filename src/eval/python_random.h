// Python's random.Random (Mersenne Twister, seeded from an integer): what lm-eval samples few-shot
// examples with, reproduced so that a suite's few-shot contexts are the ones lm-eval builds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace switchyard::eval {

class PythonRandom {
public:
    // random.Random(seed) for a non-negative integer seed below 2**64.
    explicit PythonRandom(std::uint64_t seed);

    // random.getrandbits(k) for 0 < k <= 32.
    std::uint32_t getrandbits(int k);
    // random.Random._randbelow(n): uniform in [0, n), n > 0.
    std::uint64_t randbelow(std::uint64_t n);
    // The indices random.sample(range(n), k) picks, in the order it picks them (Python 3.11+;
    // its two strategies, a pool for small n and a set of drawn indices otherwise, draw differently).
    std::vector<std::size_t> sample(std::size_t n, std::size_t k);

private:
    std::uint32_t next();

    std::array<std::uint32_t, 624> state_{};
    std::size_t index_ = 624;
};

}  // namespace switchyard::eval
