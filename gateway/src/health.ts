/**
 * Health: `/health` and `/health/ready` aggregate the gateway's dependencies.
 *
 *   healthy    200  every configured dependency answers
 *   degraded   200  Redis or PostgreSQL is down: the gateway still serves
 *                   (rate limiter and cache on their fallbacks)
 *   unhealthy  503  upstream-ai is down, or the gateway is draining
 *
 * Each dependency has its own probe (probes/), with its own deadline
 * (≤ 1 s); they run in parallel, and their results are reused for
 * `cacheMs` and shared by concurrent callers, so a flood of health checks
 * costs at most one probe per dependency per `cacheMs`. `/health/live`
 * (server.ts) probes nothing.
 */
import type { ProbeResult, Probe } from './probes/probe.js'

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy'

export interface HealthBody {
  status: HealthStatus
  services: {
    redis: 'ok' | 'down' | 'disabled'
    upstream: 'ok' | 'down'
    db: 'ok' | 'down' | 'disabled'
  }
  /** When the probes behind this answer ran (ISO 8601). */
  checked_at: string
  draining: boolean
  /** Per probed dependency: its latency and, when down, why. */
  details: {
    redis?: ProbeResult
    upstream: ProbeResult
    db?: ProbeResult
  }
}

export interface HealthReport {
  httpStatus: 200 | 503
  body: HealthBody
}

export interface HealthOptions {
  /** upstream-ai's `/health` (probes/upstream.ts). */
  upstream: Probe
  /** The process's Redis (probes/redis.ts); undefined: `disabled` (no REDIS_URL). @default undefined */
  redis?: Probe | undefined
  /** PostgreSQL at DATABASE_URL (probes/postgres.ts); undefined: `disabled`. @default undefined */
  db?: Probe | undefined
  isDraining: () => boolean
  /** Monotonic clock, in ms. */
  now: () => number
  /** Wall clock for `checked_at`. @default () => new Date() */
  wallClock?: () => Date
  /** How long probe results are reused, in ms (AI_GATEWAY_HEALTH_CACHE_MS); 0 still shares one round between concurrent callers. @default 1000 */
  cacheMs?: number
}

export interface Health {
  report: () => Promise<HealthReport>
}

interface Round {
  upstream: ProbeResult
  redis: ProbeResult | undefined
  db: ProbeResult | undefined
  checkedAt: Date
}

const state = (result: ProbeResult): 'ok' | 'down' => result.ok ? 'ok' : 'down'

export function createHealth (options: HealthOptions): Health {
  const cacheMs = options.cacheMs ?? 1000
  const wallClock = options.wallClock ?? (() => new Date())
  let cached: { round: Round; at: number } | undefined
  let inFlight: Promise<Round> | undefined

  const probeAll = async (): Promise<Round> => {
    const [upstream, redis, db] = await Promise.all([options.upstream(), options.redis?.(), options.db?.()])
    return { upstream, redis, db, checkedAt: wallClock() }
  }

  const currentRound = async (): Promise<Round> => {
    if (cached !== undefined && options.now() - cached.at < cacheMs) return cached.round
    inFlight ??= probeAll().then((round) => {
      cached = { round, at: options.now() }
      return round
    }).finally(() => { inFlight = undefined })
    return await inFlight
  }

  return {
    report: async () => {
      const round = await currentRound()
      const draining = options.isDraining()
      const services: HealthBody['services'] = {
        redis: round.redis === undefined ? 'disabled' : state(round.redis),
        upstream: state(round.upstream),
        db: round.db === undefined ? 'disabled' : state(round.db)
      }
      const status: HealthStatus = draining || services.upstream === 'down'
        ? 'unhealthy'
        : services.redis === 'down' || services.db === 'down' ? 'degraded' : 'healthy'
      return {
        httpStatus: status === 'unhealthy' ? 503 : 200,
        body: {
          status,
          services,
          checked_at: round.checkedAt.toISOString(),
          draining,
          details: {
            ...(round.redis === undefined ? {} : { redis: round.redis }),
            upstream: round.upstream,
            ...(round.db === undefined ? {} : { db: round.db })
          }
        }
      }
    }
  }
}
