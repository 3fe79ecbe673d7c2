// Recipes: the JSON beside every variant that says what it was made from and how, so it can be
// traced and rebuilt (MODEL.gguf -> MODEL.gguf.recipe.json).
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace switchyard::compress {

std::filesystem::path recipe_path_for(const std::filesystem::path & variant);

// The files' sha256 where the caller already has them; an empty one is computed by write_recipe.
struct RecipeDigests {
    std::string parent;
    std::string output;
};

// Builds the recipe (parent and output with sha256, method, parameters, versions) and writes it
// atomically beside `output`. Returns it.
nlohmann::json write_recipe(const std::filesystem::path & parent, const std::filesystem::path & output,
                            const std::string & method, const nlohmann::json & parameters,
                            const RecipeDigests & known = {});

// Reads a recipe; throws switchyard::Error naming the missing or malformed key.
nlohmann::json read_recipe(const std::filesystem::path & path);

}  // namespace switchyard::compress
