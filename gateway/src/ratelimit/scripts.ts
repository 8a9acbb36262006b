/**
 * Lua scripts, each an exported string opening with a comment per KEYS[n] /
 * ARGV[n] and its unit. They run through ioredis `defineCommand`, which sends
 * EVALSHA and reloads the script (EVAL) on a NOSCRIPT reply.
 */

/** Name under which redis-limiter.ts defines SLIDING_WINDOW_SCRIPT on the client. */
export const SLIDING_WINDOW_COMMAND = 'aiRateLimitSlidingWindow'

/**
 * Sliding-window log, one atomic round trip. Time is Redis's own (`TIME`), so
 * gateway replicas with skewed clocks agree; Redis ≥ 7 replicates a script's
 * effects, so calling TIME before writing is allowed.
 *
 * The `#!lua` shebang (Redis ≥ 7) makes Redis check the script as a whole
 * before running it: over `maxmemory` (noeviction) or on a read-only replica
 * it is refused up front, with no partial effect. Without it, Redis would let
 * the ZADD through once the script had written (ZREMRANGEBYSCORE), growing a
 * full Redis.
 */
export const SLIDING_WINDOW_SCRIPT = `#!lua
-- KEYS[1]  one user's sorted set ("ai_ratelimit:{<user>}"): one member per counted request,
--          score = the request's time in microseconds (Redis TIME),
--          member = "<score>-<n>", n = requests already stored at that same microsecond.
-- ARGV[1]  limit: requests allowed in any window (integer >= 1).
-- ARGV[2]  window length in milliseconds (integer >= 1).
-- Returns  { allowed (1 or 0),
--            remaining: requests still allowed in the window after this one (>= 0),
--            reset: milliseconds until the oldest counted request leaves the window (1..window) }
-- A denied request writes nothing. The key expires one window after the newest counted request.

local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local window_us = window_ms * 1000

local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- 1. Forget requests that left the window: score <= now - window.
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now_us - window_us))
-- 2. Count the rest.
local count = redis.call('ZCARD', key)
local allowed = 0
-- 3. Count this request only if there is room.
if count < limit then
  -- Members stored at this very microsecond are exactly "<now>-0" .. "<now>-(n-1)"
  -- (step 1 removes a score's members all together), so "<now>-n" is new.
  local same = redis.call('ZCOUNT', key, string.format('%d', now_us), string.format('%d', now_us))
  redis.call('ZADD', key, string.format('%d', now_us), string.format('%d-%d', now_us, same))
  redis.call('PEXPIRE', key, window_ms)
  count = count + 1
  allowed = 1
end

-- 4. When does the oldest counted request leave the window?
local reset_ms = window_ms
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then
  reset_ms = math.ceil((tonumber(oldest[2]) + window_us - now_us) / 1000)
  if reset_ms < 1 then reset_ms = 1 end
  if reset_ms > window_ms then reset_ms = window_ms end
end

local remaining = limit - count
if remaining < 0 then remaining = 0 end
return { allowed, remaining, reset_ms }
`
