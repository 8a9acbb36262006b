/**
 * GET /health: whether this instance should receive traffic (unhealthy, 503,
 * once it is draining for shutdown) and which provider it uses.
 * GET /health/live: the process is up and answering.
 * Neither calls the provider: a probe must not spend tokens or rate limit.
 */
import { sendJson } from '../../../common/src/http.js'
import type { Provider } from '../providers/provider.js'
import type { RequestScope } from '../request-scope.js'

export interface HealthDeps {
  provider: Provider
  isDraining: () => boolean
  /** Seconds since the process started. */
  uptimeSeconds: () => number
}

const NO_STORE = { 'cache-control': 'no-store' }

export function handleHealth (deps: HealthDeps, scope: RequestScope): void {
  const draining = deps.isDraining()
  sendJson(scope.res, draining ? 503 : 200, {
    status: draining ? 'unhealthy' : 'healthy',
    provider: deps.provider.name,
    model: deps.provider.defaultModel,
    draining,
    uptime_seconds: deps.uptimeSeconds()
  }, NO_STORE)
}

export function handleLive (scope: RequestScope): void {
  sendJson(scope.res, 200, { status: 'healthy' }, NO_STORE)
}
