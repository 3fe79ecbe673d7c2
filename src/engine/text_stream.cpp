#include "engine/text_stream.h"

#include "support/utf8.h"

#include <algorithm>

namespace switchyard::engine {

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
    std::erase_if(stop_, [](const std::string & s) { return s.empty(); });
}

std::string TextStream::emit(std::size_t n) {
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    text_ += out;
    return out;
}

std::string TextStream::push(std::string_view piece) {
    if (stopped_) return {};
    pending_ += piece;

    // The stop string may have started in text held back earlier, so search all of pending_.
    std::size_t first_stop = std::string::npos;
    for (const auto & s : stop_) first_stop = std::min(first_stop, pending_.find(s));
    if (first_stop != std::string::npos) {
        stopped_ = true;
        std::string out = emit(first_stop);
        pending_.clear();
        return out;
    }

    // Hold back the longest tail that is a proper prefix of some stop string.
    std::size_t hold = 0;
    for (const auto & s : stop_) {
        for (std::size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
            if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    const std::size_t safe = utf8::complete_prefix_length(std::string_view(pending_).substr(0, pending_.size() - hold));
    return emit(safe);
}

std::string TextStream::finish() {
    if (stopped_) return {};
    return emit(pending_.size());
}

}  // namespace switchyard::engine
