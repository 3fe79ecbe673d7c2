#include "eval/run_suite.h"

#include "engine/chat_template.h"
#include "engine/llama_engine.h"
#include "engine/normalize.h"
#include "support/error.h"
#include "support/progress.h"
#include "support/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

namespace switchyard::eval {

namespace {

constexpr std::size_t kBatch = 32;  // items per engine call: enough to fill the parallel sequences

class SuiteRunner {
public:
    SuiteRunner(engine::Engine & engine, const RunOptions & options)
        : engine_(engine),
          options_(options),
          bos_(engine.tokenize("", true)),
          llama_(dynamic_cast<const engine::LlamaEngine *>(&engine)) {}

    std::string prepare(const std::string & text) const {
        return options_.normalize ? engine::normalize_for_vocabulary(engine_, text) : text;
    }

    // Tokens of `text` as a continuation; nullopt when the vocabulary cannot encode it.
    std::optional<std::vector<engine::Token>> tokens(const std::string & text, bool add_bos) const {
        try {
            return engine_.tokenize(prepare(text), add_bos);
        } catch (const engine::UnencodableText &) {
            return std::nullopt;
        }
    }

    // Pairs and multiple-choice items of a batch share model calls: one context and its choices
    // per item, several items per call.
    void score_items(const TaskSuite & suite, std::span<const std::size_t> items, SuiteResult & r) {
        std::vector<engine::ChoiceGroup> groups;
        std::vector<std::size_t> owner;
        for (const std::size_t i : items) {
            const auto & item = suite.items[i];
            auto group =
                item.kind == ItemKind::pair ? pair_group(item, r.outcomes[i]) : choice_group(item, r.outcomes[i]);
            if (!group) continue;
            count(group->context, group->choices, r);
            groups.push_back(std::move(*group));
            owner.push_back(i);
        }
        if (groups.empty()) return;
        const auto scores = engine_.score_choices(groups);
        for (std::size_t k = 0; k < owner.size(); ++k) judge(suite.items[owner[k]], scores[k], r.outcomes[owner[k]]);
    }

    // A pair is scored as two continuations of their common token prefix: the prefix's own
    // probability is the same for both and cancels, so it is run once.
    std::optional<engine::ChoiceGroup> pair_group(const TaskItem & item, ItemOutcome & out) const {
        const auto window = static_cast<std::size_t>(engine_.model().context_length);
        auto good = tokens(item.good, true);
        auto bad = tokens(item.bad, true);
        if (!good || !bad || good->empty() || bad->empty()) {
            out.unencodable = true;
            return std::nullopt;
        }
        if (good->size() > window || bad->size() > window) {
            out.too_long = true;
            return std::nullopt;
        }
        // At least one token of context: BOS, or the sentences' shared first token.
        std::size_t common = 0;
        while (common < good->size() && common < bad->size() && (*good)[common] == (*bad)[common]) ++common;
        if (common == 0) {
            out.unencodable = true;  // no BOS and different first tokens: nothing to condition on
            return std::nullopt;
        }
        const auto split = static_cast<std::ptrdiff_t>(common);
        return engine::ChoiceGroup{{good->begin(), good->begin() + split},
                                   {{good->begin() + split, good->end()}, {bad->begin() + split, bad->end()}}};
    }

    static void count(const std::vector<engine::Token> & context,
                      const std::vector<std::vector<engine::Token>> & choices, SuiteResult & r) {
        r.tokens_unique += context.size();
        for (const auto & c : choices) {
            r.tokens_unique += c.size();
            r.tokens_naive += context.size() + c.size();
        }
    }

