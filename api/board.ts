/**
 * Bull Board at /admin/queues for every declared queue. Browsers reach it with HTTP Basic auth
 * (any user name, an admin key as the password); scripts may use the Bearer header.
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

export function boardMiddleware(producer: Producer): Middleware[] {
  const adapter = new KoaAdapter();
  adapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: QUEUES.map((d) => new BullMQAdapter(producer.queue(d.name), { description: d.description })),
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
    return next();
  };
  return [guard, adapter.registerPlugin() as Middleware];
}
