import type { Express, RequestHandler } from 'express';
import { OrcheError } from '../../providers/errors';

/** JSON nested deeper than this is refused before it is parsed (docs/design.md#connections): no route needs more. */
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
  // No query string, nothing to check: Express 5 parses req.query anew at each read (issue 21).
  if (!req.url.includes('?')) return next();
  for (const [name, value] of Object.entries(req.query)) {
    if (typeof value !== 'string' || /[[\]]/.test(name)) {
      throw new OrcheError(400, 'invalid_query', `Query parameter ${JSON.stringify(name.slice(0, 64))} must be given once, as a single value`);
    }
  }
  next();
};

interface Layer {
  route?: { methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  match?(path: string): unknown;
}

/** The route layers of the app (routers mounted at "/" included), each with the path matcher the router uses. */
function routeLayers(app: Express): Layer[] {
  const out: Layer[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) out.push(layer);
      else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}

/** How many paths methodNotAllowed remembers before it starts again. */
const KNOWN_PATHS = 1024;

/**
 * A known path asked with a method it does not serve is a 405 with `Allow`, not a 404 (HEAD comes
 * with GET; OPTIONS is answered by CORS before). Registered before the body is read, so a wrong
 * method is told as such whatever the body; the routes are read from the router on first use, so
 * a route added later gets it too.
 */
export function methodNotAllowed(app: Express): RequestHandler {
  let layers: Layer[] | undefined;
  // The methods of a path, remembered: matching it against every route was ~25 µs a request (issue
  // 21). Bounded, since paths with parameters are many; the routes are fixed once first read.
  const known = new Map<string, Set<string>>();
  const methodsOf = (path: string): Set<string> => {
    let methods = known.get(path);
    if (methods) return methods;
    layers ??= routeLayers(app);
    methods = new Set<string>();
    for (const layer of layers) {
      if (!layer.match!(path)) continue;
      for (const [m, on] of Object.entries(layer.route!.methods)) if (on && m !== '_all') methods.add(m.toUpperCase());
    }
    if (methods.has('GET')) methods.add('HEAD');
    if (known.size >= KNOWN_PATHS) known.clear();
    known.set(path, methods);
    return methods;
  };
  return (req, _res, next) => {
    const methods = methodsOf(req.path);
    if (methods.size === 0) return next();
    if (methods.has(req.method) || req.method === 'OPTIONS') return next();
    const allow = [...methods].sort((a, b) => a.localeCompare(b)).join(', ');
    throw new OrcheError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${allow}`, { allow: [...methods] }, { Allow: allow });
  };
}
