// Reading YAML configuration files (plans, portfolios) with errors that name the file, key and line.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace switchyard {

// One YAML mapping and where it sits ("routes[1]"), so every error can say "FILE:LINE: KEY: ...".
class YamlMap {
public:
    // Parses FILE; a syntax error or a top level that is not a mapping throws switchyard::Error.
    static YamlMap load_file(const std::filesystem::path & file, const std::string & what);
    // Relative paths in the text resolve against `base_dir` (load_file: the file's folder).
    static YamlMap parse(const std::string & text, const std::string & source, const std::filesystem::path & base_dir);

    YamlMap(YAML::Node node, std::string source, std::string path, std::filesystem::path base_dir);

    bool has(const std::string & key) const;
    // Required values throw "missing key"; optional ones return the fallback when absent.
    std::string string(const std::string & key) const;
    std::string string(const std::string & key, const std::string & fallback) const;
    double number(const std::string & key, double fallback) const;
    std::optional<double> optional_number(const std::string & key) const;
    long long integer(const std::string & key, long long fallback) const;
    bool boolean(const std::string & key, bool fallback) const;
    // A list of scalars; a single scalar counts as a list of one.
    std::vector<std::string> strings(const std::string & key) const;
    // A list of mappings (empty when absent); each element's path is "KEY[i]".
    std::vector<YamlMap> maps(const std::string & key) const;
    // A nested mapping; nullopt when absent.
    std::optional<YamlMap> map(const std::string & key) const;
    // The raw node for keys whose shape varies (a scalar or a mapping).
    YAML::Node node(const std::string & key) const { return node_[key]; }

    // Throws on the first key not in `known`: misspelt settings must not be ignored silently.
    void reject_unknown(std::initializer_list<const char *> known) const;
    // "SOURCE:LINE: PATH.KEY: MESSAGE", for a warning; fail() throws it as a switchyard::Error.
    std::string located(const std::string & key, const std::string & message) const;
    [[noreturn]] void fail(const std::string & key, const std::string & message) const;

    const std::string & source() const { return source_; }
    const std::filesystem::path & base_dir() const { return base_dir_; }
    // A path from the file, resolved against the file's folder when relative.
    std::filesystem::path file_path(const std::string & key) const;

private:
    std::string qualified(const std::string & key) const;
    int line_of(const std::string & key) const;

    YAML::Node node_;
    std::string source_;
    std::string path_;
    std::filesystem::path base_dir_;
};

}  // namespace switchyard
