// Rolling out a plan's recommendation: the model `switchyard plan` chose for a class of traffic
// becomes a shadow of the route that serves that class, and the shadow's thresholds promote it
// or roll it back (serve/shadow.h) on the live traffic.
#pragma once

#include "model/portfolio.h"
#include "serve/metrics.h"
#include "support/error.h"

#include <filesystem>
#include <optional>
#include <string>

namespace switchyard::serve {

// What the plan chose for one class, with the evidence behind it.
struct Recommendation {
    std::string task_class;
    model::PortfolioModel model;  // as the plan's portfolio.yaml serves it
    std::string decision;  // "compress (R5): ..." from decision.json
    std::filesystem::path evidence;  // the plan's report.html
};

// Reads a plan's output folder (portfolio.yaml, decision.json). Throws switchyard::Error naming
// the file when it is missing or the class is not one the plan decided.
Recommendation read_recommendation(const std::filesystem::path & plan_out, const std::string & task_class);

// A request the live portfolio cannot take (no such route, the candidate already serves it, a
// model of the same name that is another model): the admin's to fix, answered 409.
class RolloutConflict : public Error {
public:
    using Error::Error;
};

// `live` with the recommended model added (reused when the same entry is there) and shadowing
// `route` under `thresholds` (its model field is ignored). Throws RolloutConflict.
model::Portfolio with_rollout(const model::Portfolio & live, const std::string & route, const Recommendation & rec,
                              model::Shadow thresholds);

// `live` once the shadow's verdict is in: `route` stops shadowing `candidate` and, when `promote`,
// serves it, the incumbent kept as its first fallback and the note saying what the promotion rests
// on (`counted`: the live comparison, when there is one). nullopt when the route no longer
// shadows `candidate` (it changed since the sample was taken).
std::optional<model::Portfolio> with_verdict(const model::Portfolio & live, const std::string & route,
                                             const std::string & candidate, bool promote,
                                             const ShadowCounters * counted);

}  // namespace switchyard::serve
