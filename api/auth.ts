/**
 * Who is calling: `Authorization: Bearer <key>` → a role on ctx.state. Routes then state the
 * role they need (requireRole). Bull Board, opened from a browser, also accepts HTTP Basic with
 * an admin key as the password.
 */
import type { Context, Next } from 'koa';
import type { Role } from '../shared/config.ts';
import { allows, type KeyRing } from '../shared/auth/key-ring.ts';
import { auditIdentity } from '../shared/audit/query-log.ts';
import { HttpProblem } from './problem.ts';

/** The authenticated caller of a route that required a role. */
export function caller(ctx: Context): { role: Role; who: string } {
  const { role, who } = ctx.state as AuthState;
  return { role: role!, who: who! };
}

export interface AuthState {
  role?: Role;
  /** Who, for the audit log: a short hash of the key plus the role, never the key. */
  who?: string;
}

export function presentedKey(header: string | undefined): { scheme: 'bearer' | 'basic'; key: string } | undefined {
  if (!header) return undefined;
  const [scheme, value] = header.split(' ', 2) as [string, string | undefined];
  if (!value) return undefined;
  if (scheme.toLowerCase() === 'bearer') return { scheme: 'bearer', key: value.trim() };
  if (scheme.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : { scheme: 'basic', key: decoded.slice(colon + 1) };
  }
  return undefined;
}

export function authenticate(keys: KeyRing) {
  return async function identify(ctx: Context, next: Next): Promise<void> {
    const presented = presentedKey(ctx.get('authorization') || undefined);
    const role = presented && keys.roleOf(presented.key);
    if (presented && role) Object.assign(ctx.state as AuthState, { role, who: auditIdentity(presented.key, role) });
    await next();
  };
}

export function requireRole(ctx: Context, needed: Role | 'public'): void {
  if (needed === 'public') return;
  const role = (ctx.state as AuthState).role;
  if (!role) {
    throw new HttpProblem(401, 'Unauthorized', 'a valid API key is required: Authorization: Bearer <key>', undefined, {
      'WWW-Authenticate': 'Bearer',
    });
  }
  if (!allows(role, needed)) throw new HttpProblem(403, 'Forbidden', `this needs the ${needed} role; your key has ${role}`);
}
