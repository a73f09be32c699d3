/**
 * Bull Board at /admin/queues for every declared queue. Browsers reach it with HTTP Basic auth
 * (any user name, an admin key as the password); scripts may use the Bearer header.
 *
 * Browsers replay cached Basic credentials on any request to the board, including one a foreign
 * page makes them send, so a request that changes something must also prove it comes from the
 * board's own page: its Origin (or, when a browser sends none, its Referer) must be the board's
 * origin. Requests that would put a payload into a queue (add a job, edit a job's data or a
 * scheduler's template) are refused outright: they would skip the Producer's validation and
 * sealing; POST /jobs/:queue and PUT /schedules/:id do it properly.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Context, Middleware, Next } from 'koa';
import { QUEUES } from '../queues/registry.ts';
import type { Producer } from '../queues/producer.ts';
import { allows } from '../shared/auth/key-ring.ts';
import type { AuthState } from './auth.ts';
import { sendProblem } from './problem.ts';

export const BOARD_PATH = '/admin/queues';

export interface BoardOptions {
  /** Every change refused, and the board's UI hides its buttons. @defaultValue false */
  readOnly?: boolean;
}

/** Board API calls that write a job payload, bypassing the Producer. */
const PAYLOAD_WRITES: { method: string; path: RegExp; instead: string }[] = [
  { method: 'POST', path: /\/api\/queues\/[^/]+\/add\/?$/i, instead: 'POST /jobs/:queue' },
  { method: 'PATCH', path: /\/api\/queues\/[^/]+\/[^/]+\/update-data\/?$/i, instead: 'a new job via POST /jobs/:queue' },
  { method: 'PATCH', path: /\/api\/queues\/[^/]+\/job-schedulers\/[^/]+\/?$/i, instead: 'PUT /schedules/:id' },
];

const SAFE_METHODS = new Set(['GET', 'HEAD']);

export function boardMiddleware(producer: Producer, opts: BoardOptions = {}): Middleware[] {
  const readOnly = opts.readOnly ?? false;
  const adapter = new KoaAdapter();
  adapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: QUEUES.map((d) => new BullMQAdapter(producer.queue(d.name), { description: d.description, readOnlyMode: readOnly })),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'Lakehouse jobs' } },
  });
  const guard = async (ctx: Context, next: Next) => {
    if (ctx.path !== BOARD_PATH && !ctx.path.startsWith(`${BOARD_PATH}/`)) return next();
    const role = (ctx.state as AuthState).role;
    if (!role || !allows(role, 'admin')) {
      ctx.set('WWW-Authenticate', 'Basic realm="Lakehouse Bull Board", charset="UTF-8"');
      sendProblem(ctx, 401, 'Unauthorized', 'Bull Board needs an admin key: HTTP Basic with the key as the password');
      return;
    }
    if (SAFE_METHODS.has(ctx.method)) return next();
    if (readOnly) return sendProblem(ctx, 403, 'Forbidden', 'Bull Board is read-only here (LAKEHOUSE_BOARD_READONLY=true)');
    const refused = crossSite(ctx);
    if (refused) return sendProblem(ctx, 403, 'Forbidden', `Bull Board changes must come from the board's own page: ${refused}`);
    const write = PAYLOAD_WRITES.find((w) => w.method === ctx.method && w.path.test(ctx.path));
    if (write) {
      return sendProblem(ctx, 403, 'Forbidden', `Bull Board cannot write job payloads (they would skip validation and sealing); use ${write.instead}`);
    }
    return next();
  };
  return [guard, adapter.registerPlugin() as Middleware];
}

/** Why the request is not provably same-origin, or undefined when it is. */
export function crossSite(ctx: Context): string | undefined {
  const own = `${ctx.protocol}://${ctx.host}`.toLowerCase();
  const origin = ctx.get('origin');
  if (origin) return origin.toLowerCase() === own ? undefined : `Origin ${JSON.stringify(origin)} is not ${own}`;
  const referer = ctx.get('referer');
  if (!referer) return 'neither Origin nor Referer was sent';
  let from: string;
  try {
    from = new URL(referer).origin.toLowerCase();
  } catch {
    return 'the Referer is not a URL';
  }
  return from === own ? undefined : `the Referer is not on ${own}`;
}
