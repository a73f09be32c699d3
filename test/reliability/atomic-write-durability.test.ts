/**
 * An atomic write is durable only when the directory holding the new name is fsynced after the
 * rename (or link): the file's own fsync does not cover its directory entry. The system calls of a
 * real writer process are traced with strace (installed by .ci/run), for each way the data root
 * publishes a file: writeFileAtomic (manifests, shard lists), commitTempFile, commitTempFileOnce
 * (tombstones, compacted vectors) and createFileOnce (generated secrets).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MODULE = pathToFileURL(path.resolve(import.meta.dirname, '../../shared/storage/atomic-write.ts')).href;

let dir: string;

interface Call {
  pid: string;
  name: string;
  args: string;
  result: string;
}

/** Runs `body` (ES module code with the atomic-write exports in scope) under strace; its file system calls in order. */
async function traced(body: string): Promise<Call[]> {
  const log = path.join(dir, `strace-${Math.random().toString(36).slice(2)}.txt`);
  const code = `import * as aw from ${JSON.stringify(MODULE)};\nconst D = ${JSON.stringify(dir)};\n${body}`;
  await run('strace', ['-f', '-qq', '-e', 'trace=openat,rename,renameat,renameat2,link,linkat,fsync,fdatasync,close', '-o', log,
    process.execPath, '--import', 'tsx', '--input-type=module', '-e', code]);
  const text = await fs.readFile(log, 'utf8');
  return text.split('\n').flatMap((line) => {
    const m = /^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
    return m ? [{ pid: m[1]!, name: m[2]!, args: m[3]!, result: m[4]! }] : [];
  });
}

/** Asserts that after the call publishing `target`, the fd of an open of `target`'s directory is fsynced. */
function assertDirSyncedAfter(calls: Call[], publish: RegExp, target: string): void {
  const at = calls.findIndex((c) => publish.test(c.name) && c.args.includes(JSON.stringify(target)) && c.result === '0');
  assert.ok(at >= 0, `${target} was published by ${publish}: ${calls.map((c) => `${c.name}(${c.args.slice(0, 80)})`).join('\n')}`);
  const dirOpen = JSON.stringify(path.dirname(target));
  const later = calls.slice(at + 1);
  const opened = later.find((c) => c.name === 'openat' && c.args.includes(`${dirOpen},`) && Number(c.result) >= 0);
  assert.ok(opened, `the directory ${path.dirname(target)} was opened after the publish`);
  const fd = opened.result;
  const synced = later.slice(later.indexOf(opened) + 1).find((c) => (c.name === 'fsync' || c.name === 'fdatasync') && c.args === fd);
  assert.ok(synced, `fd ${fd} (the directory) was fsynced after ${target} was published`);
}

describe('atomic writes fsync their directory', { timeout: 60_000 }, () => {
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lh-durable-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('writeFileAtomic: rename, then fsync of the directory', async () => {
    const calls = await traced(`await aw.writeFileAtomic(D + '/manifest.json', '{}');`);
    assertDirSyncedAfter(calls, /^rename/, path.join(dir, 'manifest.json'));
  });

  it('commitTempFile and commitTempFileOnce: rename / link, then fsync of the directory', async () => {
    const calls = await traced(
      `const fsp = await import('node:fs/promises');\n` +
        `await fsp.writeFile(D + '/a.tmp', 'a'); await aw.commitTempFile(D + '/a.tmp', D + '/a.parquet');\n` +
        `await fsp.writeFile(D + '/b.tmp', 'b'); await aw.commitTempFileOnce(D + '/b.tmp', D + '/b.parquet');`,
    );
    assertDirSyncedAfter(calls, /^rename/, path.join(dir, 'a.parquet'));
    assertDirSyncedAfter(calls, /^link/, path.join(dir, 'b.parquet'));
  });

  it('createFileOnce (generated secrets): link, then fsync of the directory; the content is what was made', async () => {
    const calls = await traced(`const r = await aw.createFileOnce(D + '/admin.key', () => 'k3y'); if (!r.created || r.content !== 'k3y') process.exit(3);`);
    assertDirSyncedAfter(calls, /^link/, path.join(dir, 'admin.key'));
    assert.equal((await fs.stat(path.join(dir, 'admin.key'))).mode & 0o777, 0o600);
  });
});