    std::optional<engine::ChoiceGroup> choice_group(const TaskItem & item, ItemOutcome & out) const {
        const auto context = tokens(item.context, true);
        if (!context || context->empty()) {
            out.unencodable = true;
            return std::nullopt;
        }
        std::vector<std::vector<engine::Token>> choices;
        for (const auto & choice : item.choices) {
            // Tokenize context and choice together, as evaluation harnesses do, so the boundary
            // merges the way the model saw such text; fall back to the choice alone.
            auto joint = tokens(item.context + choice, true);
            if (!joint) {
                out.unencodable = true;
                return std::nullopt;
            }
            if (joint->size() > context->size() && std::equal(context->begin(), context->end(), joint->begin())) {
                choices.emplace_back(joint->begin() + static_cast<std::ptrdiff_t>(context->size()), joint->end());
            } else if (auto alone = tokens(choice, false); alone && !alone->empty()) {
                choices.push_back(std::move(*alone));
            } else {
                out.unencodable = true;
                return std::nullopt;
            }
        }
        // Keep the end of a context too long for the window, as evaluation harnesses do.
        std::size_t longest = 0;
        for (const auto & c : choices) longest = std::max(longest, c.size());
        const auto window = static_cast<std::size_t>(engine_.model().context_length);
        if (longest + 1 >= window) {
            out.too_long = true;
            return std::nullopt;
        }
        std::vector<engine::Token> kept = *context;
        if (kept.size() + longest > window) {
            const std::size_t keep = window - longest - bos_.size();
            kept.assign(bos_.begin(), bos_.end());
            kept.insert(kept.end(), context->end() - static_cast<std::ptrdiff_t>(keep), context->end());
        }
        return engine::ChoiceGroup{std::move(kept), std::move(choices)};
    }

    // lm-eval's request for (context, continuation), TemplateLM.loglikelihood and _encode_pair: an
    // empty context is BOS alone; otherwise the context's trailing whitespace moves to the front
    // of the continuation, and the continuation's tokens are those of the joint text past the
    // context's own, nothing added in front. nullopt: the vocabulary cannot encode it (or, with an
    // empty context, the model has no BOS to condition on).
    std::optional<engine::ScoreRequest> lm_eval_request(std::string context, std::string continuation) const {
        try {
            context = prepare(context);
            continuation = prepare(continuation);
            if (context.empty()) {
                auto cont = engine_.tokenize(continuation, false);
                if (cont.empty() || bos_.empty()) return std::nullopt;
                // A continuation that itself starts with BOS conditions on that token.
                if (cont.front() == bos_.front())
                    return engine::ScoreRequest{{cont.front()}, {cont.begin() + 1, cont.end()}};
                return engine::ScoreRequest{{bos_.front()}, std::move(cont)};
            }
            const auto last = context.find_last_not_of(" \t\n\r\v\f");
            const std::size_t cut = last == std::string::npos ? 0 : last + 1;
            continuation = context.substr(cut) + continuation;
            context.resize(cut);
            const auto whole = engine_.tokenize(context + continuation, false);
            const auto ctx = engine_.tokenize(context, false);
            if (ctx.empty() || whole.size() <= ctx.size()) return std::nullopt;
            return engine::ScoreRequest{ctx, {whole.begin() + static_cast<std::ptrdiff_t>(ctx.size()), whole.end()}};
        } catch (const engine::UnencodableText &) {
            return std::nullopt;
        }
    }

    // Items scored lm-eval's way: each continuation its own request, with the best token at each
    // position (lm-eval's is_greedy).
    void lm_eval_items(const TaskSuite & suite, std::span<const std::size_t> items, SuiteResult & r) {
        const auto window = static_cast<std::size_t>(engine_.model().context_length);
        std::vector<engine::ScoreRequest> requests;
        std::vector<std::pair<std::size_t, std::size_t>> owner;  // item, its first request
        for (const std::size_t i : items) {
            const auto & item = suite.items[i];
            std::vector<std::string> continuations;
            if (item.kind == ItemKind::loglikelihood) continuations.push_back(item.continuation);
            for (const auto & c : item.choices) continuations.push_back(item.target_delimiter + c);
            std::vector<engine::ScoreRequest> mine;
            for (const auto & c : continuations) {
                auto request = lm_eval_request(item.context, c);
                if (!request) {
                    r.outcomes[i].unencodable = true;
                    break;
                }
                if (request->continuation.size() >= window) {
                    r.outcomes[i].too_long = true;
                    break;
                }
                // lm-eval keeps the end of a sequence too long for the window: context tokens go first.
                if (request->context.size() + request->continuation.size() > window)
                    request->context.erase(
                        request->context.begin(),
                        request->context.end() - static_cast<std::ptrdiff_t>(window - request->continuation.size()));
                mine.push_back(std::move(*request));
            }
            if (!r.outcomes[i].scored()) continue;
            owner.emplace_back(i, requests.size());
            for (auto & m : mine) {
                r.tokens_unique += m.context.size() + m.continuation.size();
                r.tokens_naive += m.context.size() + m.continuation.size();
                requests.push_back(std::move(m));
            }
        }
        if (requests.empty()) return;
        const auto scores = engine_.score(requests, 1);
        for (const auto & [i, first] : owner) {
            const auto & item = suite.items[i];
            auto & out = r.outcomes[i];
            if (item.kind == ItemKind::loglikelihood) {
                out.correct = std::all_of(
                    scores[first].tokens.begin(), scores[first].tokens.end(),
                    [](const engine::TokenLogprob & t) { return t.top.empty() || t.logprob >= t.top.front().logprob; });
                continue;
            }
            // numpy's argmax: the first of equal maxima; acc_norm divides by the choice's length in
            // characters (Python's len), without the delimiter.
            std::size_t best = 0, best_norm = 0;
            const auto norm = [&](std::size_t k) {
                return scores[first + k].total_logprob() / static_cast<double>(code_points(item.choices[k]));
            };
            for (std::size_t k = 1; k < item.choices.size(); ++k) {
                if (scores[first + k].total_logprob() > scores[first + best].total_logprob()) best = k;
                if (norm(k) > norm(best_norm)) best_norm = k;
            }
            out.correct = static_cast<int>(best) == item.answer;
            out.correct_norm = static_cast<int>(best_norm) == item.answer;
        }
    }

