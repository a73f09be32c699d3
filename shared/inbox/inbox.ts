/**
 * The inbox: a file dropped into `inbox/<dataset>/` is ingested into that dataset.
 *
 *   inbox/<dataset>/<file>                           dropped by people and scripts
 *   inbox/.claimed/<dataset>/<uuid>__<file>          claimed by one watcher; its ingest job reads it here
 *   inbox/processed/<dataset>/<timestamp>__<file>    ingested
 *   inbox/failed/<dataset>/<timestamp>__<file>       not ingested; `<same>.error.txt` beside it says why
 *
 * Glossary
 * - quiet: a file whose modification time is at least `quietMs` old; younger files may still be
 *   being written. Writers that can should write to a dot-name and rename, which is never seen early.
 * - claim: the atomic rename of a dropped file into `.claimed/`. Of several watchers (on several
 *   hosts sharing the data root) racing for one file exactly one rename succeeds; the others get
 *   ENOENT. Claimed names are unique, so each dropped file becomes exactly one claim.
 * - settle: the move of a claimed file to `processed/` or `failed/` once its job is done for good.
 *   A file's location is its outcome: a claim still in `.claimed/` has none yet.
 *
 * Path safety: names are checked before they become paths (datasets by the catalog's rule, files
 * as one plain segment), every resolved path must stay inside inbox/, and nothing is followed
 * through a symlink — folders made under inbox/ must be real directories, and a symlink is never
 * claimed or handed to a reader.
 */
