/**
 * A thin fetch wrapper for the client commands: adds the key, turns an unreachable API into a
 * message that says what to check, and a problem+json answer into an ApiError (exit 1).
 */
import { CliError } from './cli-errors.ts';
import type { ClientConfig } from './client-config.ts';

export class ApiError extends Error {
  override name = 'ApiError';

  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`error ${status}: ${detail}`);
  }
}

export class ApiClient {
  constructor(private readonly config: ClientConfig) {}

  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.config.key) headers.set('authorization', `Bearer ${this.config.key}`);
    let res: Response;
    try {
      res = await fetch(this.config.baseUrl + path, { ...init, headers });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach the API at ${this.config.baseUrl} (${cause?.code ?? cause?.message ?? (err as Error).message}). ` +
          'Is `lakehouse up` or `lakehouse api` running? Otherwise pass --url or set LAKEHOUSE_API_URL.',
      );
    }
    if (!res.ok) throw await this.apiError(res);
    return res;
  }

  async getJson<T>(path: string): Promise<T> {
    return (await this.fetch(path, { headers: { accept: 'application/json' } })).json() as Promise<T>;
  }

  async postJson<T>(path: string, body: unknown): Promise<T> {
    const res = await this.fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    });
    return res.json() as Promise<T>;
  }

  private async apiError(res: Response): Promise<ApiError> {
    const text = await res.text().catch(() => '');
    let detail = text.trim() || res.statusText;
    try {
      const problem = JSON.parse(text) as { detail?: unknown };
      if (typeof problem.detail === 'string') detail = problem.detail;
    } catch {
      // not problem+json (a proxy's page, say): show the text as it came
    }
    if (res.status === 401) detail += ` (key: ${this.config.keySource})`;
    return new ApiError(res.status, detail);
  }
}
