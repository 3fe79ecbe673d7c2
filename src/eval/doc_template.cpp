// Compiled on its own (not in the eval module's unity unit): llama.cpp's common headers are on
// this file's include path only, where their short names cannot shadow anyone's.
#include "eval/doc_template.h"

#include "support/error.h"

#if SWITCHYARD_LLAMA_COMMON
#include <jinja/lexer.h>
#include <jinja/parser.h>
#include <jinja/runtime.h>
#include <jinja/value.h>
#endif

namespace switchyard::eval {

#if SWITCHYARD_LLAMA_COMMON

namespace {

jinja::value to_value(const nlohmann::json & j) {
    switch (j.type()) {
        case nlohmann::json::value_t::string: return jinja::mk_val<jinja::value_string>(j.get<std::string>());
        case nlohmann::json::value_t::boolean: return jinja::mk_val<jinja::value_bool>(j.get<bool>());
        case nlohmann::json::value_t::number_integer:
        case nlohmann::json::value_t::number_unsigned: return jinja::mk_val<jinja::value_int>(j.get<std::int64_t>());
        case nlohmann::json::value_t::number_float: return jinja::mk_val<jinja::value_float>(j.get<double>());
        case nlohmann::json::value_t::array: {
            auto out = jinja::mk_val<jinja::value_array>();
            for (const auto & e : j) out->push_back(to_value(e));
            return out;
        }
        case nlohmann::json::value_t::object: {
            auto out = jinja::mk_val<jinja::value_object>();
            for (const auto & [k, v] : j.items()) out->insert(k, to_value(v));
            return out;
        }
        default: return jinja::mk_val<jinja::value_none>();
    }
}

nlohmann::json to_json(const jinja::value & v) {
    if (jinja::is_val<jinja::value_array>(v)) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto & e : v->as_array()) out.push_back(to_json(e));
        return out;
    }
    if (jinja::is_val<jinja::value_int>(v)) return v->as_int();
    if (jinja::is_val<jinja::value_float>(v)) return v->as_float();
    return v->as_string().str();
}

// llama.cpp's lexer always trims blocks as chat templates want (trim_blocks, lstrip_blocks);
// lm-eval's Jinja2 does not. The two render alike unless a block tag ends a line or is indented
// at a line's start: such a template is refused rather than rendered differently.
std::string block_whitespace(const std::string & source) {
    for (std::size_t pos = source.find("{%"); pos != std::string::npos; pos = source.find("{%", pos + 2)) {
        const auto line_start = source.rfind('\n', pos == 0 ? 0 : pos - 1);
        const auto from = line_start == std::string::npos || pos == 0 ? 0 : line_start + 1;
        // {%- and -%} strip that whitespace in both engines.
        if (pos > from && source.find_first_not_of(" \t", from) == pos && source.compare(pos, 3, "{%-") != 0)
            return "a {% block %} indented at the start of a line renders differently here (llama.cpp's Jinja engine strips that indent): remove the indent";
        const auto close = source.find("%}", pos);
        if (close != std::string::npos && close > 0 && source[close - 1] != '-' && close + 2 < source.size() &&
            source[close + 2] == '\n')
            return "a {% block %} at the end of a line renders differently here (llama.cpp's Jinja engine drops the newline after it): write {%- or -%} or join the lines";
    }
    return {};
}

}  // namespace

bool doc_templates_available() { return true; }

nlohmann::json render_doc_template(const std::string & source, const nlohmann::json & doc) {
    if (source.empty()) return "";
    try {
        if (const auto why = block_whitespace(source); !why.empty()) throw Error(why);
        jinja::lexer lexer;
        // The lexer drops one trailing newline, as Jinja2 does by default; lm-eval keeps it
        // (keep_trailing_newline=True).
        const auto tokens = lexer.tokenize(source.back() == '\n' ? source + "\n" : source);
        const jinja::program program = jinja::parse_from_tokens(tokens);
        jinja::context ctx(source);
        for (const auto & [k, v] : doc.items()) ctx.set_val(k, to_value(v));
        jinja::runtime runtime(ctx);
        const jinja::value_array results = runtime.execute(program);
        if (results->as_array().size() == 1 && jinja::is_val<jinja::value_array>(results->as_array()[0]))
            return to_json(results->as_array()[0]);
        return jinja::runtime::gather_string_parts(results)->as_string().str();
    } catch (const std::exception & e) {
        throw Error(e.what());
    }
}

#else

bool doc_templates_available() { return false; }

nlohmann::json render_doc_template(const std::string &, const nlohmann::json &) {
    throw Error(
        "rendering lm-eval's templates needs llama.cpp's common library (its Jinja engine), which this build lacks: "
        "build switchyard with its pinned engine instead of an installed llama.cpp");
}

#endif

}  // namespace switchyard::eval
