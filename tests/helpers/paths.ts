/** The repository's root, for tests that read fixtures or start the compiled scripts (dist/). */
import { resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
export const FIXTURES = resolve(ROOT, 'tests', 'fixtures');
