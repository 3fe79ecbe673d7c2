// Chat fixtures: a copy of a model with a chat template and the control tokens the template writes
// added to its vocabulary, so that chat templating can be tested, token for token, on models too
// small to have been trained for chat (the shared models have no template and no such tokens).
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::model {

struct ChatStyle {
    std::string name;  // "chatml", "llama3", "chatml-tools"
    std::string chat_template;  // Jinja, as a GGUF's tokenizer.chat_template holds it
    std::vector<std::string> control_tokens;  // appended to the vocabulary, in this order
};

// ChatML (`<|im_start|>role\n...<|im_end|>`), Meta Llama 3 Instruct's template (`bos_token`
// first, `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>`), and ChatML with tools
// (Qwen2.5-7B-Instruct's template: tool signatures in the system turn, calls in <tool_call> tags).
std::span<const ChatStyle> chat_styles();
// Throws switchyard::Error listing the known names.
const ChatStyle & find_chat_style(std::string_view name);

// Writes `base` to `out` (atomically) with the style's template and its control tokens appended to
// the vocabulary as control tokens (score 0), and no space prefix (as chat models' tokenizers);
// the token embedding and output matrices gain one zero row per new token. Everything else is
// copied unchanged. Throws switchyard::Error when the
// base is not a readable GGUF with a token list, already holds one of the tokens, or the write fails.
void write_chat_model(const std::filesystem::path & base, const ChatStyle & style, const std::filesystem::path & out);

}  // namespace switchyard::model
