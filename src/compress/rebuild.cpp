#include "compress/rebuild.h"

#include "compress/awq.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "compress/recipe.h"
#include "support/error.h"
#include "support/hash_cache.h"
#include "support/sha256.h"

namespace switchyard::compress {

RebuildResult rebuild(const std::filesystem::path & recipe_path, const std::filesystem::path & parent,
                      const std::filesystem::path & output) {
    const auto recipe = read_recipe(recipe_path);
    const std::filesystem::path input =
        parent.empty() ? std::filesystem::path(recipe["parent"]["path"].get<std::string>()) : parent;
    if (cached_sha256_file(input) != recipe["parent"]["sha256"]) {
        throw Error("{}: not the parent this recipe was made from (its sha256 differs)", input.string());
    }
    RebuildResult result;
    result.output = output.empty() ? std::filesystem::path(recipe.at("output").at("path").get<std::string>()) : output;
    const std::string method = recipe["method"].get<std::string>();
    nlohmann::json rebuilt;
    if (method == "quantize") {
        rebuilt = quantize(quantize_options_from_recipe(recipe, input, result.output)).recipe;
    } else if (method == "mix") {
        // A mix is a quantization with a type per tensor, all listed in its recipe: no new search.
        quantize_without_recipe(quantize_options_from_recipe(recipe, input, result.output));
        rebuilt = write_recipe(input, result.output, "mix", recipe["parameters"]);
    } else if (method == "prune") {
        rebuilt = prune(prune_options_from_recipe(recipe, input, result.output)).recipe;
    } else if (method == "awq") {
        // The recorded alphas are applied as they are: no new search.
        rebuilt = awq(awq_options_from_recipe(recipe, input, result.output)).recipe;
    } else {
        throw Error("{}: cannot rebuild '{}' recipes", recipe_path.string(), method);
    }
    result.sha256 = rebuilt["output"]["sha256"].get<std::string>();
    result.identical = result.sha256 == recipe["output"]["sha256"];
    return result;
}

}  // namespace switchyard::compress
