/**
 * `lakehouse up` on a laptop without Redis: start a private redis-server bound to loopback on a
 * free port, its files (AOF on) under the data root, configured the way BullMQ needs it, and
 * protected by a generated password: any local user or process could otherwise reach it on
 * 127.0.0.1 and read or add jobs. The password is made once and kept with the other generated
 * secrets (<data root>/secrets/redis.password, mode 0600); it reaches redis-server on its
 * standard input, never on its command line (which `ps` shows to every user).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createFileOnce } from '../storage/atomic-write.ts';
import { canReach } from './connection.ts';

export interface PrivateRedis {
  /** With the password: what every client of this process (and its children) connects with. */
  url: string;
  /** Without the password: for logs and banners. */
  displayUrl: string;
  stop(): Promise<void>;
}

export const REDIS_PASSWORD_FILE = 'redis.password';

/** The private server's password: generated once into `secretsDir` (mode 0600), then reused (its AOF outlives a run). */
export async function ensureRedisPassword(secretsDir: string): Promise<{ password: string; file: string }> {
  await fs.mkdir(secretsDir, { recursive: true, mode: 0o700 });
  const file = path.join(secretsDir, REDIS_PASSWORD_FILE);
  const { content } = await createFileOnce(file, () => `${randomBytes(32).toString('base64url')}\n`);
  const password = content.trim();
  if (!/^[A-Za-z0-9_-]{16,}$/.test(password)) throw new Error(`${file} does not hold a generated password (16+ base64url characters); remove it to have one made`);
  return { password, file };
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

export async function startPrivateRedis(dir: string, password: string, timeoutMs = 10_000): Promise<PrivateRedis> {
  await fs.mkdir(dir, { recursive: true });
  const port = await freePort();
  const child = spawn(
    'redis-server',
    // `-`: the rest of the configuration (the password) comes on standard input
    ['-', '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '',
      '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes', '--logfile', 'redis.log'],
    // its own process group: a terminal's Ctrl-C must reach only `up`, which then stops
    // Redis last, after the workers have finished with it
    { stdio: ['pipe', 'ignore', 'ignore'], detached: true },
  );
  child.stdin!.on('error', () => {}); // an early exit is reported below, with the log file
  child.stdin!.end(`requirepass ${password}\n`);
  const displayUrl = `redis://127.0.0.1:${port}`;
  const url = `redis://:${password}@127.0.0.1:${port}`;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code}; see ${dir}/redis.log`))),
  );
  await Promise.race([waitUntilReachable(url, timeoutMs), exited]);
  return { url, displayUrl, stop: () => stopChild(child) };
}

async function waitUntilReachable(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canReach(url, 500))) {
    if (Date.now() > deadline) throw new Error(`private redis-server at ${url.replace(/:[^:@/]*@/, '@')} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM'); // redis-server flushes the AOF on SIGTERM
  await done;
}
