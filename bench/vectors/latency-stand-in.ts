/**
 * A GPU embedding server as the scale-out section needs it: test/helpers/llm-stand-in.ts (a real
 * OpenAI-/Ollama-compatible HTTP server on 127.0.0.1) scripted so that every request waits the
 * same fixed time before its answer, whatever the batch size. Requests are answered concurrently
 * (each waits on its own timer), i.e. a server with capacity to spare: what limits throughput is
 * the client side, which is what the section measures.
 *
 * The stand-in's script is a queue of replies, so `arm(n)` queues n delayed replies before a run
 * and `consumed()` checks afterwards that no request went past the script (it would have been
 * answered at once, and the run would look faster than it was).
 */
import { startLlmStandIn, type LlmStandIn } from '../../test/helpers/llm-stand-in.ts';

export interface LatencyStandIn {
  url: string;
  latencyMs: number;
  dims: number;
  /** Clears the record and queues `n` replies that each wait `latencyMs`. */
  arm(n: number): void;
  /** Requests since `arm`, their mean batch size; throws when more came than were armed. */
  consumed(): { requests: number; meanBatch: number };
  close(): Promise<void>;
}

export async function startLatencyStandIn(dims: number, latencyMs: number): Promise<LatencyStandIn> {
  const standIn: LlmStandIn = await startLlmStandIn({ dims });
  let armed = 0;
  return {
    url: standIn.url,
    latencyMs,
    dims,
    arm(n) {
      standIn.reset();
      standIn.script(...Array.from({ length: n }, () => ({ delayMs: latencyMs })));
      armed = n;
    },
    consumed() {
      const requests = standIn.requests.length;
      if (requests > armed) throw new Error(`the stand-in got ${requests} requests but only ${armed} were armed with latency`);
      const sizes = standIn.requests.map((r) => (Array.isArray(r.body?.input) ? r.body.input.length : 1));
      return { requests, meanBatch: sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length) };
    },
    close: () => standIn.close(),
  };
}
