// Drives `switchyard serve` with the official openai npm client: models, chat, streaming chat and
// completions must come back in the shapes the client expects. Exits non-zero on any mismatch.
// Usage: node check.mjs SWITCHYARD_BINARY MODEL.gguf
import { startServe } from "./serve-process.mjs";
import OpenAI from "openai";

const [binary, model] = process.argv.slice(2);
if (!binary || !model) {
  console.error("usage: node check.mjs SWITCHYARD_BINARY MODEL.gguf");
  process.exit(2);
}
const { server, port } = await startServe(binary, model);

let failures = 0;
function check(what, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : ": " + JSON.stringify(detail)}`);
  if (!ok) failures++;
}

try {
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
  const name = model.split("/").pop().replace(/\.gguf$/, "");

  const models = await client.models.list();
  check("models.list names the model", models.data.some((m) => m.id === name), models.data);

  const messages = [{ role: "user", content: "Once upon a time" }];
  const chat = await client.chat.completions.create({ model: name, messages, max_tokens: 12, temperature: 0 });
  const text = chat.choices[0].message.content;
  check("chat answers with text", typeof text === "string" && text.length > 0, chat);
  check("chat names the model", chat.model === name, chat.model);
  check("chat finish_reason", chat.choices[0].finish_reason === "length", chat.choices[0]);
  check("chat usage", chat.usage.completion_tokens === 12 && chat.usage.total_tokens === chat.usage.prompt_tokens + 12, chat.usage);

  const stream = await client.chat.completions.create({ model: name, messages, max_tokens: 12, temperature: 0, stream: true });
  let streamed = "";
  let finish = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    streamed += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  check("streaming chat gives the same text", streamed === text, { streamed, text });
  check("streaming chat comes in pieces", chunks > 2, chunks);
  check("streaming chat ends with a finish_reason", finish === "length", finish);

  const completion = await client.completions.create({ model: name, prompt: "Once upon a time", max_tokens: 20, temperature: 0 });
  check("completions answer", completion.choices[0].text.startsWith(", there was a little girl named Lily"), completion.choices[0]);

  const echo = await client.completions.create({ model: name, prompt: "Once upon a time", max_tokens: 0, echo: true, logprobs: 2 });
  const lp = echo.choices[0].logprobs;
  // Text is echoed as sent, without the BOS put in front of it: every token is scored (the first after BOS).
  check("echo logprobs", lp.tokens.length === 4 && lp.token_logprobs.every((x) => x < 0) && lp.tokens.length === lp.text_offset.length, lp);

  try {
    await client.chat.completions.create({ model: "no-such-model", messages });
    check("unknown model is an error", false, "no error");
  } catch (e) {
    check("unknown model is a 404 NotFoundError", e instanceof OpenAI.NotFoundError && e.code === "model_not_found", String(e));
  }
} catch (e) {
  check("no exception", false, String(e.stack || e));
} finally {
  server.kill("SIGTERM");
}
process.exit(failures ? 1 : 0);
