#include "support/units.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace switchyard {

std::optional<double> parse_size(const std::string & text) {
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(lower, &used);
    } catch (const std::exception &) {
        return std::nullopt;
    }
    static const std::map<std::string, double> units = {
        {"", 1},          {"b", 1},    {"k", 1024},       {"kib", 1024},       {"kb", 1e3}, {"m", 1048576},
        {"mib", 1048576}, {"mb", 1e6}, {"g", 1073741824}, {"gib", 1073741824}, {"gb", 1e9}};
    std::string unit = lower.substr(used);
    unit.erase(0, unit.find_first_not_of(' '));
    const auto it = units.find(unit);
    if (it == units.end() || value <= 0) return std::nullopt;
    return value * it->second;
}

}  // namespace switchyard