import type { Dirent, Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { redactSecrets } from '../redact.ts';
import { writeFileAtomic } from '../storage/atomic-write.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { ENTITY_NAME } from '../storage/names.ts';
import { claimJobId, claimName, parseClaimName } from './claim-name.ts';

export const CLAIMED = '.claimed';
export const PROCESSED = 'processed';
export const FAILED = 'failed';
/** Valid dataset names that are inbox folders of their own, so no dataset by these names can be fed. */
export const RESERVED_FOLDERS: readonly string[] = [PROCESSED, FAILED];

/** @defaultValue for scanInbox's quietMs */
export const QUIET_MS = 1_000;
/** Leaves room for the `<uuid>__` and `<timestamp>__…error.txt` decorations within 255 bytes. */
export const MAX_FILENAME_BYTES = 200;

export interface InboxEntry {
  dataset: string;
  /** The file's name inside `inbox/<dataset>/`. */
  file: string;
}

export interface Claim {
  /** Path relative to inbox/: `.claimed/<dataset>/<uuid>__<file>`. */
  claimed: string;
  dataset: string;
  /** The name the file was dropped with. */
  filename: string;
  /** The job id for this claim: the same on every enqueue, so BullMQ dedupes repeats. */
  jobId: string;
  /** Unix milliseconds, from the claim's uuid. */
  claimedAt: number;
}

export type Outcome = { ok: true } | { ok: false; error: string };

export function inboxDir(root: DataRoot): string {
  return root.inside(root.root, 'inbox');
}

export function isDatasetFolder(name: string): boolean {
  return ENTITY_NAME.test(name) && !RESERVED_FOLDERS.includes(name);
}

/** One path segment a watcher may claim: no dot-files (temporary names), no separators, not too long. */
export function isPlainFileName(name: string): boolean {
  return name !== '' && !name.startsWith('.') && !name.includes('/') && !name.includes('\0') && Buffer.byteLength(name) <= MAX_FILENAME_BYTES;
}

export interface ScanOptions {
  quietMs?: number;
  now?: number;
  /** Hears each symlink left alone (`inbox/<path>` and why), so the refusal can be logged. @defaultValue none */
  onRefused?: (where: string, reason: string) => void;
}

const SYMLINK_REFUSED = 'a symlink: the inbox never follows one';

/** Files ready to claim, oldest first. Anything not a quiet regular file in a dataset folder is left alone. */
export async function scanInbox(root: DataRoot, { quietMs = QUIET_MS, now = Date.now(), onRefused = () => {} }: ScanOptions = {}): Promise<InboxEntry[]> {
  const inbox = inboxDir(root);
  if ((await lstatIfExists(inbox))?.isSymbolicLink()) {
    onRefused('inbox', SYMLINK_REFUSED);
    return [];
  }
  const found: (InboxEntry & { mtimeMs: number })[] = [];
  for (const folder of await listDir(inbox)) {
    // a symlinked folder is not a directory entry here, so it is never entered
    if (folder.isSymbolicLink()) onRefused(`inbox/${folder.name}`, SYMLINK_REFUSED);
    if (!folder.isDirectory() || !isDatasetFolder(folder.name)) continue;
    for (const f of await listDir(path.join(inbox, folder.name))) {
      if (f.isSymbolicLink()) onRefused(`inbox/${folder.name}/${f.name}`, SYMLINK_REFUSED);
      if (!f.isFile() || !isPlainFileName(f.name)) continue;
      const st = await lstatIfExists(path.join(inbox, folder.name, f.name));
      if (!st?.isFile() || now - st.mtimeMs < quietMs) continue;
      found.push({ dataset: folder.name, file: f.name, mtimeMs: st.mtimeMs });
    }
  }
  return found.sort((a, b) => a.mtimeMs - b.mtimeMs).map(({ dataset, file }) => ({ dataset, file }));
}

/** Claims a dropped file for this watcher; undefined when another watcher got it first. */
export async function claim(root: DataRoot, entry: InboxEntry, now = Date.now()): Promise<{ claimed: string } | undefined> {
  const dataset = checkDataset(entry.dataset);
  const file = checkFilename(entry.file);
  const from = insideInbox(root, dataset, file);
  // the folders on the way must be real directories: lstat of the file alone would follow a
  // symlinked inbox/ or inbox/<dataset>/ and claim a file from wherever it points
  if (!(await realDirOnPath(root, dataset))) return undefined;
  const st = await lstatIfExists(from);
  if (!st) return undefined;
  if (!st.isFile()) throw new BadRequestError(`inbox/${dataset}/${file} is not a regular file; symlinks are never followed`);
  const name = claimName(file, now);
  const dir = await realDir(root, CLAIMED, dataset);
  try {
    await fs.rename(from, path.join(dir, name));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  return { claimed: `${CLAIMED}/${dataset}/${name}` };
}

/** What a claim's relative path says, after checking it names a claim and nothing else. */
export function describeClaim(claimed: string): Claim {
  const parts = claimed.split('/');
  const parsed = parts.length === 3 && parts[0] === CLAIMED ? parseClaimName(parts[2]!) : undefined;
  if (!parsed || !isDatasetFolder(parts[1]!) || !isPlainFileName(parsed.filename)) {
    throw new BadRequestError(`${JSON.stringify(claimed)} is not a claimed inbox file (${CLAIMED}/<dataset>/<uuid>__<file>)`);
  }
  return { claimed, dataset: parts[1]!, filename: parsed.filename, jobId: claimJobId(parsed.uuid), claimedAt: parsed.claimedAt };
}

/** The absolute path of a claimed file, for its ingest to read; refuses anything but a regular file. */
export async function claimedFile(root: DataRoot, claimed: string): Promise<string> {
  const c = describeClaim(claimed);
  const file = insideInbox(root, CLAIMED, c.dataset, path.basename(claimed));
  if (!(await realDirOnPath(root, CLAIMED, c.dataset))) throw new NotFoundError(`inbox/${claimed} is gone (already settled?)`);
  const st = await lstatIfExists(file);
  if (!st) throw new NotFoundError(`inbox/${claimed} is gone (already settled?)`);
  if (!st.isFile()) throw new BadRequestError(`inbox/${claimed} is not a regular file; symlinks are never followed`);
  return file;
}

/** Every claim still waiting for an outcome, oldest first. */
export async function listClaims(root: DataRoot): Promise<Claim[]> {
  const claimedDir = insideInbox(root, CLAIMED);
  if (!(await lstatIfExists(claimedDir))?.isDirectory()) return [];
  const claims: Claim[] = [];
  for (const folder of await listDir(claimedDir)) {
    if (!folder.isDirectory() || !isDatasetFolder(folder.name)) continue;
    for (const f of await listDir(path.join(claimedDir, folder.name))) {
      const rel = `${CLAIMED}/${folder.name}/${f.name}`;
      if (f.isFile() && parseClaimName(f.name)) claims.push(describeClaim(rel));
    }
  }
  return claims.sort((a, b) => a.claimedAt - b.claimedAt);
}

/**
 * Moves a claimed file to processed/ or failed/ (with the error beside it). Returns the settled
 * path relative to inbox/, or undefined when the claim is already gone (settled before: a retry).
 */
export async function settle(root: DataRoot, claimed: string, outcome: Outcome, now = Date.now()): Promise<{ settled: string } | undefined> {
  const c = describeClaim(claimed);
  const from = insideInbox(root, CLAIMED, c.dataset, path.basename(claimed));
  if (!(await lstatIfExists(from))) return undefined;
  const dir = await realDir(root, outcome.ok ? PROCESSED : FAILED, c.dataset);
  const target = await freeName(dir, stamp(now), c.filename);
  try {
    await fs.rename(from, target);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  // the move comes first: a file's location is its outcome, the text only explains it
  if (!outcome.ok) await writeFileAtomic(`${target}.error.txt`, `${redactSecrets(outcome.error)}\n`);
  return { settled: path.relative(inboxDir(root), target).split(path.sep).join('/') };
}

function checkDataset(name: string): string {
  if (!isDatasetFolder(name)) {
    throw new BadRequestError(`inbox folder ${JSON.stringify(name)} is not a dataset name (lower-case letter, then lower-case letters, digits or _; not ${RESERVED_FOLDERS.join(' or ')})`);
  }
  return name;
}

function checkFilename(name: string): string {
  if (!isPlainFileName(name)) {
    throw new BadRequestError(`inbox file name ${JSON.stringify(name)} is refused: one path segment, not starting with a dot, at most ${MAX_FILENAME_BYTES} bytes`);
  }
  return name;
}

/** Resolves segments under inbox/ and refuses any result outside it. */
function insideInbox(root: DataRoot, ...segments: string[]): string {
  const inbox = inboxDir(root);
  const resolved = path.resolve(inbox, ...segments);
  if (!resolved.startsWith(inbox + path.sep)) throw new BadRequestError(`path ${JSON.stringify(segments.join('/'))} leaves the inbox`);
  return resolved;
}

/** Makes (or finds) inbox/<segments…>, each level a real directory: a symlink planted there is refused, not followed. */
async function realDir(root: DataRoot, ...segments: string[]): Promise<string> {
  const inbox = inboxDir(root);
  await fs.mkdir(inbox, { recursive: true });
  let dir = inbox;
  for (const segment of segments) {
    dir = insideInbox(root, path.relative(inbox, dir), segment);
    await fs.mkdir(dir).catch((err) => {
      if (!isErrno(err, 'EEXIST')) throw err;
    });
    if (!(await fs.lstat(dir)).isDirectory()) {
      throw new BadRequestError(`inbox/${path.relative(inbox, dir)} is not a directory; symlinks are never followed`);
    }
  }
  return dir;
}

/**
 * Whether inbox/ and inbox/<segments…> exist as real directories (false when one is missing);
 * throws when one is a symlink or another kind of file.
 */
async function realDirOnPath(root: DataRoot, ...segments: string[]): Promise<boolean> {
  const inbox = inboxDir(root);
  for (let i = 0; i <= segments.length; i++) {
    const dir = i === 0 ? inbox : insideInbox(root, ...segments.slice(0, i));
    const st = await lstatIfExists(dir);
    if (!st) return false;
    if (!st.isDirectory()) {
      throw new BadRequestError(`${path.relative(path.dirname(inbox), dir).split(path.sep).join('/')} is not a directory; symlinks are never followed`);
    }
  }
  return true;
}

/** `<stamp>__<file>`, or `<stamp>-2__<file>`… when a settle in the same millisecond took that name. */
async function freeName(dir: string, at: string, filename: string): Promise<string> {
  for (let n = 1; ; n++) {
    const candidate = path.join(dir, `${at}${n === 1 ? '' : `-${n}`}__${filename}`);
    if (!(await lstatIfExists(candidate))) return candidate;
  }
}

/** 20261126T070906123Z: sorts by time and has no ':' (refused by some file shares). */
function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}

async function listDir(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return [];
    throw err;
  }
}

async function lstatIfExists(file: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

/** A client named `<folder>/<file>` in a job: claim it now, or say why not (404 when it is gone). */
export async function claimForJob(root: DataRoot, relative: string): Promise<string> {
  const [dataset, file] = relative.split('/') as [string, string];
  const claimed = await claim(root, { dataset, file });
  if (!claimed) throw new NotFoundError(`inbox/${relative} is not there (already claimed by a watcher or another job?)`);
  return claimed.claimed;
}