    static std::size_t code_points(const std::string & s) {
        std::size_t n = 0;
        for (std::size_t i = 0; i < s.size(); i += utf8::sequence_length(s, i)) ++n;
        return n;
    }

    static void judge(const TaskItem & item, const std::vector<engine::ScoreResult> & scores, ItemOutcome & out) {
        if (item.kind == ItemKind::pair) {
            out.correct = scores[0].total_logprob() > scores[1].total_logprob();
            return;
        }
        std::size_t best = 0, best_norm = 0;
        for (std::size_t c = 1; c < scores.size(); ++c) {
            if (scores[c].total_logprob() > scores[best].total_logprob()) best = c;
            const auto per_byte = [&](std::size_t k) {
                return scores[k].total_logprob() / static_cast<double>(item.choices[k].size());
            };
            if (per_byte(c) > per_byte(best_norm)) best_norm = c;
        }
        out.correct = static_cast<int>(best) == item.answer;
        out.correct_norm = static_cast<int>(best_norm) == item.answer;
    }

    // The text a generation starts from, as serve sends it to this model: a chat goes through the
    // model's template (serve's rendering, engine::render_chat), else the plain transcript.
    engine::ChatPrompt prompt_of(const TaskItem & item) const {
        if (item.messages.empty())
            return {.text = prepare(item.prompt), .parse_special = false, .grammar = {}, .stop = {}};
        engine::ChatRequest request{.messages = nlohmann::json::parse(item.messages)};
        const engine::TextFilter normalize = options_.normalize
            ? engine::TextFilter([this](std::string_view t) { return engine::normalize_for_vocabulary(engine_, t); })
            : engine::TextFilter();
        return engine::render_chat(llama_ != nullptr ? llama_->chat() : nullptr, std::move(request), normalize);
    }

    // What lm-eval's generate_until sends by default (tokenized_requests): the context encoded
    // without special tokens, so no BOS, its start cut off to leave max_gen_toks in the window.
    std::optional<std::vector<engine::Token>> lm_eval_prompt(const std::string & text, int max_tokens) const {
        try {
            auto tokens = engine_.tokenize(text, false);
            const auto keep = static_cast<std::size_t>(std::max(1, engine_.model().context_length - max_tokens));
            if (tokens.size() > keep) tokens.erase(tokens.begin(), tokens.end() - static_cast<std::ptrdiff_t>(keep));
            return tokens;
        } catch (const engine::UnencodableText &) {
            return std::nullopt;
        }
    }

    std::optional<std::vector<engine::Token>> prompt_tokens(const engine::ChatPrompt & p) const {
        try {
            return llama_ != nullptr ? llama_->tokenize(p.text, true, p.parse_special) : engine_.tokenize(p.text, true);
        } catch (const engine::UnencodableText &) {
            return std::nullopt;
        }
    }

