// The tokenizer endpoints, POST /tokenize and /detokenize and GET /tokenizer_info, answered from a
// deployment's backends: the request in, the answer's JSON or an ApiError out.
#pragma once

#include "serve/api.h"
#include "serve/deployment.h"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <variant>

namespace switchyard::serve {

// The model is named as in a completion request (a model or a route; none: the default route).
std::variant<nlohmann::json, ApiError> tokenize_answer(const Deployment & dep, std::string_view body);
std::variant<nlohmann::json, ApiError> detokenize_answer(const Deployment & dep, std::string_view body);
// vLLM's fields, as lm-eval's remote tokenizer reads them: in-process models only.
std::variant<nlohmann::json, ApiError> tokenizer_info(const Deployment & dep, const std::string & model);

}  // namespace switchyard::serve
