/**
 * Polls the inbox, claims quiet files and hands each claim to `enqueue`. Any number of watchers
 * (processes, hosts) may share one inbox: claims are exclusive (inbox.ts), and a claim's job id is
 * derived from its name, so enqueuing one claim twice yields one job.
 *
 * A watcher that dies between claim and enqueue leaves a claim without a job; every watcher's
 * sweep enqueues claims older than `reclaimAfterMs` once more (a no-op for those that have their
 * job), and its own failed enqueues on every poll. Polls never overlap.
 */
import type { Logger } from '../logger.ts';
import type { DataRoot } from '../storage/data-root.ts';
import { claim, describeClaim, listClaims, QUIET_MS, scanInbox, type Claim } from './inbox.ts';

export interface InboxJob {
  dataset: string;
  /** Path relative to inbox/: `.claimed/<dataset>/<uuid>__<file>`; the job settles it when done. */
  claimed: string;
  /** The name the file was dropped with. */
  filename: string;
  /** Deterministic per claim: pass it as the BullMQ job id so a repeated enqueue dedupes. */
  jobId: string;
}

export interface InboxWatcherOptions {
  root: DataRoot;
  /** LAKEHOUSE_INBOX_POLL_MS */
  pollMs: number;
  enqueue: (job: InboxJob) => Promise<void>;
  log: Logger;
  /** How long a file's modification time must lie back before it is claimed. @defaultValue 1000 */
  quietMs?: number;
  /** A claim older than this is enqueued again by any watcher, in case its own watcher died. @defaultValue 60000 */
  reclaimAfterMs?: number;
}

export interface InboxWatcher {
  /** Lets a poll in progress finish (it stops between files), then polls no more. */
  stop(): Promise<void>;
}

/** What this watcher knows of claims still in `.claimed/`: enqueued, or claimed here with the enqueue failed. */
type Known = Map<string, 'enqueued' | 'retry'>;

export function startInboxWatcher(opts: InboxWatcherOptions): InboxWatcher {
  const known: Known = new Map();
  const refused = new Set<string>();
  // a planted symlink is reported once per watcher, not on every poll
  const onRefused = (where: string, reason: string) => {
    if (refused.has(where)) return;
    refused.add(where);
    opts.log.warn({ path: where, reason }, 'inbox entry refused');
  };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let polling: Promise<void> = Promise.resolve();

  const poll = async () => {
    try {
      await claimQuietFiles(opts, known, () => stopped, onRefused);
      if (!stopped) await sweepClaims(opts, known);
    } catch (err) {
      opts.log.warn({ err }, 'inbox poll failed; trying again on the next one');
    }
  };
  const loop = () => {
    polling = poll().finally(() => {
      if (!stopped) timer = setTimeout(loop, opts.pollMs).unref();
    });
  };
  loop();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await polling;
    },
  };
}

async function claimQuietFiles(opts: InboxWatcherOptions, known: Known, stopped: () => boolean, onRefused: (where: string, reason: string) => void): Promise<void> {
  for (const entry of await scanInbox(opts.root, { quietMs: opts.quietMs ?? QUIET_MS, onRefused })) {
    if (stopped()) return;
    let claimed: { claimed: string } | undefined;
    try {
      claimed = await claim(opts.root, entry);
    } catch (err) {
      opts.log.warn({ err, ...entry }, 'inbox file not claimed');
      continue;
    }
    if (claimed) await submit(opts, known, describeClaim(claimed.claimed));
  }
}

async function sweepClaims(opts: InboxWatcherOptions, known: Known): Promise<void> {
  const claims = await listClaims(opts.root);
  const present = new Set(claims.map((c) => c.claimed));
  for (const rel of known.keys()) if (!present.has(rel)) known.delete(rel); // settled: forget
  const reclaimBefore = Date.now() - (opts.reclaimAfterMs ?? 60_000);
  for (const c of claims) {
    const state = known.get(c.claimed);
    if (state === 'retry' || (state === undefined && c.claimedAt < reclaimBefore)) await submit(opts, known, c);
  }
}

async function submit(opts: InboxWatcherOptions, known: Known, c: Claim): Promise<void> {
  try {
    await opts.enqueue({ dataset: c.dataset, claimed: c.claimed, filename: c.filename, jobId: c.jobId });
    known.set(c.claimed, 'enqueued');
    opts.log.info({ dataset: c.dataset, file: c.filename, jobId: c.jobId }, 'inbox file enqueued');
  } catch (err) {
    known.set(c.claimed, 'retry');
    opts.log.warn({ err, claimed: c.claimed }, 'inbox enqueue failed; retrying on the next poll');
  }
}
