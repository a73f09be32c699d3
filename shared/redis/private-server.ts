/**
 * `lakehouse up` on a laptop without Redis: start a private redis-server bound to loopback on a
 * free port, its files (AOF on) under the data root, configured the way BullMQ needs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import { canReach } from './connection.ts';

export interface PrivateRedis {
  url: string;
  stop(): Promise<void>;
}

export function redisServerOnPath(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function startPrivateRedis(dir: string, timeoutMs = 10_000): Promise<PrivateRedis> {
  await fs.mkdir(dir, { recursive: true });
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '',
      '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes', '--logfile', 'redis.log'],
    // its own process group: a terminal's Ctrl-C must reach only `up`, which then stops
    // Redis last, after the workers have finished with it
    { stdio: 'ignore', detached: true },
  );
  const url = `redis://127.0.0.1:${port}`;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}; see ${dir}/redis.log`))),
  );
  await Promise.race([waitUntilReachable(url, timeoutMs), exited]);
  return { url, stop: () => stopChild(child) };
}

async function waitUntilReachable(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canReach(url, 500))) {
    if (Date.now() > deadline) throw new Error(`private redis-server at ${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM'); // redis-server flushes the AOF on SIGTERM
  await done;
}
