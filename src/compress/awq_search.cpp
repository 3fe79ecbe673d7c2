// AWQ's numeric core: the grid, the scales for an alpha, and the error a scale leaves after ggml's
// quantizer. Plain values in and out, so tests call it directly.
#include "compress/awq.h"

#include "support/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

namespace switchyard::compress {

std::vector<double> parse_alpha_grid(const std::string & text) {
    double from = 0, to = 0, step = 0;
    char tail = 0;
    if (std::sscanf(text.c_str(), "%lf:%lf:%lf%c", &from, &to, &step, &tail) != 3 || !(from >= 0) || !(to >= from) ||
        !(step > 0) || to > 4) {
        throw Error("--alpha-grid '{}': expected FROM:TO:STEP with 0 <= FROM <= TO <= 4 and STEP > 0, e.g. 0:1:0.05",
                    text);
    }
    std::vector<double> grid;
    // Counted, not accumulated, so 0:1:0.05 ends at exactly 1 and a grid reads the same everywhere.
    const auto n = static_cast<long>(std::floor((to - from) / step + 1e-9));
    for (long i = 0; i <= n; ++i) grid.push_back(from + static_cast<double>(i) * step);
    return grid;
}

std::vector<float> awq_scales(std::span<const float> mean_sq, double alpha) {
    double largest = 0;
    for (const float m : mean_sq) largest = std::max(largest, std::sqrt(std::max(0.0, static_cast<double>(m))));
    const double floor = largest > 0 ? 1e-6 * largest : 1.0;  // a dead channel would get s = 0
    std::vector<double> s(mean_sq.size());
    for (std::size_t j = 0; j < s.size(); ++j)
        s[j] = std::pow(std::max(floor, std::sqrt(std::max(0.0, static_cast<double>(mean_sq[j])))), alpha);
    const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
    const double norm = s.empty() ? 1.0 : std::sqrt(*lo * *hi);
    std::vector<float> out(s.size());
    for (std::size_t j = 0; j < s.size(); ++j) out[j] = static_cast<float>(s[j] / norm);
    return out;
}

namespace {

double rows_error(std::span<const float> weights, std::size_t columns, std::span<const float> mean_sq,
                  std::span<const float> scales, std::span<const float> importance, ggml_type type) {
    const std::size_t rows = weights.size() / columns;
    std::vector<float> scaled(weights.size());
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < columns; ++j) scaled[i * columns + j] = weights[i * columns + j] * scales[j];
    std::vector<char> quantized(ggml_row_size(type, static_cast<std::int64_t>(columns)) * rows);
    ggml_quantize_chunk(type, scaled.data(), quantized.data(), 0, static_cast<std::int64_t>(rows),
                        static_cast<std::int64_t>(columns), importance.data());
    ggml_get_type_traits(type)->to_float(quantized.data(), scaled.data(), static_cast<std::int64_t>(scaled.size()));
    double error = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < columns; ++j) {
            const double d = weights[i * columns + j] - static_cast<double>(scaled[i * columns + j]) / scales[j];
            error += mean_sq[j] * d * d;
        }
    }
    return error;
}

}  // namespace

double awq_error(std::span<const float> weights, std::size_t columns, std::span<const float> mean_sq,
                 std::span<const float> scales, ggml_type type, int threads) {
    if (!ggml_is_quantized(type) || columns == 0) return 0.0;
    ggml_quantize_init(type);  // lookup tables some types build once; not thread-safe on first use
    // The rescaled importance matrix: a column scaled by s sees activations divided by s.
    std::vector<float> importance(columns);
    for (std::size_t j = 0; j < columns; ++j) importance[j] = mean_sq[j] / (scales[j] * scales[j]);
    const std::size_t rows = weights.size() / columns;
    const std::size_t n = std::clamp<std::size_t>(threads > 0 ? threads : std::thread::hardware_concurrency(), 1, rows);
    std::vector<double> part(n, 0.0);
    {
        std::vector<std::jthread> workers;
        for (std::size_t t = 0; t < n; ++t) {
            workers.emplace_back([&, t] {
                const std::size_t begin = rows * t / n, end = rows * (t + 1) / n;
                part[t] = rows_error(weights.subspan(begin * columns, (end - begin) * columns), columns, mean_sq,
                                     scales, importance, type);
            });
        }
    }
    double total = 0;
    for (const double p : part) total += p;
    return total;
}

}  // namespace switchyard::compress
