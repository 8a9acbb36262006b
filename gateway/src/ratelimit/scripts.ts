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

/** Name under which redis-token-limiter.ts defines ADMIT_SCRIPT on the client. */
export const ADMIT_COMMAND = 'aiRateLimitAdmit'
/** Name under which redis-token-limiter.ts defines SETTLE_SCRIPT on the client. */
export const SETTLE_COMMAND = 'aiTokenBudgetSettle'
/** Name under which redis-token-limiter.ts defines TOKEN_STATUS_SCRIPT on the client. */
export const TOKEN_STATUS_COMMAND = 'aiTokenBudgetStatus'

/**
 * The request limit and the token reservation, one atomic round trip (used
 * instead of SLIDING_WINDOW_SCRIPT when token budgets are on). All or
 * nothing: a request refused by either the token budgets or the request
 * limit writes nothing. The token budgets are checked first, so a request
 * that fits neither is refused for its tokens. Same `#!lua` reasoning and
 * Redis clock as SLIDING_WINDOW_SCRIPT. All keys carry the user's `{tag}`,
 * so on a Cluster they share one slot.
 */
export const ADMIT_SCRIPT = `#!lua
-- KEYS[1]  the user's request sorted set ("ai_ratelimit:{<user>}"), as in SLIDING_WINDOW_SCRIPT.
-- KEYS[2]  the user's minute reservations ("ai_tokens:{<user>}:minute"): sorted set,
--          member = reservation id "<score>-<n>", score = its time in microseconds (Redis TIME).
-- KEYS[3]  their tokens ("ai_tokens:{<user>}:minute:tokens"): hash, reservation id -> tokens.
-- KEYS[4]  the user's day ("ai_tokens:{<user>}:day"): hash, "day" = day index
--          (floor(ms since the epoch / day length)), "used" = tokens reserved or settled that day.
-- ARGV[1]  request limit: requests allowed in any request window (0 = no request limit).
-- ARGV[2]  request window in milliseconds (integer >= 1).
-- ARGV[3]  tokens to reserve (integer >= 1).
-- ARGV[4]  minute budget: tokens allowed in any token window (0 = off).
-- ARGV[5]  token window in milliseconds (60000; shorter in tests).
-- ARGV[6]  day budget: tokens allowed per day (0 = off).
-- ARGV[7]  day length in milliseconds (86400000: the UTC calendar day; shorter in tests).
-- Returns  { verdict: 0 allowed, 1 request limit refused, 2 minute budget refused, 3 day budget refused,
--            request remaining (>= 0), request reset ms (1..window; 0 with no request limit),
--            minute used (tokens, after this reservation when allowed), minute reset ms,
--            day used (tokens), day reset ms,
--            retry after ms (> 0 when refused, else 0),
--            reservation id ("" when refused), day index }

local request_key, minute_key, tokens_key, day_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local request_limit = tonumber(ARGV[1])
local request_window_ms = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local minute_limit = tonumber(ARGV[4])
local token_window_ms = tonumber(ARGV[5])
local day_limit = tonumber(ARGV[6])
local day_ms = tonumber(ARGV[7])

local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_ms = math.floor(now_us / 1000)
local function us (value) return string.format('%d', value) end

-- Minute: forget reservations that left the window (score <= now - window), then sum the rest.
local minute_used, minute_reset = 0, 0
local window_us = token_window_ms * 1000
if minute_limit > 0 then
  local expired = redis.call('ZRANGEBYSCORE', minute_key, '-inf', us(now_us - window_us))
  for i = 1, #expired, 500 do
    redis.call('HDEL', tokens_key, unpack(expired, i, math.min(i + 499, #expired)))
  end
  redis.call('ZREMRANGEBYSCORE', minute_key, '-inf', us(now_us - window_us))
  for _, value in ipairs(redis.call('HVALS', tokens_key)) do minute_used = minute_used + tonumber(value) end
end

-- Day: a new day starts at zero.
local day = math.floor(now_ms / day_ms)
local day_used = 0
local day_reset = (day + 1) * day_ms - now_ms
if day_limit > 0 then
  local stored = redis.call('HMGET', day_key, 'day', 'used')
  if tonumber(stored[1]) == day then day_used = tonumber(stored[2]) or 0 end
end

-- Milliseconds until enough of the minute's reservations leave the window for need to fit.
local function minute_wait ()
  local entries = redis.call('ZRANGE', minute_key, 0, -1, 'WITHSCORES')
  local freed = 0
  for i = 1, #entries, 2 do
    freed = freed + (tonumber(redis.call('HGET', tokens_key, entries[i])) or 0)
    if minute_used - freed + need <= minute_limit then
      return math.max(math.ceil((tonumber(entries[i + 1]) + window_us - now_us) / 1000), 1)
    end
  end
  -- Never fits (need > limit): a whole window from now.
  return token_window_ms
end

local function oldest_reset (key, window)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if not oldest[2] then return 0 end
  local reset = math.ceil((tonumber(oldest[2]) + window * 1000 - now_us) / 1000)
  if reset < 1 then reset = 1 end
  if reset > window then reset = window end
  return reset
end

-- Requests: as in SLIDING_WINDOW_SCRIPT.
local request_count = 0
if request_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', request_key, '-inf', us(now_us - request_window_ms * 1000))
  request_count = redis.call('ZCARD', request_key)
end

local verdict, retry_after = 0, 0
if minute_limit > 0 and minute_used + need > minute_limit then
  verdict, retry_after = 2, minute_wait()
elseif day_limit > 0 and day_used + need > day_limit then
  verdict, retry_after = 3, day_reset
elseif request_limit > 0 and request_count >= request_limit then
  verdict = 1
end

local id = ''
if verdict == 0 then
  if request_limit > 0 then
    local same = redis.call('ZCOUNT', request_key, us(now_us), us(now_us))
    redis.call('ZADD', request_key, us(now_us), string.format('%d-%d', now_us, same))
    redis.call('PEXPIRE', request_key, request_window_ms)
    request_count = request_count + 1
  end
  if minute_limit > 0 then
    local same = redis.call('ZCOUNT', minute_key, us(now_us), us(now_us))
    id = string.format('%d-%d', now_us, same)
    redis.call('ZADD', minute_key, us(now_us), id)
    redis.call('HSET', tokens_key, id, need)
    redis.call('PEXPIRE', minute_key, token_window_ms)
    redis.call('PEXPIRE', tokens_key, token_window_ms)
    minute_used = minute_used + need
  else
    id = string.format('%d', now_us)
  end
  if day_limit > 0 then
    day_used = day_used + need
    redis.call('HSET', day_key, 'day', day, 'used', day_used)
    -- Gone when its day ends: the next day starts at zero anyway.
    redis.call('PEXPIREAT', day_key, (day + 1) * day_ms)
  end
end

local request_reset = 0
local request_remaining = 0
if request_limit > 0 then
  request_reset = oldest_reset(request_key, request_window_ms)
  if request_reset == 0 then request_reset = request_window_ms end
  request_remaining = math.max(request_limit - request_count, 0)
  if verdict == 1 then retry_after = request_reset end
end
if minute_limit > 0 then minute_reset = oldest_reset(minute_key, token_window_ms) end

return { verdict, request_remaining, request_reset, minute_used, minute_reset, day_used, day_reset, retry_after, id, day }
`

