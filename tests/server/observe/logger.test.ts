/** Log lines mask every key shape an answer masks (providers/upstream/mask.ts): a log never carries more. */
import { createLogger } from '../../../server/observe/logger';
import { maskSecrets } from '../../../providers/upstream/mask';
import { LogCapture } from '../../helpers/stack';

function logged(text: string): string {
  const logs = new LogCapture();
  createLogger({ level: 'info', format: 'json', stream: logs }).warn(`upstream said: ${text}`, { detail: text });
  return logs.lines.join('\n');
}

test.each([
  ['a plain sk-… key (not OpenRouter’s sk-or-)', 'sk-proj-Abcdefghijklmnop0123456789', 'Abcdefghijklmnop'],
  ['an OpenRouter key', 'sk-or-v1-0123456789abcdef0123456789abcdef', '0123456789abcdef'],
  ['a Bearer credential', 'Bearer tok_0123456789abcdefghij', '0123456789abcdefghij'],
])('%s is masked in the message and in every field', (_name, text, secret) => {
  const line = logged(text);
  expect(line).not.toContain(secret);
  expect(maskSecrets(text)).not.toContain(secret);
});
