import type { Request } from 'express';
import { OrcheError } from '../../providers/errors';
import { ROUTING_FIELDS, routingFieldsIn } from '../../providers/upstream/routing';

/**
 * Client routing is the operator's (docs/design.md#client-routing): OpenRouter's `models`, `route`, `plugins` and `provider`
 * choose other (paid) models or providers, or add billed work such as web search. Refused with 400
 * `routing_field_not_allowed` naming the field unless ORCHE_CLIENT_ROUTING=allow.
 *
 * Called by every chat route before its body is validated. With `allow`, the fields are taken out of
 * the body (the route's schema does not know them) and returned, for the route to send upstream; the
 * dispatcher then runs the request isolated (its answers change no shared state).
 */
export function clientRouting(mode: 'allow' | 'refuse', req: Request): Record<string, unknown> {
  const body = req.body as unknown;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return {};
  const fields = routingFieldsIn(body as Record<string, unknown>);
  if (fields.length === 0) return {};
  if (mode !== 'allow') {
    const field = fields[0];
    throw new OrcheError(
      400,
      'routing_field_not_allowed',
      `"${field}" is not accepted: which models and providers serve a request, and what is billed, is this service's configuration (its operator may set ORCHE_CLIENT_ROUTING=allow)`,
      { field, fields, routing_fields: [...ROUTING_FIELDS] },
    );
  }
  const taken: Record<string, unknown> = {};
  const rest = { ...(body as Record<string, unknown>) };
  for (const f of fields) {
    taken[f] = rest[f];
    delete rest[f];
  }
  req.body = rest;
  return taken;
}
