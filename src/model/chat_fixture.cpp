#include "model/chat_fixture.h"

#include "support/atomic_file.h"
#include "support/error.h"

#include <fmt/format.h>
#include <ggml-cpp.h>
#include <ggml.h>
#include <gguf.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace switchyard::model {

namespace {

// The templates as real models' GGUFs carry them: ChatML as Qwen and many others write it,
// Meta-Llama-3-8B-Instruct's own, and Qwen2.5-7B-Instruct's own.
const std::array<ChatStyle, 3> kStyles{{
    {.name = "chatml",
     .chat_template =
         "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
     .control_tokens = {"<|im_start|>", "<|im_end|>"}},
    {.name = "llama3",
     .chat_template =
         "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
         "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
         "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
         "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
     .control_tokens = {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
    // ChatML with tools: Qwen2.5-7B-Instruct's own template (llama.cpp's models/templates copy),
    // the tools' JSON in the system turn, calls in <tool_call> tags, results in <tool_response>
    // tags. llama.cpp reads its calls back (its autoparser's "peg-native" format). The call tags
    // are control tokens here, so an answer keeps them as text only as llama.cpp's preserved
    // tokens (what models whose tokenizers mark such tags special need).
    {.name = "chatml-tools",
     .chat_template = R"jinja({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)jinja",
     .control_tokens = {"<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"}},
}};

constexpr std::int32_t kControlTokenType = 3;  // LLAMA_TOKEN_TYPE_CONTROL

template <typename T>
std::vector<T> array_of(const gguf_context * ctx, const char * key, gguf_type type, std::size_t n,
                        const std::filesystem::path & file) {
    const auto id = gguf_find_key(ctx, key);
    if (id < 0) return {};
    if (gguf_get_kv_type(ctx, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(ctx, id) != type ||
        gguf_get_arr_n(ctx, id) != n)
        throw Error("{}: {} is not an array of one value per token", file.string(), key);
    const auto * data = static_cast<const T *>(gguf_get_arr_data(ctx, id));
    return std::vector<T>(data, data + n);
}

}  // namespace

std::span<const ChatStyle> chat_styles() { return kStyles; }

const ChatStyle & find_chat_style(std::string_view name) {
    std::string names;
    for (const auto & s : kStyles) {
        if (s.name == name) return s;
        names += (names.empty() ? "" : ", ") + s.name;
    }
    throw Error("unknown chat style '{}' (known: {})", name, names);
}

void write_chat_model(const std::filesystem::path & base, const ChatStyle & style, const std::filesystem::path & out) {
    ggml_context * raw = nullptr;
    gguf_context_ptr src{gguf_init_from_file(base.c_str(), {.no_alloc = false, .ctx = &raw})};
    if (!src) throw Error("{}: not a readable GGUF file", base.string());
    ggml_context_ptr data{raw};

    const auto tokens_id = gguf_find_key(src.get(), "tokenizer.ggml.tokens");
    if (tokens_id < 0 || gguf_get_kv_type(src.get(), tokens_id) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(src.get(), tokens_id) != GGUF_TYPE_STRING)
        throw Error("{}: the file has no token list (tokenizer.ggml.tokens)", base.string());
    const std::size_t n_vocab = gguf_get_arr_n(src.get(), tokens_id);
    std::vector<std::string> tokens;
    for (std::size_t i = 0; i < n_vocab; ++i) tokens.emplace_back(gguf_get_arr_str(src.get(), tokens_id, i));
    auto scores = array_of<float>(src.get(), "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, n_vocab, base);
    auto types = array_of<std::int32_t>(src.get(), "tokenizer.ggml.token_type", GGUF_TYPE_INT32, n_vocab, base);
    for (const auto & t : style.control_tokens) {
        if (std::find(tokens.begin(), tokens.end(), t) != tokens.end())
            throw Error("{}: the vocabulary already holds {}", base.string(), t);
        tokens.push_back(t);
        if (!scores.empty()) scores.push_back(0.0f);
        if (!types.empty()) types.push_back(kControlTokenType);
    }
    const std::size_t added = style.control_tokens.size();

    gguf_context_ptr dst{gguf_init_empty()};
    gguf_set_kv(dst.get(), src.get());
    std::vector<const char *> token_ptrs;
    for (const auto & t : tokens) token_ptrs.push_back(t.c_str());
    gguf_set_arr_str(dst.get(), "tokenizer.ggml.tokens", token_ptrs.data(), token_ptrs.size());
    if (!scores.empty())
        gguf_set_arr_data(dst.get(), "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data(), scores.size());
    if (!types.empty())
        gguf_set_arr_data(dst.get(), "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), types.size());
    gguf_set_val_str(dst.get(), "tokenizer.chat_template", style.chat_template.c_str());
    // As chat models' tokenizers do: no space put before the text that follows a control token
    // (SentencePiece's default would make `<|im_start|>assistant` read ` assistant`).
    gguf_set_val_bool(dst.get(), "tokenizer.ggml.add_space_prefix", false);
    if (const auto arch = gguf_find_key(src.get(), "general.architecture"); arch >= 0) {
        const std::string key = std::string(gguf_get_val_str(src.get(), arch)) + ".vocab_size";
        if (gguf_find_key(src.get(), key.c_str()) >= 0)
            gguf_set_val_u32(dst.get(), key.c_str(), static_cast<std::uint32_t>(tokens.size()));
    }

    // The matrices with a row per token gain zero rows: the new tokens' embedding and logit are 0.
    const auto n_tensors = gguf_get_n_tensors(src.get());
    std::size_t grown_bytes = 0;
    for (int64_t i = 0; i < n_tensors; ++i) {
        const ggml_tensor * t = ggml_get_tensor(data.get(), gguf_get_tensor_name(src.get(), i));
        if (t->ne[1] == static_cast<int64_t>(n_vocab))
            grown_bytes += ggml_row_size(t->type, t->ne[0]) * (n_vocab + added);
    }
    ggml_init_params params{.mem_size = grown_bytes + static_cast<std::size_t>(n_tensors) * ggml_tensor_overhead(),
                            .mem_buffer = nullptr,
                            .no_alloc = false};
    ggml_context_ptr grown{ggml_init(params)};
    for (int64_t i = 0; i < n_tensors; ++i) {
        const char * name = gguf_get_tensor_name(src.get(), i);
        ggml_tensor * t = ggml_get_tensor(data.get(), name);
        const bool per_token =
            (std::strcmp(name, "token_embd.weight") == 0 || std::strcmp(name, "output.weight") == 0) &&
            t->ne[1] == static_cast<int64_t>(n_vocab);
        if (!per_token) {
            gguf_add_tensor(dst.get(), t);
            continue;
        }
        ggml_tensor * g = ggml_new_tensor_2d(grown.get(), t->type, t->ne[0], static_cast<int64_t>(n_vocab + added));
        ggml_set_name(g, name);
        std::memcpy(g->data, t->data, ggml_nbytes(t));
        std::memset(static_cast<char *>(g->data) + ggml_nbytes(t), 0, ggml_nbytes(g) - ggml_nbytes(t));
        gguf_add_tensor(dst.get(), g);
    }

    AtomicFile file(out);
    if (!gguf_write_to_file(dst.get(), file.temp_path().c_str(), /*only_meta=*/false))
        throw Error("{}: write failed", out.string());
    file.commit();
}

}  // namespace switchyard::model
