import type { ProviderRuntime } from '../keys/keyPool';

/**
 * OpenRouter request fields that choose other models or providers, or add billed work (docs/design.md#client-routing
 * "Client routing"): `models` (fallback models), `route`, `plugins` (web search…), `provider`
 * (provider order, only, ignore…). Which model is called and what is billed is the operator's choice.
 */
export const ROUTING_FIELDS = ['models', 'route', 'plugins', 'provider'] as const;
export type RoutingField = (typeof ROUTING_FIELDS)[number];

/**
 * The routing fields a body carries (a field set to anything, null included). A `provider` that is not
 * an object is not OpenRouter's routing object: on /api/chat it is orche's own field, the provider ID,
 * which its schema checks (a number there is a 400 invalid_request naming it).
 */
export function routingFieldsIn(body: Record<string, unknown>): RoutingField[] {
  return ROUTING_FIELDS.filter((f) => Object.prototype.hasOwnProperty.call(body, f) && body[f] !== undefined && !(f === 'provider' && (typeof body[f] !== 'object' || body[f] === null)));
}

/**
 * The body one upstream call sends: the request's fields with the provider's model, and the
 * operator's provider preferences (PROVIDER_X_ROUTING) unless the request carries its own `provider`
 * (only possible with ORCHE_CLIENT_ROUTING=allow).
 */
export function upstreamRequest(body: Record<string, unknown>, provider: ProviderRuntime): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body, model: provider.config.model };
  if (routingFieldsIn(out).includes('provider')) return out;
  if (provider.config.routing) out.provider = provider.config.routing;
  else if ('provider' in out) delete out.provider;
  return out;
}
