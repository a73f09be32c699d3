/**
 * How a server command lives and stops. What it starts is registered here and closed in
 * reverse order: on a failed start-up, or on the first SIGTERM/SIGINT. A second signal means
 * "now": exit 1 without waiting.
 */
import type { Logger } from '../shared/logger.ts';

interface Resource {
  what: string;
  close(): Promise<void>;
  /** Synchronous last resort on a forced exit, e.g. killing a child that would outlive us. */
  abandon?(): void;
}

/** Past this after a clean shutdown, whatever still holds the event loop is a leak: exit anyway. */
const EXIT_GRACE_MS = 2_000;

export class Lifecycle {
  private readonly resources: Resource[] = [];

  constructor(private readonly log: Logger) {}

  add(resource: Resource): void {
    this.resources.push(resource);
  }

  /** Closes everything, newest first; returns false if anything failed to close. */
  async closeAll(): Promise<boolean> {
    let ok = true;
    // kept, not removed: a second signal mid-way still abandons whatever is left
    for (const r of [...this.resources].reverse()) {
      try {
        await r.close();
        this.log.debug(`${r.what} stopped`);
      } catch (err) {
        ok = false;
        this.log.error({ err }, `${r.what} did not stop cleanly`);
      }
    }
    this.log.info(ok ? 'stopped' : 'stopped, with errors');
    return ok;
  }

  /** Runs `start`; if it throws, closes what it had started before rethrowing. */
  async start<T>(start: () => Promise<T>): Promise<T> {
    try {
      return await start();
    } catch (err) {
      await this.closeAll();
      throw err;
    }
  }

  /** Resolves with the exit code once a signal has stopped everything. */
  untilSignal(): Promise<number> {
    return new Promise((resolve) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) {
          this.log.warn({ signal }, 'second signal: exiting without waiting');
          for (const r of this.resources) r.abandon?.();
          process.exit(1);
        }
        stopping = true;
        this.log.info({ signal }, 'stopping (send the signal again to exit at once)');
        void this.closeAll().then((ok) => {
          const code = ok ? 0 : 1;
          setTimeout(() => {
            this.log.warn('something still holds the event loop after shutdown; exiting anyway');
            process.exit(code);
          }, EXIT_GRACE_MS).unref();
          resolve(code);
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  }
}
