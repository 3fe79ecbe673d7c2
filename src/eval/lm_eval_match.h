// lm-eval's judgement of a generation: its `regex` filter and its exact_match metric, with RE2 in
// place of Python's re (a pattern RE2 cannot compile is refused where the suite is read).
#pragma once

#include "eval/suite.h"

#include <string>

namespace switchyard::eval {

// lm-eval's RegexFilter on one response.
std::string apply_regex_filter(const LmEvalRegex & filter, const std::string & response);
// Filters in order, then exact_match_hf_evaluate(predictions=[output], references=[gold]).
bool lm_eval_exact_match(const LmEvalMatch & match, const std::string & output, const std::string & gold);

}  // namespace switchyard::eval
