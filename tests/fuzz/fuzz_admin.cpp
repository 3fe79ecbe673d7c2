// libFuzzer target for serve's admin and feedback parsers, and the query string: any input must
// yield a value or an ApiError, never a crash, abort, hang or other exception. Built with
// -DSWITCHYARD_FUZZ=ON (see docs/serve.md).
#include "serve/admin_api.h"
#include "serve/http_server.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t * data, std::size_t size) {
    using namespace switchyard::serve;
    const std::string_view body(reinterpret_cast<const char *>(data), size);
    if (const auto r = parse_rollout(body); const auto * e = std::get_if<ApiError>(&r)) {
        (void)e->body();
    } else {
        // What the gateway reads of an accepted rollout must hold what the bounds promise.
        const auto & t = std::get<RolloutRequest>(r).thresholds;
        if (!t.promote_at || !t.rollback_below || t.min_samples < 1 || t.sample < 0 || t.sample > 1) __builtin_trap();
    }
    if (const auto f = parse_feedback(body); const auto * e = std::get_if<ApiError>(&f)) (void)e->body();
    http::Request req;
    req.query = std::string(body);
    (void)req.query_param("route");
    return 0;
}
