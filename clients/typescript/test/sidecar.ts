// A real sidecar process (this checkout's, from its .venv: `make test` builds it; ENTITLEMENTS_SIDECAR_PYTHON
// names another interpreter that has it installed) on a copy of the example catalog, on free loopback ports.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Poll `condition` every 10 ms until it holds; throws after `timeoutMs`. */
export async function eventually(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export class Sidecar {
  readonly catalog: string;
  process: ChildProcess | undefined;
  log = "";

  private constructor(readonly port: number, readonly httpPort: number) {
    this.catalog = join(mkdtempSync(join(tmpdir(), "ts-client-")), "catalog.yaml");
    copyFileSync(join(ROOT, "examples", "catalog.yaml"), this.catalog);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<Sidecar> {
    const sidecar = new Sidecar(await freePort(), await freePort());
    await sidecar.spawn();
    return sidecar;
  }

  async spawn(): Promise<void> {
    const python = process.env.ENTITLEMENTS_SIDECAR_PYTHON || join(ROOT, ".venv", "bin", "python");
    if (!existsSync(python)) throw new Error(`no Python with the sidecar at ${python} (run make test)`);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ENTITLEMENTS_")));
    this.process = spawn(python, ["-m", "entitlements_sidecar.cli", "serve", "--grpc-address", `127.0.0.1:${this.port}`,
      "--http-address", `127.0.0.1:${this.httpPort}`, "--catalog-path", this.catalog, "--catalog-poll-seconds", "0.05",
      "--shutdown-grace-seconds", "2", "--log-level", "warning"], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.process.stdout?.on("data", (chunk: Buffer) => (this.log += chunk.toString()));
    this.process.stderr?.on("data", (chunk: Buffer) => (this.log += chunk.toString()));
    await eventually("the sidecar listening", () => listening(this.port), 20_000);
  }

  /** SIGKILL, and wait for the exit. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  async stop(): Promise<void> {
    await this.signal("SIGTERM");
  }

  edit(old: string, replacement: string): void {
    const text = readFileSync(this.catalog, "utf8");
    if (!text.includes(old)) throw new Error(`${old} is not in the catalog`);
    writeFileSync(this.catalog, text.replace(old, replacement));
    const later = new Date(Date.now() + 1000); // a new mtime even within the file system's resolution
    utimesSync(this.catalog, later, later);
  }

  private async signal(name: NodeJS.Signals): Promise<void> {
    const child = this.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(name);
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
