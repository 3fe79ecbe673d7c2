// What capture keeps of one answered request: the question as a suite built from it asks a
// candidate again (messages or prompt, max_tokens, stop, temperature), and the answer with its
// log-probabilities where known. Pure; the CaptureStore redacts and writes it.
#pragma once

#include "serve/backend.h"
#include "serve/capture.h"
#include "serve/openai_response.h"

#include <string>

namespace switchyard::serve {

CapturedItem captured_item(const std::string & route, const ApiRequest & r, const Answer & answer, const Generation & g,
                           double seconds);

}  // namespace switchyard::serve
