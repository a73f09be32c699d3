/**
 * Routes are declared with their zod schemas once; the same declaration validates requests,
 * checks the caller's role and generates GET /openapi.json, so the document cannot drift from
 * the code.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import type { Role } from '../shared/config.ts';
import { requireRole } from './auth.ts';
import { readJsonBody, type JsonBodyLimits } from './json-body.ts';
import { fromZod, problemSchema } from './problem.ts';

type Method = 'get' | 'post' | 'put' | 'delete';

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** @defaultValue 'application/json' */
  contentType?: string;
}

export interface RouteSpec<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: Method;
  path: string;
  summary: string;
  tag: string;
  role: Role | 'public';
  params?: P;
  query?: Q;
  body?: B;
  /** A body that is not JSON (uploads): documented, not parsed. */
  rawBody?: { contentType: string; description: string };
  /** @defaultValue the table's `maxBytes` (LAKEHOUSE_JSON_BODY_MAX_BYTES) */
  bodyLimit?: number;
  /** Left out of the OpenAPI document (catch-all routes that only answer errors). @defaultValue false */
  hidden?: boolean;
  responses: Record<number, ResponseSpec>;
}

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

type Handler<P, Q, B> = (ctx: Context, input: RouteInput<P, Q, B>) => Promise<void>;

const MiB = 1024 * 1024;

export class RouteTable {
  readonly specs: RouteSpec<z.ZodType, z.ZodType, z.ZodType>[] = [];
  readonly router = new Router();

  /** @param body JSON body bounds. @defaultValue 1 MiB within 30 s (config.http's defaults) */
  constructor(private readonly body: JsonBodyLimits = { maxBytes: MiB, timeoutMs: 30_000 }) {}

  add<P extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined, B extends z.ZodType = z.ZodUndefined>(
    spec: RouteSpec<P, Q, B>,
    handler: Handler<z.output<P>, z.output<Q>, z.output<B>>,
  ): void {
    if (!spec.hidden) this.specs.push(spec as unknown as RouteSpec<z.ZodType, z.ZodType, z.ZodType>);
    this.router[spec.method](spec.path, async (ctx) => {
      requireRole(ctx, spec.role);
      const params = parse(spec.params, ctx.params, 'params');
      const query = parse(spec.query, ctx.query, 'query');
      const body = spec.body ? parse(spec.body, await readJsonBody(ctx, { ...this.body, maxBytes: spec.bodyLimit ?? this.body.maxBytes }), 'body') : undefined;
      await handler(ctx, { params, query, body } as RouteInput<z.output<P>, z.output<Q>, z.output<B>>);
    });
  }

  openapi(info: { title: string; version: string; description: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const spec of this.specs) {
      const path = spec.path.replace(/:([A-Za-z_]+)/g, '{$1}');
      (paths[path] ??= {})[spec.method] = operation(spec);
    }
    return {
      openapi: '3.1.0',
      info,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } },
        schemas: { Problem: jsonSchema(problemSchema) },
      },
      security: [{ bearer: [] }],
      paths,
    };
  }
}

function parse<T extends z.ZodType | undefined>(schema: T, value: unknown, where: string): unknown {
  if (!schema) return undefined;
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw fromZod(parsed.error, where);
  return parsed.data;
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): unknown[] {
  if (!schema) return [];
  const js = jsonSchema(schema, 'input') as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (js.required ?? []).includes(name),
    schema: s,
    ...(typeof s['description'] === 'string' ? { description: s['description'] } : {}),
  }));
}

function operation(spec: RouteSpec<z.ZodType, z.ZodType, z.ZodType>): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const [status, r] of Object.entries(spec.responses)) {
    const type = r.contentType ?? 'application/json';
    responses[status] = { description: r.description, ...(r.schema ? { content: { [type]: { schema: jsonSchema(r.schema) } } } : {}) };
  }
  responses['default'] = { description: 'error', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
  const requestBody = spec.body
    ? { required: true, content: { 'application/json': { schema: jsonSchema(spec.body, 'input') } } }
    : spec.rawBody
      ? { required: true, description: spec.rawBody.description, content: { [spec.rawBody.contentType]: { schema: { type: 'string', format: 'binary' } } } }
      : undefined;
  return {
    summary: spec.summary,
    tags: [spec.tag],
    operationId: `${spec.method}${spec.path.replace(/[/:]+(\w)/g, (_m, c: string) => c.toUpperCase()).replace(/\W/g, '')}`,
    ...(spec.role === 'public' ? { security: [] } : { 'x-required-role': spec.role }),
    parameters: [...parameters(spec.params, 'path'), ...parameters(spec.query, 'query')],
    ...(requestBody ? { requestBody } : {}),
    responses,
  };
}
