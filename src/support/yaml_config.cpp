#include "support/yaml_config.h"

#include "support/atomic_file.h"
#include "support/error.h"

#include <algorithm>

namespace switchyard {

namespace {

std::string describe(const YAML::Node & node) {
    switch (node.Type()) {
        case YAML::NodeType::Sequence: return "a list";
        case YAML::NodeType::Map: return "a mapping";
        case YAML::NodeType::Null: return "nothing";
        default: return "'" + node.Scalar() + "'";
    }
}

}  // namespace

YamlMap YamlMap::parse(const std::string & text, const std::string & source, const std::filesystem::path & base_dir) {
    YAML::Node root;
    try {
        root = YAML::Load(text);
    } catch (const YAML::Exception & e) {
        throw Error("{}:{}: not valid YAML: {}", source, e.mark.line + 1, e.msg);
    }
    if (!root.IsMap()) throw Error("{}: expected a YAML mapping at the top level, found {}", source, describe(root));
    return YamlMap(root, source, "", std::filesystem::absolute(base_dir));
}

YamlMap YamlMap::load_file(const std::filesystem::path & file, const std::string & what) {
    return parse(read_whole_file(file, what), file.string(), std::filesystem::absolute(file).parent_path());
}

YamlMap::YamlMap(YAML::Node node, std::string source, std::string path, std::filesystem::path base_dir)
    : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)), base_dir_(std::move(base_dir)) {}

bool YamlMap::has(const std::string & key) const {
    const auto value = node_[key];
    return value.IsDefined() && !value.IsNull();
}

std::string YamlMap::qualified(const std::string & key) const {
    return path_.empty() ? key : key.empty() ? path_ : path_ + "." + key;
}

int YamlMap::line_of(const std::string & key) const {
    const auto value = key.empty() ? node_ : node_[key];
    const auto mark = (value.IsDefined() ? value : node_).Mark();
    return mark.line + 1;
}

std::string YamlMap::located(const std::string & key, const std::string & message) const {
    const auto where = qualified(key);
    return source_ + ":" + std::to_string(line_of(key)) + ": " + (where.empty() ? "" : where + ": ") + message;
}

void YamlMap::fail(const std::string & key, const std::string & message) const { throw Error(located(key, message)); }

std::string YamlMap::string(const std::string & key) const {
    if (!has(key)) fail("", "missing key '" + key + "'");
    const auto value = node_[key];
    if (!value.IsScalar()) fail(key, "expected a single value, found " + describe(value));
    return value.Scalar();
}

std::string YamlMap::string(const std::string & key, const std::string & fallback) const {
    return has(key) ? string(key) : fallback;
}

std::optional<double> YamlMap::optional_number(const std::string & key) const {
    if (!has(key)) return std::nullopt;
    const auto text = string(key);
    try {
        std::size_t used = 0;
        const double value = std::stod(text, &used);
        if (used == text.size()) return value;
    } catch (const std::exception &) {}
    fail(key, "expected a number, found '" + text + "'");
}

double YamlMap::number(const std::string & key, double fallback) const {
    return optional_number(key).value_or(fallback);
}

long long YamlMap::integer(const std::string & key, long long fallback) const {
    if (!has(key)) return fallback;
    const auto text = string(key);
    try {
        std::size_t used = 0;
        const long long value = std::stoll(text, &used);
        if (used == text.size()) return value;
    } catch (const std::exception &) {}
    fail(key, "expected a whole number, found '" + text + "'");
}

bool YamlMap::boolean(const std::string & key, bool fallback) const {
    if (!has(key)) return fallback;
    const auto text = string(key);
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
    fail(key, "expected true or false, found '" + text + "'");
}

std::vector<std::string> YamlMap::strings(const std::string & key) const {
    if (!has(key)) return {};
    const auto value = node_[key];
    if (value.IsScalar()) return {value.Scalar()};
    if (!value.IsSequence()) fail(key, "expected a list, found " + describe(value));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (!value[i].IsScalar())
            fail(key, "item " + std::to_string(i + 1) + ": expected a single value, found " + describe(value[i]));
        out.push_back(value[i].Scalar());
    }
    return out;
}

std::vector<YamlMap> YamlMap::maps(const std::string & key) const {
    if (!has(key)) return {};
    const auto value = node_[key];
    if (!value.IsSequence()) fail(key, "expected a list, found " + describe(value));
    std::vector<YamlMap> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
        YamlMap item(value[i], source_, qualified(key) + "[" + std::to_string(i) + "]", base_dir_);
        if (!value[i].IsMap()) item.fail("", "expected a mapping, found " + describe(value[i]));
        out.push_back(std::move(item));
    }
    return out;
}

std::optional<YamlMap> YamlMap::map(const std::string & key) const {
    if (!has(key)) return std::nullopt;
    const auto value = node_[key];
    if (!value.IsMap()) fail(key, "expected a mapping, found " + describe(value));
    return YamlMap(value, source_, qualified(key), base_dir_);
}

void YamlMap::reject_unknown(std::initializer_list<const char *> known) const {
    for (const auto & entry : node_) {
        const auto key = entry.first.Scalar();
        if (std::none_of(known.begin(), known.end(), [&](const char * k) { return key == k; })) {
            std::string list;
            for (const char * k : known) list += (list.empty() ? "" : ", ") + std::string(k);
            throw Error("{}:{}: {}: unknown key (expected one of: {})", source_, entry.first.Mark().line + 1,
                        qualified(key), list);
        }
    }
}

std::filesystem::path YamlMap::file_path(const std::string & key) const {
    std::filesystem::path p = string(key);
    return p.is_absolute() ? p : (base_dir_ / p).lexically_normal();
}

}  // namespace switchyard
