// TextStream: turns generated token pieces into text that is safe to emit (whole UTF-8
// characters, nothing that might still turn into a stop string).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace switchyard::engine {

class TextStream {
public:
    explicit TextStream(std::vector<std::string> stop = {});

    // Adds a piece; returns the text that became final. After a stop string is seen, returns
    // the text before it and stopped() turns true.
    std::string push(std::string_view piece);

    // The held-back remainder at the end of generation (empty once stopped).
    std::string finish();

    bool stopped() const { return stopped_; }
    const std::string & text() const { return text_; }  // everything emitted so far

private:
    std::string emit(std::size_t n);

    std::vector<std::string> stop_;
    std::string pending_;  // received, not yet emitted
    std::string text_;
    bool stopped_ = false;
};

}  // namespace switchyard::engine
