// The fallback policy every way of answering shares: try a route's models in order until one
// answers, counting each failure and resting the models that fail. Plain values in and out, so a
// test drives it with attempts of its own.
#pragma once

#include "serve/api.h"
#include "serve/backend.h"
#include "serve/metrics.h"
#include "serve/router.h"

#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace switchyard::serve {

struct Answered {};  // the model answered, and the attempt wrote the response
struct Escalated {};  // a cascade's answer too unsure to send: the next model is asked, no fallback
// How one model's attempt ended: as above, with the stream's failed event, or with an error that
// is the client's own (a request this model cannot take), which the client gets at once.
using Attempt = std::variant<Answered, Escalated, Stream::Event, ApiError>;

// `last`: no model comes after this one (a cascade's last answer is sent however unsure).
using AttemptFn = std::function<Attempt(const std::string & model, bool last)>;

// Tries `chain` in order (with a `cooldown`, resting models last) until one attempt answers. A
// failed attempt counts against its model in `metrics`, rests it unless it was only overloaded,
// and moves on to the next model, counted as a fallback of `route`. A rejection, an ApiError or
// a client gone ends the request. Returns the error the client gets: the rejection, or when every
// model failed the last failure (a 503 when none was tried); nullopt when a model answered or the
// client is gone.
std::optional<ApiError> answer_in_order(const std::vector<std::string> & chain, const std::string & route,
                                        Cooldown * cooldown, Metrics & metrics, const AttemptFn & attempt);

}  // namespace switchyard::serve
