/**
 * How many long-lived streams (job event SSE) each API key holds open in this process. A key at
 * its cap gets 429 until one of its streams ends: an event stream pins a socket and a listener,
 * so one client must not be able to hold thousands.
 */
import { HttpProblem } from './problem.ts';

export class StreamQuota {
  private readonly open = new Map<string, number>();

  constructor(private readonly perKey: number) {}

  /** Takes a slot for `who` or throws 429; the returned release is safe to call more than once. */
  acquire(who: string): () => void {
    const n = this.open.get(who) ?? 0;
    if (n >= this.perKey) {
      throw new HttpProblem(
        429,
        'Too Many Requests',
        `this key already has ${n} open event streams (LAKEHOUSE_SSE_MAX_STREAMS_PER_KEY=${this.perKey}); close one first`,
        undefined,
        { 'Retry-After': '5' },
      );
    }
    this.open.set(who, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(who) ?? 1) - 1;
      if (left <= 0) this.open.delete(who);
      else this.open.set(who, left);
    };
  }

  /** Streams open across every key (for tests and metrics). */
  total(): number {
    let n = 0;
    for (const v of this.open.values()) n += v;
    return n;
  }
}
