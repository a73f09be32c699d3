/**
 * Who is calling: `Authorization: Bearer <key>` → a role on ctx.state. Routes then state the
 * role they need (requireRole). Bull Board, opened from a browser, also accepts HTTP Basic with
 * an admin key as the password.
 */
import type { Context, Next } from 'koa';
import type { Role } from '../shared/config.ts';
import { allows, type KeyRing } from '../shared/auth/key-ring.ts';
import { HttpProblem } from './problem.ts';

export interface AuthState {
  role?: Role;
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
    if (presented) (ctx.state as AuthState).role = keys.roleOf(presented.key);
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
