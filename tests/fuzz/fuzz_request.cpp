// libFuzzer target for serve's request parser: any body must yield a request or an ApiError,
// never a crash, abort, hang or other exception. Built with -DSWITCHYARD_FUZZ=ON (see docs/serve.md).
#include "serve/api.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t * data, std::size_t size) {
    using namespace switchyard::serve;
    const std::string_view body(reinterpret_cast<const char *>(data), size);
    for (const auto kind : {ApiRequest::Kind::chat, ApiRequest::Kind::completion}) {
        const auto parsed = parse_request(kind, body, Limits{});
        if (const auto * r = std::get_if<ApiRequest>(&parsed)) {
            // What the gateway does next with a parsed request must hold up too.
            (void)r->input.routing_text();
            if (r->input.chat) (void)plain_transcript(r->input.messages);
        } else {
            (void)std::get<ApiError>(parsed).body();
        }
    }
    if (const auto t = parse_tokenize(body); const auto * e = std::get_if<ApiError>(&t)) (void)e->body();
    if (const auto d = parse_detokenize(body); const auto * e = std::get_if<ApiError>(&d)) (void)e->body();
    return 0;
}
