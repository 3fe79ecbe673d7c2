#include "serve/admin_api.h"

#include <cmath>

namespace switchyard::serve {

using nlohmann::json;

namespace {

// Readers of one optional field; they throw the ApiError that names it.
std::optional<std::string> text_field(const json & body, const char * key) {
    if (!body.contains(key)) return std::nullopt;
    const json & v = body[key];
    if (!v.is_string() || v.get_ref<const std::string &>().empty())
        throw bad_request(std::string("'") + key + "' must be a non-empty string", key);
    return v.get<std::string>();
}

// A setting of the wrong type is told the bounds, as one outside them is.
std::optional<double> share_field(const json & body, const char * key) {
    if (!body.contains(key)) return std::nullopt;
    const json & v = body[key];
    const double value = v.is_number() ? v.get<double>() : std::nan("");
    if (const auto e = model::shadow_share_error(value)) throw bad_request(std::string("'") + key + "' " + *e, key);
    return value;
}

std::optional<int> min_samples_field(const json & body) {
    if (!body.contains("min_samples")) return std::nullopt;
    const json & v = body["min_samples"];
    const long long value = v.is_number_integer() ? v.get<long long>() : 0;
    if (const auto e = model::shadow_min_samples_error(value)) throw bad_request("'min_samples' " + *e, "min_samples");
    return static_cast<int>(value);
}

RolloutRequest read_rollout(const json & body) {
    if (!body.is_object()) throw bad_request("the body must be a JSON object: {\"plan\": FOLDER, \"class\": NAME}");
    RolloutRequest r;
    const auto plan = text_field(body, "plan");
    const auto task_class = text_field(body, "class");
    if (!plan) throw bad_request("'plan' is required: the folder `switchyard plan -o` wrote", "plan");
    if (!task_class)
        throw bad_request("'class' is required: the class of traffic whose recommendation to roll out", "class");
    r.plan = *plan;
    r.task_class = *task_class;
    r.route = text_field(body, "route").value_or(r.task_class);
    r.thresholds = model::Shadow{.model = {},
                                 .sample = share_field(body, "sample").value_or(kRolloutSample),
                                 .promote_at = share_field(body, "promote_at").value_or(kRolloutPromoteAt),
                                 .rollback_below = share_field(body, "rollback_below").value_or(kRolloutRollbackBelow),
                                 .min_samples = min_samples_field(body).value_or(kRolloutMinSamples),
                                 .decision = {},
                                 .evidence = {}};
    return r;
}

FeedbackRequest read_feedback(const json & body) {
    if (!body.is_object() || !body.contains("id") || !body["id"].is_string())
        throw bad_request("'id' (a response id) is required", "id");
    if (!body.contains("correct") || !body["correct"].is_boolean())
        throw bad_request("'correct' must be true or false", "correct");
    FeedbackRequest r{
        .id = body["id"].get<std::string>(), .correct = body["correct"].get<bool>(), .expected = std::nullopt};
    if (body.contains("expected")) {
        if (!body["expected"].is_string()) throw bad_request("'expected' must be a string", "expected");
        r.expected = body["expected"].get<std::string>();
    }
    return r;
}

template <typename T>
std::variant<T, ApiError> parsed(std::string_view text, T (*read)(const json &)) {
    try {
        // Not JSON at all reads as a body of the wrong shape: each parser says what it expects.
        return read(json::parse(text, nullptr, false));
    } catch (const ApiError & e) {
        return e;
    }
}

}  // namespace

std::variant<RolloutRequest, ApiError> parse_rollout(std::string_view body) { return parsed(body, read_rollout); }

std::variant<FeedbackRequest, ApiError> parse_feedback(std::string_view body) { return parsed(body, read_feedback); }

}  // namespace switchyard::serve
