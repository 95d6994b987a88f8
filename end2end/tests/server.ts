// Tether servers of a test's own, for settings the suite's server does not have (a
// small request limit, …) or for several nodes on one PostgreSQL database: the same
// binary, a free port, and nginx in front of nodes when a test wants a load balancer.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const repo = path.resolve(__dirname, "..", "..");

export type OwnServer = {
  url: string;
  /** Stops it (SIGTERM) and removes its temporary directory. */
  stop: () => Promise<void>;
  /** Kills it at once (SIGKILL), as a crash would. */
  kill: () => Promise<void>;
};

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const gone = (child: ChildProcess) => child.pid === undefined || child.exitCode !== null || child.signalCode !== null;

/** Waits until `url`/healthz answers 200 while `child` runs; stops it otherwise. */
async function healthy(child: ChildProcess, server: OwnServer, what: string): Promise<OwnServer> {
  for (let waited = 0; waited < 30_000; waited += 100) {
    if (gone(child)) break;
    const ok = await fetch(`${server.url}/healthz`).then((r) => r.ok).catch(() => false);
    if (ok) return server;
    await new Promise((r) => setTimeout(r, 100));
  }
  await server.stop();
  throw new Error(`${what} did not start`);
}

/** Gives a running `child` `stop` and `kill`, removing `dir` once it has exited. */
function own(child: ChildProcess, url: string, dir: string): OwnServer {
  const exited = new Promise<void>((resolve) => {
    if (gone(child)) resolve();
    child.once("exit", () => resolve());
    child.once("error", () => resolve()); // could not start it at all

  });
  const end = (signal: NodeJS.Signals) => async () => {
    child.kill(signal);
    await exited;
  };
  const stop = async () => {
    await end("SIGTERM")();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { url, stop, kill: end("SIGKILL") };
}

/** Starts a server with `settings` (`TETHER_*` variables; a free port unless they
 *  name a `TETHER_ADDR`, a SQLite file of its own unless they name a
 *  `TETHER_DATABASE_URL`) and waits until it is healthy. */
export async function startServer(settings: Record<string, string>): Promise<OwnServer> {
  const addr = settings.TETHER_ADDR ?? `127.0.0.1:${await freePort()}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-e2e-own-"));
  const child = spawn(path.join(repo, "target", "debug", "tether"), [], {
    cwd: repo,
    stdio: ["ignore", "ignore", "inherit"],
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      TETHER_ADDR: addr,
      TETHER_DATABASE_URL: `sqlite://${path.join(dir, "tether.db")}`,
      TETHER_SITE_ROOT: path.join(repo, "target", "site"),
      TETHER_LOG: "error",
      TETHER_HEARTBEAT_SECS: "5",
      ...settings,
    },
  });
  return healthy(child, own(child, `http://${addr}`, dir), `the server with ${JSON.stringify(settings)}`);
}

/** nginx in front of `nodes` as docs/DEPLOYMENT.md configures it (WebSocket upgrades,
 *  the next node on an error or 503), on a free port; waits until it answers /healthz. */
export async function startNginx(nodes: OwnServer[]): Promise<OwnServer> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-e2e-nginx-"));
  fs.chmodSync(dir, 0o755); // run as root, nginx's workers are another user
  const servers = nodes.map((n) => `    server ${new URL(n.url).host} max_fails=1 fail_timeout=3s;`).join("\n");
  fs.writeFileSync(
    path.join(dir, "nginx.conf"),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream tether {
${servers}
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 2m;
    location / {
      proxy_pass http://tether;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries ${nodes.length};
    }
  }
}
`,
  );
  const nginx = process.env.E2E_NGINX ?? (fs.existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx");
  const args = ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-e", path.join(dir, "error.log"), "-g", "daemon off;"];
  const child = spawn(nginx, args, { stdio: ["ignore", "ignore", "inherit"] });
  return healthy(child, own(child, `http://127.0.0.1:${port}`, dir), `nginx (${nginx}; make test installs it)`);
}
