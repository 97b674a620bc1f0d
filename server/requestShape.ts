import type { Express, RequestHandler } from 'express';
import { OrcheError } from '../providers/errors';

/** JSON nested deeper than this is refused before it is parsed (SPEC §7): no route needs more. */
export const MAX_JSON_DEPTH = 64;

/**
 * express.json's `verify` hook: counts nesting in the raw bytes, strings skipped, in one pass, so a
 * body nested thousands of levels deep never reaches JSON.parse or, later, JSON.stringify (whose
 * recursion overflowed the stack: a 500). Throws an error the error handler maps to 400 too_deep.
 */
export function verifyJsonDepth(_req: unknown, _res: unknown, buf: Buffer): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next byte is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) throw Object.assign(new Error('too deep'), { type: 'entity.too.deep' });
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
}

export function tooDeepError(): OrcheError {
  return new OrcheError(400, 'too_deep', `The request body is nested more than ${MAX_JSON_DEPTH} levels deep`);
}

/**
 * Query parameters are single strings. `?provider[]=kimi` or `?provider=a&provider=b` used to read
 * as "no provider" (so: every provider) on /api/keys/reset; now they are a 400.
 */
export const singleQueryValues: RequestHandler = (req, _res, next) => {
  for (const [name, value] of Object.entries(req.query)) {
    if (typeof value !== 'string' || /[[\]]/.test(name)) {
      throw new OrcheError(400, 'invalid_query', `Query parameter ${JSON.stringify(name.slice(0, 64))} must be given once, as a single value`);
    }
  }
  next();
};

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every route path the app serves and its methods, read from the router (routers mounted at "/"). */
function routeMethods(app: Express): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const path of ([] as string[]).concat(layer.route.path)) {
          const methods = out.get(path) ?? new Set<string>();
          for (const [m, on] of Object.entries(layer.route.methods)) if (on && m !== '_all') methods.add(m.toUpperCase());
          out.set(path, methods);
        }
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}

/**
 * Registered after every route: a known path asked with a method it does not serve is a 405 with
 * `Allow`, not a 404 (HEAD comes with GET; OPTIONS is answered by CORS).
 */
export function methodNotAllowed(app: Express): void {
  for (const [path, methods] of routeMethods(app)) {
    if (methods.has('GET')) methods.add('HEAD');
    const allow = [...methods].sort((a, b) => a.localeCompare(b)).join(', ');
    app.all(path, (req) => {
      throw new OrcheError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${allow}`, { allow: [...methods] }, { Allow: allow });
    });
  }
}
