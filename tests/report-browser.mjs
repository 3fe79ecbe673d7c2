// Opens a plan's report.html in headless Chromium as a person would, at a desktop width (1400 px)
// and a phone width (420 px), both 900 px tall: takes a screenshot of each, checks that every
// verdict line and the perplexity flag are visible without scrolling, that the page is no wider
// than the window, and that the page logs nothing to the console. Chromium is driven through the
// DevTools protocol, since its --window-size cannot go below 500 px. Node built-ins only.
// Usage: node --experimental-websocket report-browser.mjs REPORT.html OUT_DIR [CHROMIUM]
//        (writes OUT_DIR/report-1400.png and OUT_DIR/report-420.png)
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const [report, outDir, browser = "chromium"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "switchyard-report-"));
let failures = 0;
function check(what, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : ": " + detail}`);
  if (!ok) failures++;
}

const chromium = spawn(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--hide-scrollbars", `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank"],
  { stdio: ["ignore", "ignore", "pipe"] });

// One DevTools session on the first page: send(method, params) answers with the result; events
// of the page (console, exceptions, log entries) are collected.
async function connect() {
  const endpoint = await new Promise((done, fail) => {
    let err = "";
    chromium.stderr.on("data", (d) => {
      err += d;
      const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) done(m[1]);
    });
    chromium.on("exit", (code) => fail(new Error(`chromium exited (${code}): ${err}`)));
  });
  const port = new URL(endpoint).port;
  const pages = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const socket = new WebSocket(pages.find((p) => p.type === "page").webSocketDebuggerUrl);
  await new Promise((done) => socket.addEventListener("open", done));
  let next = 0;
  const waiting = new Map();
  const events = [];
  socket.addEventListener("message", (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id !== undefined && waiting.has(msg.id)) {
      waiting.get(msg.id)(msg);
      waiting.delete(msg.id);
    } else if (msg.method) {
      events.push(msg);
    }
  });
  const send = (method, params = {}) => new Promise((done, fail) => {
    const id = ++next;
    waiting.set(id, (msg) => (msg.error ? fail(new Error(`${method}: ${msg.error.message}`)) : done(msg.result)));
    socket.send(JSON.stringify({ id, method, params }));
  });
  return { send, events, close: () => socket.close() };
}

// Marks, for each element the check is about, whether its bottom edge lies within the first
// screenful; the page itself has no script.
const probe = `JSON.stringify({
  window: [window.innerWidth, window.innerHeight],
  pageWidth: document.documentElement.scrollWidth,
  lines: [...document.querySelectorAll("[data-check]")].map((el) => {
    const box = el.getBoundingClientRect();
    return { kind: el.dataset.check, text: el.textContent, above: box.height > 0 && box.bottom <= window.innerHeight };
  }),
})`;

try {
  const cdp = await connect();
  await cdp.send("Page.enable");
  await cdp.send("Runtime.enable");
  await cdp.send("Log.enable");
  for (const width of [1400, 420]) {
    cdp.events.length = 0;
    await cdp.send("Emulation.setDeviceMetricsOverride", { width, height: 900, deviceScaleFactor: 1, mobile: width < 600 });
    await cdp.send("Page.navigate", { url: `file://${resolve(report)}` });
    for (let i = 0; i < 100 && !cdp.events.some((e) => e.method === "Page.loadEventFired"); i++) await new Promise((r) => setTimeout(r, 100));
    check(`${width} px: page loaded`, cdp.events.some((e) => e.method === "Page.loadEventFired"), "no load event in 10 s");
    const shot = await cdp.send("Page.captureScreenshot", { format: "png" });
    writeFileSync(resolve(outDir, `report-${width}.png`), Buffer.from(shot.data, "base64"));
    const seen = JSON.parse((await cdp.send("Runtime.evaluate", { expression: probe, returnByValue: true })).result.value);
    check(`${width} px: window ${seen.window.join("x")}, page ${seen.pageWidth} px wide, no sideways scrolling`,
      seen.window[0] === width && seen.pageWidth <= width, JSON.stringify(seen.window));
    for (const kind of ["verdict", "flag"]) {
      const lines = seen.lines.filter((l) => l.kind === kind);
      check(`${width} px: ${lines.length} ${kind} line(s) shown`, lines.length > 0, JSON.stringify(seen.lines));
      for (const line of lines) {
        check(`${width} px: above the fold: ${line.text}`, line.above, "below the first screenful");
        if (kind === "verdict") check(`${width} px: verdict within 200 characters (${[...line.text].length})`, [...line.text].length <= 200, line.text);
      }
    }
    // The page logs nothing itself, so any console call, exception or log entry is worth failing on.
    const logged = cdp.events.filter((e) => ["Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded"].includes(e.method));
    check(`${width} px: no console messages`, logged.length === 0, JSON.stringify(logged));
  }
  cdp.close();
} catch (e) {
  check("no exception", false, String(e.stack || e));
} finally {
  chromium.kill("SIGTERM");
  await new Promise((r) => (chromium.exitCode !== null ? r() : chromium.on("exit", r)));
  // Chromium's helper processes can still be writing the profile after the browser exits: retry,
  // and a profile left behind is a warning, not a failed check of the page.
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  } catch (e) {
    console.log(`warning: could not remove ${profile}: ${e.code || e}`);
  }
}
process.exit(failures ? 1 : 0);
