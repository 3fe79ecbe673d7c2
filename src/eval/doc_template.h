// lm-eval's doc_to_* templates rendered against one document, with the Jinja engine llama.cpp
// vendors (common/jinja), rendering as lm-eval's Jinja2 renders: a trailing newline kept, and a
// template where the engine's block trimming would change the text refused.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace switchyard::eval {

// Whether this build can render templates: llama.cpp's common library was linked (an engine built
// from source); an installed llama.cpp ships none.
bool doc_templates_available();

// `source` rendered with the document's fields as variables. A template that is one expression
// whose value is a list ("{{[sentence_good, sentence_bad]}}") gives that list (of strings and
// numbers), as lm-eval's literal_eval of its rendering would; anything else gives the rendered
// string. Throws switchyard::Error when the template does not parse or fails on this document
// (the message says why; the caller adds which key), or when templates are not available.
nlohmann::json render_doc_template(const std::string & source, const nlohmann::json & doc);

}  // namespace switchyard::eval
