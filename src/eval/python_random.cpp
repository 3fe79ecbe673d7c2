#include "eval/python_random.h"

#include <bit>
#include <cmath>
#include <unordered_set>

namespace switchyard::eval {

// CPython's Modules/_randommodule.c: init_genrand, then init_by_array with the seed's 32-bit
// words, least significant first.
PythonRandom::PythonRandom(std::uint64_t seed) {
    std::vector<std::uint32_t> key{static_cast<std::uint32_t>(seed)};
    if (seed >> 32) key.push_back(static_cast<std::uint32_t>(seed >> 32));
    state_[0] = 19650218u;
    for (std::size_t i = 1; i < state_.size(); ++i)
        state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + static_cast<std::uint32_t>(i);
    const std::size_t n = state_.size();
    std::size_t i = 1, j = 0;
    for (std::size_t k = std::max(n, key.size()); k > 0; --k) {
        state_[i] =
            (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<std::uint32_t>(j);
        ++i;
        ++j;
        if (i >= n) {
            state_[0] = state_[n - 1];
            i = 1;
        }
        if (j >= key.size()) j = 0;
    }
    for (std::size_t k = n - 1; k > 0; --k) {
        state_[i] =
            (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1566083941u)) - static_cast<std::uint32_t>(i);
        ++i;
        if (i >= n) {
            state_[0] = state_[n - 1];
            i = 1;
        }
    }
    state_[0] = 0x80000000u;
}

std::uint32_t PythonRandom::next() {
    constexpr std::size_t n = 624, m = 397;
    if (index_ >= n) {
        for (std::size_t k = 0; k < n; ++k) {
            const std::uint32_t y = (state_[k] & 0x80000000u) | (state_[(k + 1) % n] & 0x7fffffffu);
            state_[k] = state_[(k + m) % n] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        index_ = 0;
    }
    std::uint32_t y = state_[index_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

std::uint32_t PythonRandom::getrandbits(int k) { return next() >> (32 - k); }

std::uint64_t PythonRandom::randbelow(std::uint64_t n) {
    const int k = std::bit_width(n);
    // Few-shot pools hold far fewer than 2**32 documents: one 32-bit word per draw, as CPython.
    std::uint64_t r = getrandbits(k);
    while (r >= n) r = getrandbits(k);
    return r;
}

std::vector<std::size_t> PythonRandom::sample(std::size_t n, std::size_t k) {
    std::vector<std::size_t> out(k);
    std::size_t setsize = 21;
    if (k > 5)
        setsize +=
            static_cast<std::size_t>(std::pow(4.0, std::ceil(std::log(static_cast<double>(k * 3)) / std::log(4.0))));
    if (n <= setsize) {
        std::vector<std::size_t> pool(n);
        for (std::size_t i = 0; i < n; ++i) pool[i] = i;
        for (std::size_t i = 0; i < k; ++i) {
            const auto j = static_cast<std::size_t>(randbelow(n - i));
            out[i] = pool[j];
            pool[j] = pool[n - i - 1];
        }
        return out;
    }
    std::unordered_set<std::size_t> selected;
    for (std::size_t i = 0; i < k; ++i) {
        auto j = static_cast<std::size_t>(randbelow(n));
        while (selected.contains(j)) j = static_cast<std::size_t>(randbelow(n));
        selected.insert(j);
        out[i] = j;
    }
    return out;
}

}  // namespace switchyard::eval
