// Sizes as people write them in flags and config files: "600K", "1.5M", "2G", "64MB", "123456".
#pragma once

#include <optional>
#include <string>

namespace switchyard {

// Bytes; K, M, G (and KiB, MiB, GiB) are powers of 1024, KB, MB, GB powers of 1000. Case does not
// matter. nullopt when the text is not a positive size.
std::optional<double> parse_size(const std::string & text);

}  // namespace switchyard
