// Drives `switchyard serve` with LangChain JS (@langchain/openai), on a model without a chat
// template and on the same model given one: invoke, stream, batch (chat, and completions with
// several prompts in one request), n > 1, logprobs, and withStructuredOutput through a JSON
// schema. Exits non-zero on any mismatch.
// Usage: node check-langchain.mjs SWITCHYARD_BINARY MODEL.gguf
import { startServe } from "./serve-process.mjs";
import { ChatOpenAI, OpenAI } from "@langchain/openai";
import { HumanMessage } from "@langchain/core/messages";
import { z } from "zod";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [binary, base] = process.argv.slice(2);
if (!binary || !base) {
  console.error("usage: node check-langchain.mjs SWITCHYARD_BINARY MODEL.gguf");
  process.exit(2);
}

let failures = 0;
function check(what, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : ": " + JSON.stringify(detail)}`);
  if (!ok) failures++;
}

// The same weights with a ChatML template, as `switchyard make-chat-model` writes them.
const dir = mkdtempSync(join(tmpdir(), "switchyard-langchain-"));
const templated = join(dir, "chatml.gguf");
const made = spawnSync(binary, ["make-chat-model", base, templated, "--style", "chatml"], { encoding: "utf8" });
if (made.status !== 0) {
  console.error(made.stderr);
  process.exit(1);
}

// Bounded, so that even a 260K-parameter model closes the object within max_tokens.
const Hero = z.object({ name: z.string().max(6), mood: z.enum(["happy", "sad"]) });

async function drive(model, label) {
  const { server, port } = await startServe(binary, model);
  const name = model.split("/").pop().replace(/\.gguf$/, "");
  const common = { model: name, apiKey: "unused", configuration: { baseURL: `http://127.0.0.1:${port}/v1` }, maxRetries: 0, temperature: 0 };
  try {
    const chat = new ChatOpenAI({ ...common, maxTokens: 12 });
    const said = await chat.invoke("Once upon a time");
    check(`${label}: invoke answers`, typeof said.content === "string" && said.content.length > 0, said);
    check(`${label}: invoke counts tokens`, said.usage_metadata?.output_tokens === 12, said.usage_metadata);

    let streamed = "";
    let pieces = 0;
    for await (const chunk of await chat.stream("Once upon a time")) {
      streamed += chunk.content;
      pieces++;
    }
    check(`${label}: stream gives invoke's text`, streamed === said.content, { streamed, said: said.content });
    check(`${label}: stream comes in pieces`, pieces > 2, pieces);

    const both = await chat.batch(["Once upon a time", "The dog"]);
    check(`${label}: batch answers each`, both.length === 2 && both[0].content === said.content, both.map((m) => m.content));

    const two = await new ChatOpenAI({ ...common, maxTokens: 6, n: 2 }).generate([[new HumanMessage("Once upon a time")]]);
    check(`${label}: n = 2 gives two generations`, two.generations[0].length === 2, two.generations[0]);

    const withLogprobs = await new ChatOpenAI({ ...common, maxTokens: 5, logprobs: true, topLogprobs: 2 }).invoke("Once upon a time");
    const lp = withLogprobs.response_metadata?.logprobs?.content ?? [];
    check(`${label}: logprobs per token`, lp.length === 5 && lp.every((t) => t.logprob <= 0 && t.top_logprobs.length === 2), withLogprobs.response_metadata);

    const structured = new ChatOpenAI({ ...common, maxTokens: 150 }).withStructuredOutput(Hero, { method: "jsonSchema", name: "hero" });
    try {
      const hero = await structured.invoke("Tell me about a hero.");
      check(`${label}: withStructuredOutput (json_schema) parses`, Hero.safeParse(hero).success, hero);
    } catch (e) {
      check(`${label}: withStructuredOutput (json_schema) parses`, false, String(e));
    }

    // The completions model sends a batch as one request with a list of prompts.
    const llm = new OpenAI({ ...common, maxTokens: 8 });
    const completions = await llm.generate(["Once upon a time", "The dog"]);
    const texts = completions.generations.map((g) => g[0].text);
    const alone = await llm.invoke("The dog");
    check(`${label}: completions batch, one answer per prompt in order`, texts.length === 2 && texts[1] === alone, { texts, alone });
  } finally {
    server.kill();
  }
}

try {
  await drive(base, "no chat template");
  await drive(templated, "chatml template");
} catch (e) {
  console.error(e);
  failures++;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(failures === 0 ? "all LangChain checks passed" : `${failures} LangChain check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
