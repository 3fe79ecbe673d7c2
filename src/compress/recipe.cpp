#include "compress/recipe.h"

#include "support/atomic_file.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/sha256.h"
#include "support/version.h"

#include <fstream>

namespace switchyard::compress {

std::filesystem::path recipe_path_for(const std::filesystem::path & variant) {
    return std::filesystem::path(variant.string() + ".recipe.json");
}

nlohmann::json write_recipe(const std::filesystem::path & parent, const std::filesystem::path & output,
                            const std::string & method, const nlohmann::json & parameters,
                            const RecipeDigests & known) {
    nlohmann::json recipe = {
        {"recipe_version", 1},
        {"method", method},
        // Absolute paths: a recipe is read from anywhere, not from where it was written.
        {"parent",
         {{"path", std::filesystem::absolute(parent).string()},
          {"sha256", known.parent.empty() ? cached_sha256_file(parent) : known.parent}}},
        {"output",
         {{"path", std::filesystem::absolute(output).string()},
          {"sha256", known.output.empty() ? cached_sha256_file(output) : known.output}}},
        {"parameters", parameters},
        {"switchyard_version", kVersion},
        {"engine_version", kEngineVersion},
    };
    write_file_atomically(recipe_path_for(output), recipe.dump(2) + "\n");
    return recipe;
}

nlohmann::json read_recipe(const std::filesystem::path & path) {
    std::ifstream in(path);
    if (!in) throw Error("{}: cannot open the recipe", path.string());
    nlohmann::json recipe;
    try {
        recipe = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception & e) {
        throw Error("{}: not valid JSON: {}", path.string(), e.what());
    }
    for (const char * key : {"method", "parent", "parameters"}) {
        if (!recipe.contains(key)) throw Error("{}: recipe lacks the key '{}'", path.string(), key);
    }
    if (!recipe["parent"].contains("sha256")) throw Error("{}: recipe lacks the key 'parent.sha256'", path.string());
    return recipe;
}

}  // namespace switchyard::compress