    // Greedy generations; consistency items are also scored teacher-forced on their reference.
    void generations(const TaskSuite & suite, std::span<const std::size_t> items, SuiteResult & r) {
        std::vector<engine::GenerateRequest> requests;
        std::vector<std::size_t> owner;
        std::vector<engine::ScoreRequest> references;
        std::vector<std::size_t> reference_owner;
        const auto window = static_cast<std::size_t>(engine_.model().context_length);
        for (const std::size_t i : items) {
            const auto & item = suite.items[i];
            engine::ChatPrompt prompt;
            try {
                prompt = prompt_of(item);
            } catch (const engine::UnencodableText &) {
                r.outcomes[i].unencodable = true;
                continue;
            }
            const auto context = item.lm_eval ? lm_eval_prompt(prompt.text, item.max_tokens) : prompt_tokens(prompt);
            if (!context || context->empty()) {
                r.outcomes[i].unencodable = true;
                continue;
            }
            if (context->size() >= window) {
                r.outcomes[i].too_long = true;
                continue;
            }
            if (item.kind == ItemKind::consistency) {
                if (auto continuation = reference_tokens(prompt, *context, item.reference);
                    continuation && context->size() + continuation->size() <= window) {
                    r.tokens_unique += context->size() + continuation->size();
                    references.push_back({*context, std::move(*continuation)});
                    reference_owner.push_back(i);
                }
            }
            engine::GenerateRequest g;
            if (item.lm_eval) g.prompt_tokens = *context;
            g.prompt = std::move(prompt.text);
            g.parse_special = prompt.parse_special;
            g.max_tokens = item.max_tokens;
            g.sampling.temperature = 0.0f;
            g.stop = item.stop;
            g.stop.insert(g.stop.end(), prompt.stop.begin(), prompt.stop.end());
            g.text_tokens = std::move(prompt.text_tokens);
            requests.push_back(std::move(g));
            owner.push_back(i);
        }
        const auto results = engine_.generate(requests);
        for (std::size_t k = 0; k < owner.size(); ++k) {
            r.outcomes[owner[k]].output = results[k].text;
            r.outcomes[owner[k]].correct = matches(suite.items[owner[k]], results[k].text);
        }
        if (references.empty()) return;
        const auto scores = engine_.score(references);
        for (std::size_t k = 0; k < reference_owner.size(); ++k) {
            const auto & tokens = scores[k].tokens;
            if (!tokens.empty())
                r.outcomes[reference_owner[k]].reference_logprob =
                    scores[k].total_logprob() / static_cast<double>(tokens.size());
        }
    }

