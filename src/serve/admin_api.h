// The bodies of POST /admin/rollout and POST /v1/feedback: pure parsing and validation (no I/O),
// so the parsers can be unit-tested and fuzzed on their own, as serve/api.h's are.
#pragma once

#include "model/portfolio.h"
#include "serve/api.h"

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace switchyard::serve {

// A rollout's thresholds when the request leaves them out (docs/closed-loop.md): a candidate is
// promoted at a mean token agreement of 0.9 and rolled back below 0.5, after 100 mirrored requests.
inline constexpr double kRolloutSample = 1.0;
inline constexpr double kRolloutPromoteAt = 0.9;
inline constexpr double kRolloutRollbackBelow = 0.5;
inline constexpr int kRolloutMinSamples = 100;

struct RolloutRequest {
    std::string plan;  // the folder `switchyard plan -o` wrote, as sent
    std::string task_class;  // the class whose recommendation to roll out
    std::string route;  // the route to shadow: the class's name unless the body names one
    model::Shadow thresholds;  // its model is left empty: the plan's recommendation fills it
};

// {"plan": DIR, "class": NAME} with optional route, sample, promote_at, rollback_below and
// min_samples. A body that is not a JSON object, a missing or empty plan or class, or a setting
// out of model::Shadow's bounds gives an ApiError (400) naming the field.
std::variant<RolloutRequest, ApiError> parse_rollout(std::string_view body);

struct FeedbackRequest {
    std::string id;  // the response id the client was answered with
    bool correct = false;
    std::optional<std::string> expected;  // the answer it should have given
};

// {"id": RESPONSE_ID, "correct": BOOL} with an optional "expected" string; anything else gives
// an ApiError (400) naming the field.
std::variant<FeedbackRequest, ApiError> parse_feedback(std::string_view body);

}  // namespace switchyard::serve
