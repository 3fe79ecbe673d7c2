// Starts `switchyard serve -m MODEL` on a free port for the Node.js checks; resolves to the
// child process and its port once it says it is listening.
import { spawn } from "node:child_process";

export async function startServe(binary, model) {
  const server = spawn(binary, ["serve", "-m", model, "--port", "0", "-t", "1"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((resolve, reject) => {
    let out = "";
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    server.on("exit", (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
  });
  return { server, port };
}
