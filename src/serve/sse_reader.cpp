#include "serve/sse_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace switchyard::serve {

SseReader::SseReader(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

std::optional<std::string> SseReader::feed(std::string_view bytes, const std::function<bool(SseEvent)> & on_event) {
    if (error_) return error_;
    if (after_cr_ && !bytes.empty()) {
        if (bytes.front() == '\n') bytes.remove_prefix(1);
        after_cr_ = false;
    }
    while (!bytes.empty()) {
        const std::size_t eol = bytes.find_first_of("\r\n");
        const std::size_t taken = std::min(eol, bytes.size());
        if (line_.size() + taken + data_.size() + type_.size() > max_event_bytes_) {
            error_ = fmt::format("an event is longer than {} bytes", max_event_bytes_);
            return error_;
        }
        line_.append(bytes.substr(0, taken));
        if (eol == std::string_view::npos) return std::nullopt;
        // CRLF is one line end, even when the LF comes in the next bytes.
        std::size_t next = eol + 1;
        if (bytes[eol] == '\r') {
            if (next == bytes.size()) {
                after_cr_ = true;
            } else if (bytes[next] == '\n') {
                ++next;
            }
        }
        bytes.remove_prefix(next);
        SseEvent event;
        if (take_line(event) && !on_event(std::move(event))) return std::nullopt;
    }
    return std::nullopt;
}

bool SseReader::take_line(SseEvent & event) {
    const std::string line = std::exchange(line_, {});
    if (line.empty()) {
        const bool dispatch = has_data_;
        if (dispatch) event = SseEvent{std::move(type_), std::move(data_)};
        type_.clear();
        data_.clear();
        has_data_ = false;
        return dispatch;
    }
    if (line.front() == ':') return false;  // a comment: servers send them to keep a connection open
    const std::size_t colon = line.find(':');
    const std::string_view field = std::string_view(line).substr(0, colon);
    std::string_view value = colon == std::string::npos ? std::string_view() : std::string_view(line).substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
    if (field == "data") {
        if (has_data_) data_ += '\n';
        data_.append(value);
        has_data_ = true;
    } else if (field == "event") {
        type_ = value;
    }
    return false;
}

std::optional<SseEvent> SseReader::end() {
    if (error_ || !has_data_) return std::nullopt;
    has_data_ = false;
    line_.clear();
    return SseEvent{std::exchange(type_, {}), std::exchange(data_, {})};
}

}  // namespace switchyard::serve
