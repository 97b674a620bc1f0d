/**
 * Key material out of upstream text (docs/design.md#key-material-and-relayed-text). An upstream — hostile, or only careless — may repeat
 * the Authorization header anywhere: an error message, `metadata.raw`, a stream chunk, even a 200
 * body. Every byte an upstream sends passes the masker once, where it enters orche
 * (OpenRouterClient), so responses, stream events, errors and log lines all see masked text.
 */

export const REDACTED = '[REDACTED]';

/** An OpenRouter key (`sk-or-v1-…`) or any other `sk-…` key. */
const SK_KEY = String.raw`\bsk-[A-Za-z0-9_-]{16,}`;
/**
 * Key-shaped text, the one pattern answers and log lines are masked by: `sk-…` keys, and a Bearer
 * credential of 16+ characters (not the words "Bearer tokens" in an answer).
 */
const KEY_SHAPED = new RegExp(`${SK_KEY}|\\bBearer\\s+[A-Za-z0-9._~+/=-]{16,}`, 'gi');
/** Released text that ends inside a key (or its mask): the run goes on in the next piece. */
const ENDS_IN_KEY = new RegExp(`(${SK_KEY}|\\[REDACTED\\])$`, 'i');
/**
 * Characters a key or token is made of, and the backslash of a JSON escape that may spell one: a
 * run of them may be a key cut by a chunk boundary.
 */
const TOKEN_CHAR = /[A-Za-z0-9._~+/=\\-]/;
/** Beyond this a run is not a key; it is released (masked) so memory stays bounded. */
const MAX_HOLD = 64 * 1024;
/**
 * A JSON escape (`\u0073`, `\/`) not itself escaped (an even run of backslashes before it). JSON
 * allows one for any character, so `\u0073k-or-v1-…` is text that does not contain the key and JSON
 * that parses to it.
 */
const JSON_ESCAPE = /(?<!\\)((?:\\\\)*)\\(?:u([0-9a-fA-F]{4})|\/)/g;
/** Characters that never need an escape inside a JSON string: spelling them out keeps the JSON the same value. */
const PLAIN_CHAR = /^[A-Za-z0-9._~+/= -]$/;

/** Spells out JSON escapes of plain characters, so key material written with them is seen by the masker. */
function unescapePlain(text: string): string {
  if (!text.includes('\\')) return text;
  return text.replace(JSON_ESCAPE, (m, lead: string, hex: string | undefined) => {
    const c = hex === undefined ? '/' : String.fromCharCode(parseInt(hex, 16));
    return PLAIN_CHAR.test(c) ? lead + c : m;
  });
}


/** Replaces the given keys and anything key-shaped, also when spelled with JSON escapes; the replacement keeps JSON strings valid. */
export function maskSecrets(text: string, keys: readonly string[] = []): string {
  let out = unescapePlain(text);
  for (const key of keys) if (key.length >= 8 && out.includes(key)) out = out.split(key).join(REDACTED);
  return maskKeyShaped(out);
}

/** Replaces anything key-shaped (`KEY_SHAPED`); the logger masks every line with it too. */
export function maskKeyShaped(text: string): string {
  return text.replace(KEY_SHAPED, (m) => (/^bearer/i.test(m) ? `Bearer ${REDACTED}` : REDACTED));
}

/**
 * Masks a text that arrives in pieces. A key may be cut between two pieces, so the trailing run of
 * token characters (and a `Bearer ` before it) is held back until the next piece shows where it
 * ends. Each character is scanned a bounded number of times: the work is linear in the input.
 */
export class SecretMasker {
  private held = '';
  /** The last text released ended inside a key-shaped run: the rest of that run is masked too. */
  private inSecret = false;

  constructor(private readonly keys: readonly string[] = []) {}

  /** Feeds a piece; returns the text that is safe to release now. */
  push(piece: string): string {
    let cut = piece.length;
    while (cut > 0 && TOKEN_CHAR.test(piece[cut - 1])) cut--;
    if (cut === 0) {
      this.held += piece;
      if (this.held.length <= MAX_HOLD) return '';
      const out = this.release(this.held.length);
      // The run goes on in the next piece: if it is key material, so is its continuation.
      if (ENDS_IN_KEY.test(out)) this.inSecret = true;
      return out;
    }
    const text = this.held + piece;
    let at = this.held.length + cut;
    // `Bearer ` just before the run belongs to it.
    const before = /Bearer\s+$/i.exec(text.slice(Math.max(0, at - 24), at));
    if (before) at -= before[0].length;
    return this.release(at, text);
  }

  /** The input ended: everything left, masked. */
  end(): string {
    return this.release(this.held.length);
  }

  private release(at: number, text = this.held): string {
    let out = text.slice(0, at);
    this.held = text.slice(at);
    if (this.inSecret) {
      const run = /^[A-Za-z0-9._~+/=\\-]*/.exec(out)![0];
      if (run.length < out.length) this.inSecret = false;
      out = (run ? REDACTED : '') + out.slice(run.length);
    }
    return maskSecrets(out, this.keys);
  }
}
