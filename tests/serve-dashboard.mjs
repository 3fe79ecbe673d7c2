// Opens the serve dashboard in headless Chromium after some traffic and checks that it shows live
// numbers and logs no script errors. Node built-ins only. Usage: node serve-dashboard.mjs SWITCHYARD MODEL.gguf [CHROMIUM]
import { spawnSync } from "node:child_process";
import { startServe } from "./serve-process.mjs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [binary, model, browser = "chromium"] = process.argv.slice(2);
const { server, port } = await startServe(binary, model);
const base = `http://127.0.0.1:${port}`;
const profile = mkdtempSync(join(tmpdir(), "switchyard-chromium-"));
let failures = 0;
function check(what, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : ": " + detail}`);
  if (!ok) failures++;
}
try {
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${base}/v1/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 5 }) });
    check(`request ${i + 1} answered`, r.status === 200, r.status);
  }
  const run = spawnSync(browser, ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", `--user-data-dir=${profile}`,
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", `${base}/`], { encoding: "utf8", timeout: 120000 });
  check("chromium ran", run.status === 0, `${run.status} ${run.error ?? ""} ${run.stderr}`);
  const dom = run.stdout ?? "";
  const requests = Number((dom.match(/data-requests="(\d+)"/) ?? [])[1] ?? 0);
  check("the dashboard shows the requests answered", requests >= 3, dom.slice(0, 2000));
  const name = model.split("/").pop().replace(/\.gguf$/, "");
  check("the dashboard lists the model", dom.includes(`<td>${name}</td>`), dom.slice(0, 2000));
  // One model, no replicas, shadows or capture: each empty table says so in one row.
  const nones = dom.match(/<td colspan="\d+" class="none">none<\/td>/g) ?? [];
  check("empty tables say none", nones.length === 3, dom.slice(0, 4000));
  check("costs read per 1M tokens", dom.includes("<th>$ per 1M tokens</th>"), dom.slice(0, 2000));
  // The page logs nothing itself, so any console line is an error or a warning worth failing on.
  const consoleLines = (run.stderr ?? "").split("\n").filter((l) => /:CONSOLE|Uncaught/.test(l));
  check("no console errors", consoleLines.length === 0, consoleLines.join("\n"));
} catch (e) {
  check("no exception", false, String(e.stack || e));
} finally {
  server.kill("SIGTERM");
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failures ? 1 : 0);