/**
 * Settles one reservation to the tokens really used (after the answer, off
 * the request path). Each budget is adjusted only while the reservation is
 * still in it: a reservation that already left the minute window, or made
 * on a day that has ended, changes nothing there.
 */
export const SETTLE_SCRIPT = `#!lua
-- KEYS[1]  the user's minute reservations ("ai_tokens:{<user>}:minute"), as in ADMIT_SCRIPT.
-- KEYS[2]  their tokens ("ai_tokens:{<user>}:minute:tokens").
-- KEYS[3]  the user's day ("ai_tokens:{<user>}:day").
-- ARGV[1]  the reservation id (ADMIT_SCRIPT's).
-- ARGV[2]  tokens reserved (integer >= 0).
-- ARGV[3]  tokens really used (integer >= 0).
-- ARGV[4]  the reservation's day index (ADMIT_SCRIPT's; -1: no day budget).
-- Returns  { minute adjusted (1 or 0), day adjusted (1 or 0) }

local minute_key, tokens_key, day_key = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local reserved = tonumber(ARGV[2])
local used = tonumber(ARGV[3])
local day = tonumber(ARGV[4])

local minute_done, day_done = 0, 0
if redis.call('HEXISTS', tokens_key, id) == 1 then
  if used == 0 then
    -- Nothing used: the reservation frees its place in the window at once.
    redis.call('HDEL', tokens_key, id)
    redis.call('ZREM', minute_key, id)
  else
    redis.call('HSET', tokens_key, id, used)
  end
  minute_done = 1
end
if day >= 0 and tonumber(redis.call('HGET', day_key, 'day')) == day then
  local total = tonumber(redis.call('HGET', day_key, 'used')) or 0
  redis.call('HSET', day_key, 'used', math.max(total - reserved + used, 0))
  day_done = 1
end
return { minute_done, day_done }
`

/**
 * The token budgets' state now, for GET /v1/ai/usage: reads only (the
 * `no-writes` flag lets it run on a full Redis or a replica).
 */
export const TOKEN_STATUS_SCRIPT = `#!lua flags=no-writes
-- KEYS[1]  the user's minute reservations ("ai_tokens:{<user>}:minute"), as in ADMIT_SCRIPT.
-- KEYS[2]  their tokens ("ai_tokens:{<user>}:minute:tokens").
-- KEYS[3]  the user's day ("ai_tokens:{<user>}:day").
-- ARGV[1]  token window in milliseconds.
-- ARGV[2]  day length in milliseconds.
-- Returns  { minute used, minute reset ms (0 when nothing is in the window), day used, day reset ms }

local minute_key, tokens_key, day_key = KEYS[1], KEYS[2], KEYS[3]
local window_ms = tonumber(ARGV[1])
local day_ms = tonumber(ARGV[2])

local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now_ms = math.floor(now_us / 1000)

local live = redis.call('ZRANGEBYSCORE', minute_key, string.format('(%d', now_us - window_ms * 1000), '+inf', 'WITHSCORES')
local minute_used, minute_reset = 0, 0
for i = 1, #live, 2 do
  minute_used = minute_used + (tonumber(redis.call('HGET', tokens_key, live[i])) or 0)
end
if live[2] then
  minute_reset = math.max(math.ceil((tonumber(live[2]) + window_ms * 1000 - now_us) / 1000), 1)
end

local day = math.floor(now_ms / day_ms)
local stored = redis.call('HMGET', day_key, 'day', 'used')
local day_used = 0
if tonumber(stored[1]) == day then day_used = tonumber(stored[2]) or 0 end
return { minute_used, minute_reset, day_used, (day + 1) * day_ms - now_ms }
`
