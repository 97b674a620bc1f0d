import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Router } from 'express';

/**
 * The page lives in server/observe/dashboard/index.html. tsc does not copy it to dist/, so it is read from
 * the source tree: beside this file (ts-node, jest) or two levels up from dist/server.
 */
function readPage(): string {
  const candidates = [resolve(__dirname, 'dashboard/index.html'), resolve(__dirname, '../../../server/observe/dashboard/index.html')];
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new Error(`dashboard page not found; looked in ${candidates.join(', ')}`);
  return readFileSync(file, 'utf8');
}

export function dashboardRoutes(r: Router = Router()): Router {
  const page = readPage();
  r.get('/dashboard', (_req, res) => {
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    // Inline script and style only; nothing from another origin.
    res.setHeader('Content-Security-Policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:");
    res.send(page);
  });
  return r;
}
