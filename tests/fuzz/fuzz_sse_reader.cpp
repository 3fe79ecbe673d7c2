// libFuzzer target for serve's server-sent-events reader: any bytes, cut anywhere, must give the
// events they give in one piece (or the same error), never a crash, hang or other exception, and no
// event longer than the bound. Built with -DSWITCHYARD_FUZZ=ON (see docs/serve.md).
#include "serve/sse_reader.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t kMax = 256;  // small, so the error path is reached as often as the events

struct Read {
    std::vector<switchyard::serve::SseEvent> events;
    std::optional<std::string> error;
};

// Feeds `bytes` in pieces of the given sizes (cycled; whole when there are none).
Read read(std::string_view bytes, std::string_view cuts) {
    switchyard::serve::SseReader reader(kMax);
    Read out;
    const auto on_event = [&](switchyard::serve::SseEvent e) {
        if (e.data.size() + e.type.size() > kMax) __builtin_trap();
        out.events.push_back(std::move(e));
        return true;
    };
    for (std::size_t i = 0, at = 0; at < bytes.size() && !out.error; ++i) {
        const std::size_t n = cuts.empty() ? bytes.size() : static_cast<unsigned char>(cuts[i % cuts.size()]) % 17 + 1;
        out.error = reader.feed(bytes.substr(at, n), on_event);
        at += n;
    }
    if (!out.error) {
        if (auto last = reader.end()) out.events.push_back(std::move(*last));
    }
    return out;
}

bool same(const Read & a, const Read & b) {
    if (a.error != b.error || a.events.size() != b.events.size()) return false;
    for (std::size_t i = 0; i < a.events.size(); ++i) {
        if (a.events[i].type != b.events[i].type || a.events[i].data != b.events[i].data) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t * data, std::size_t size) {
    // The first bytes (up to the first 0) choose where the stream is cut; the rest is the stream.
    const std::string_view input(reinterpret_cast<const char *>(data), size);
    const std::size_t split = input.find('\0');
    const std::string_view cuts = split == std::string_view::npos ? std::string_view() : input.substr(0, split);
    const std::string_view bytes = split == std::string_view::npos ? input : input.substr(split + 1);
    if (!same(read(bytes, {}), read(bytes, cuts))) __builtin_trap();
    return 0;
}