    // The reference's tokens as they follow the prompt: tokenized together with it, so the boundary
    // merges as in the incumbent's generation, else alone; nullopt when unencodable or empty.
    std::optional<std::vector<engine::Token>> reference_tokens(const engine::ChatPrompt & prompt,
                                                               const std::vector<engine::Token> & context,
                                                               const std::string & reference) const {
        // A model's own answer is text its vocabulary encodes, leading space included: it is used as
        // it is, and normalized (keeping that space) only when this vocabulary cannot encode it.
        std::string text = reference;
        if (options_.normalize) {
            try {
                engine_.tokenize(text, false);
            } catch (const engine::UnencodableText &) {
                const bool spaced = !text.empty() && std::isspace(static_cast<unsigned char>(text.front()));
                text = (spaced ? " " : "") + prepare(text);
            }
        }
        if (text.empty()) return std::nullopt;
        engine::ChatPrompt joint = prompt;
        joint.text += text;
        if (const auto together = prompt_tokens(joint); together && together->size() > context.size() &&
            std::equal(context.begin(), context.end(), together->begin())) {
            return std::vector<engine::Token>(together->begin() + static_cast<std::ptrdiff_t>(context.size()),
                                              together->end());
        }
        try {
            auto alone = engine_.tokenize(text, false);
            if (alone.empty()) return std::nullopt;
            return alone;
        } catch (const engine::UnencodableText &) {
            return std::nullopt;
        }
    }

private:
    engine::Engine & engine_;
    RunOptions options_;
    std::vector<engine::Token> bos_;
    const engine::LlamaEngine * llama_;  // in process: what renders chats through the model's template
};

// Counts, accuracy intervals and the mean reference log-probability of r's outcomes.
void tally(SuiteResult & r) {
    for (const auto & o : r.outcomes) {
        r.unencodable += o.unencodable;
        r.too_long += o.too_long;
        if (!o.scored()) continue;
        ++r.scored;
        r.correct += o.correct;
        r.correct_norm += o.correct_norm;
        if (o.reference_logprob) {
            r.mean_reference_logprob = r.mean_reference_logprob.value_or(0.0) + *o.reference_logprob;
            ++r.reference_scored;
        }
    }
    if (r.reference_scored > 0) *r.mean_reference_logprob /= static_cast<double>(r.reference_scored);
    r.ci95 = stats::wilson_interval(r.correct, r.scored);
    r.ci95_norm = stats::wilson_interval(r.correct_norm, r.scored);
}

}  // namespace

SuiteResult suite_result(const TaskSuite & suite, std::vector<ItemOutcome> outcomes) {
    SuiteResult r;
    r.suite = suite;
    r.outcomes = std::move(outcomes);
    for (const auto & item : suite.items) r.has_norm = r.has_norm || item.kind == ItemKind::multiple_choice;
    tally(r);
    return r;
}

SuiteResult first_items(const SuiteResult & result, std::size_t items) {
    if (items >= result.outcomes.size()) return result;
    std::vector<std::size_t> first(items);
    for (std::size_t i = 0; i < items; ++i) first[i] = i;
    return suite_result(select_items(result.suite, first),
                        {result.outcomes.begin(), result.outcomes.begin() + static_cast<std::ptrdiff_t>(items)});
}

SuiteResult run_suite(engine::Engine & engine, const TaskSuite & suite, const RunOptions & options) {
    const auto start = std::chrono::steady_clock::now();
    const std::uint64_t decoded_before = engine.tokens_decoded();
    SuiteResult r;
    r.suite = suite;
    r.outcomes.resize(suite.items.size());
    for (std::size_t i = 0; i < suite.items.size(); ++i) r.outcomes[i].line = suite.items[i].line;
    SuiteRunner runner(engine, options);
    std::optional<Progress> progress;
    if (options.progress) progress.emplace(suite.settings.name, suite.items.size(), "items");

    for (std::size_t first = 0; first < suite.items.size(); first += kBatch) {
        const std::size_t last = std::min(suite.items.size(), first + kBatch);
        std::vector<std::size_t> scored_items, generation_items, lm_eval_items, settled;
        for (std::size_t i = first; i < last; ++i) {
            if (suite.items[i].kind == ItemKind::multiple_choice) r.has_norm = true;
            if (options.known != nullptr && i < options.known->size() && (*options.known)[i]) {
                r.outcomes[i] = *(*options.known)[i];
                continue;
            }
            settled.push_back(i);
            const ItemKind kind = suite.items[i].kind;
            const bool generated = kind == ItemKind::generation || kind == ItemKind::consistency;
            (generated ? generation_items : suite.items[i].lm_eval ? lm_eval_items : scored_items).push_back(i);
        }
        if (!scored_items.empty()) runner.score_items(suite, scored_items, r);
        if (!lm_eval_items.empty()) runner.lm_eval_items(suite, lm_eval_items, r);
        if (!generation_items.empty()) runner.generations(suite, generation_items, r);
        if (options.on_batch && !settled.empty()) options.on_batch(settled, r);
        if (progress) progress->update(last);
    }
    tally(r);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.tokens_evaluated = engine.tokens_decoded() - decoded_before;
    return r;
}

PairedComparison compare_outcomes(const SuiteResult & base, const SuiteResult & other, bool bootstrap) {
    if (base.suite.content_hash != other.suite.content_hash || base.outcomes.size() != other.outcomes.size()) {
        throw Error("cannot pair results of different suites ({} vs {})", base.suite.spec, other.suite.spec);
    }
    PairedComparison c;
    std::vector<std::uint8_t> base_right, other_right;
    for (std::size_t i = 0; i < base.outcomes.size(); ++i) {
        const auto & a = base.outcomes[i];
        const auto & b = other.outcomes[i];
        c.base_excluded += !a.scored();
        c.other_excluded += !b.scored();
        if (a.scored() && !b.scored()) ++(a.correct ? c.other_excluded_base_right : c.other_excluded_base_wrong);
        if (!a.scored() || !b.scored()) continue;
        c.both_right += a.correct && b.correct;
        base_right.push_back(a.correct);
        other_right.push_back(b.correct);
        if (a.correct && !b.correct) c.right_to_wrong.push_back(a.line);
        if (!a.correct && b.correct) c.wrong_to_right.push_back(a.line);
    }
    c.n = base_right.size();
    c.mcnemar_p = stats::mcnemar_exact_p(c.right_to_wrong.size(), c.wrong_to_right.size());
    if (c.n > 0 && bootstrap) {
        c.drop_absolute = stats::paired_bootstrap_drop(base_right, other_right, false);
        c.drop_relative = stats::paired_bootstrap_drop(base_right, other_right, true);
    }
    return c;
}

namespace {

nlohmann::json interval_json(const stats::Interval & i) { return nlohmann::json::array({i.lo, i.hi}); }

nlohmann::json drop_json(const stats::PairedDifference & d) {
    return {{"drop", d.mean_drop}, {"ci95", interval_json(d.ci)}};
}

stats::PairedDifference drop_from(const nlohmann::json & j) {
    return {j.at("drop"), {j.at("ci95").at(0), j.at("ci95").at(1)}};
}

}  // namespace

void to_json(nlohmann::json & out, const PairedComparison & c) {
    out = {{"n", c.n},
           {"both_right", c.both_right},
           {"right_to_wrong", c.right_to_wrong},
           {"wrong_to_right", c.wrong_to_right},
           {"base_excluded", c.base_excluded},
           {"other_excluded", c.other_excluded},
           {"other_excluded_base_right", c.other_excluded_base_right},
           {"other_excluded_base_wrong", c.other_excluded_base_wrong},
           {"base_accuracy", c.base_accuracy()},
           {"other_accuracy", c.other_accuracy()},
           {"mcnemar_p", c.mcnemar_p},
           {"absolute", drop_json(c.drop_absolute)},
           {"relative", drop_json(c.drop_relative)}};
}

void from_json(const nlohmann::json & in, PairedComparison & c) {
    c.n = in.at("n");
    c.both_right = in.at("both_right");
    c.right_to_wrong = in.at("right_to_wrong").get<std::vector<std::size_t>>();
    c.wrong_to_right = in.at("wrong_to_right").get<std::vector<std::size_t>>();
    c.base_excluded = in.at("base_excluded");
    c.other_excluded = in.at("other_excluded");
    // Comparisons written before these were kept read as none unscored by the other model alone.
    c.other_excluded_base_right = in.value("other_excluded_base_right", std::size_t{0});
    c.other_excluded_base_wrong = in.value("other_excluded_base_wrong", std::size_t{0});
    c.mcnemar_p = in.at("mcnemar_p");
    c.drop_absolute = drop_from(in.at("absolute"));
    c.drop_relative = drop_from(in.at("relative"));
}

void to_json(nlohmann::json & out, const SuiteResult & r) {
    nlohmann::json skipped = nlohmann::json::array();
    for (const auto & s : r.suite.skipped) skipped.push_back({{"line", s.line}, {"reason", s.reason}});
    out = {{"name", r.suite.settings.name},
           {"spec", r.suite.spec},
           {"content_hash", r.suite.content_hash},
           {"critical", r.suite.settings.critical},
           {"requires", r.suite.settings.requires_capability},
           {"n", r.scored},
           {"correct", r.correct},
           {"accuracy", r.accuracy()},
           {"ci95", interval_json(r.ci95)},
           {"skipped", r.suite.skipped.size()},
           {"skipped_lines", skipped},
           {"unencodable", r.unencodable},
           {"too_long", r.too_long},
           {"seconds", r.seconds},
           {"tokens",
            {{"evaluated", r.tokens_evaluated},
             {"unique", r.tokens_unique},
             {"one_sequence_per_choice", r.tokens_naive}}}};
    if (r.mean_reference_logprob) {
        // Consistency items: how likely this model finds the incumbent's own answers.
        out["reference_logprob"] = {{"mean", *r.mean_reference_logprob}, {"items", r.reference_scored}};
    }
    if (r.has_norm) {
        out["accuracy_norm"] = r.accuracy_norm();
        out["ci95_norm"] = interval_json(r.ci95_norm);
    }
}

}  // namespace switchyard::eval
