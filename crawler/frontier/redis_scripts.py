"""Every Lua script of the Redis frontier, in one place.

Each script works on ONE partition (all its keys share the hash tag {JOB/P}), so it is atomic
and Cluster-safe, and a lease or an ack of any batch size is one EVALSHA. Scripts read the
clock with TIME: every machine of a crawl then agrees on lease deadlines and host delays.

Task rows (`tasks` hash) are "attempts|score|host|" followed by the msgpack body; the scripts
never decode msgpack (fakeredis has no cmsgpack), they only split that small header, and COMMIT
reads (and rewrites) the few bytes of the body's depth field (`depth_at`). A final
(skipped/failed/dead) row is "code|attempts|host|reason-length|reason" followed by the body.

Per-host state `h:HOST`: i = leased now, n = earliest next start (ms), d = robots Crawl-delay
(ms), b = current 429/503 backoff (ms). A host is in `ready` exactly when its queue is not
empty and i < limit; its score is n, so `ZRANGEBYSCORE ready -inf now` lists the hosts that
may start a request now and a waiting host costs the others nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .redis_keys import BLOOM, HOST, QUEUE

__all__ = [
    "CALL_MEMORY_MS",
    "COMMIT",
    "JOB_LOST_CODE",
    "LEASE",
    "RECOVER",
    "RENEW",
    "SCRIPTS",
    "SET_DELAY",
    "Script",
]

# The error code a script answers with when its partition no longer holds the job (see
# `job_lost` in the prelude); redis_backend turns it into FrontierJobLost.
JOB_LOST_CODE = "CRAWLJOBLOST"
# Suffix of the keys that remember what a LEASE or COMMIT call did, by call id.
CALL = "call:"
# How long they are kept. redis-py resends a command whose connection dropped within its
# retries (about 5.5 s when connections are refused); past this, a resent call runs again,
# which is safe, only costlier (a lease stranded until its deadline, links counted twice as
# duplicates). A lease keeps 16 bytes per task for this long, an ack batch a few bytes.
CALL_MEMORY_MS = 20_000


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


_PRELUDE = (
    r"""
local P, JOB, CALL = ARGV[1], ARGV[2], ARGV[3]
local K_READY, K_LEASES, K_DELAYED, K_TASKS, K_SEEN = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_STATS, K_FINAL, K_META, K_BACKLOG, K_WORKERS = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local QUEUE, HOST, BLOOM = '@QUEUE@', '@HOST@', '@BLOOM@'

-- The job's incarnation is in every partition's meta (`job`), written when the job was created
-- or joined. A partition without it (or with another) was wiped under us: a Redis restarted
-- without persistence, a FLUSHALL. Carrying on would find nothing queued and call the job
-- finished, or rebuild a partial job from the links of pages in flight. JOB '' skips the
-- check (a frontier that cleared the job itself).
local function job_lost()
  if JOB ~= '' and redis.call('HGET', K_META, 'job') ~= JOB then
    return redis.error_reply('@LOST@ partition ' .. P .. ' no longer holds this job')
  end
  return nil
end

-- What a call did, kept for a while under its id: redis-py sends a command again when the
-- connection drops, and a reply lost after the script ran must not lease or count twice.
local function call_key()
  if CALL == '' then return nil end
  return P .. '@CALL@' .. CALL
end
local function remember(value)
  local key = call_key()
  if key then redis.call('SET', key, value, 'PX', @CALL_MS@) end
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(v)
  if v then return tonumber(v) end
  return 0
end

local counts = {}
local function count(name, delta)
  counts[name] = (counts[name] or 0) + delta
end
local function flush_counts()
  for name, delta in pairs(counts) do
    if delta ~= 0 then redis.call('HINCRBY', K_STATS, name, delta) end
  end
end

-- "attempts|score|host|body": attempts, score (string, kept exact), host, body position
local function parse(v)
  local a, s, h, pos = string.match(v, '^(%d+)|([^|]*)|([^|]*)|()')
  return tonumber(a), s, h, pos
end

local function backlog(host, delta)
  if redis.call('HINCRBY', K_BACKLOG, host, delta) <= 0 then
    redis.call('HDEL', K_BACKLOG, host)
  end
end

-- keep `ready` true to the host's state: listed iff queue not empty and below the limit
local function refresh(host, limit)
  local state = redis.call('HMGET', P .. HOST .. host, 'i', 'n')
  if num(state[1]) < limit and redis.call('EXISTS', P .. QUEUE .. host) == 1 then
    redis.call('ZADD', K_READY, num(state[2]), host)
  else
    redis.call('ZREM', K_READY, host)
  end
end

local function final(fp, code, attempts, host, reason, v, pos)
  redis.call('HSET', K_FINAL, fp, code .. '|' .. attempts .. '|' .. host .. '|' ..
    string.len(reason) .. '|' .. reason .. string.sub(v, pos))
end

-- a try that did not succeed: attempts + 1, then dead, delayed or back in the host's queue
local function requeue_failed(fp, v, reason, delay_ms, now, max_attempts, touched)
  local a, s, h, pos = parse(v)
  a = a + 1
  touched[h] = true
  if a >= max_attempts then
    redis.call('HDEL', K_TASKS, fp)
    final(fp, 'X', a, h, reason, v, pos)
    count('dead', 1)
    return h, false
  end
  redis.call('HSET', K_TASKS, fp, a .. '|' .. s .. '|' .. h .. '|' .. string.sub(v, pos))
  count('queued', 1)
  if delay_ms > 0 then
    redis.call('ZADD', K_DELAYED, now + delay_ms, fp)
  else
    redis.call('ZADD', P .. QUEUE .. h, s, fp)
    backlog(h, 1)
  end
  return h, true
end

-- expired leases go back to their queues (attempts + 1), at most `max_n` per call
local function reclaim(now, cutoff, max_attempts, max_n, touched)
  local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', cutoff, 'LIMIT', 0, max_n)
  for _, fp in ipairs(expired) do
    redis.call('ZREM', K_LEASES, fp)
    count('leased', -1)
    count('expired', 1)
    local v = redis.call('HGET', K_TASKS, fp)
    if v then
      local h = requeue_failed(fp, v, 'lease expired', 0, now, max_attempts, touched)
      redis.call('HINCRBY', P .. HOST .. h, 'i', -1)
    end
  end
  return #expired
end

-- retries whose delay is over go back to their queues
local function wake(now, max_n, touched)
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, max_n)
  for _, fp in ipairs(due) do
    redis.call('ZREM', K_DELAYED, fp)
    local v = redis.call('HGET', K_TASKS, fp)
    if v then
      local _, s, h = parse(v)
      redis.call('ZADD', P .. QUEUE .. h, s, fp)
      backlog(h, 1)
      touched[h] = true
    end
  end
end
""".replace("@QUEUE@", QUEUE)
    .replace("@HOST@", HOST)
    .replace("@BLOOM@", BLOOM)
    .replace("@LOST@", JOB_LOST_CODE)
    .replace("@CALL@", CALL)
    .replace("@CALL_MS@", str(CALL_MEMORY_MS))
)

# Every script's ARGV starts with P (the partition's key prefix), the job's incarnation ('' for
# no check) and a call id ('' for none; LEASE and COMMIT replay a call they already ran).

# ARGV: P, job, call, limit, max_attempts, n, lease_ms, delay_ms, reclaim_max, worker, budget
# budget: the job's max_pages, or -1 for none; URLs leased and finished (done, failed, dead)
# count against it, read inside the script, so concurrent leases never go past it.
# -> {now_ms, fp1, row1, fp2, row2, ...}
LEASE = Script(
    "lease",
    _PRELUDE
    + r"""
local limit, max_attempts, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local lease_ms, delay_ms, reclaim_max = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local lost = job_lost()
if lost then return lost end
local key = call_key()
local prior = key and redis.call('GET', key)
if prior then
  -- Run before (its reply was lost): the same tasks again, those still leased.
  local then_ms, fps = string.match(prior, '^(%d+)|(.*)$')
  local out = {tonumber(then_ms)}
  for j = 1, string.len(fps), 16 do
    local fp = string.sub(fps, j, j + 15)
    if redis.call('ZSCORE', K_LEASES, fp) then
      out[#out + 1] = fp
      out[#out + 1] = redis.call('HGET', K_TASKS, fp)
    end
  end
  return out
end
local now = now_ms()
local out = {now}
if redis.call('HGET', K_META, 'paused') == '1' then return out end
local touched = {}
reclaim(now, now, max_attempts, reclaim_max, touched)
wake(now, reclaim_max, touched)
for h in pairs(touched) do refresh(h, limit) end
redis.call('HSET', K_WORKERS, ARGV[10], now)
local budget = tonumber(ARGV[11])
if budget >= 0 then
  local st = redis.call('HMGET', K_STATS, 'leased', 'done', 'failed', 'dead')
  local used = num(st[1]) + num(st[2]) + num(st[3]) + num(st[4])
  used = used + (counts['leased'] or 0) + (counts['dead'] or 0)  -- this call's reclaims
  if budget - used < n then n = math.max(0, budget - used) end
end

local deadline = now + lease_ms
local taken = 0
while taken < n do
  local hosts = redis.call('ZRANGEBYSCORE', K_READY, '-inf', now, 'LIMIT', 0, n - taken)
  if #hosts == 0 then break end
  for _, h in ipairs(hosts) do
    if taken >= n then break end
    local hk = P .. HOST .. h
    local state = redis.call('HMGET', hk, 'i', 'd')
    local inflight = num(state[1])
    local delay = math.max(delay_ms, num(state[2]))
    local want = limit - inflight
    -- with a delay between starts, one start per host per call; the next waits `delay`
    if delay > 0 and want > 1 then want = 1 end
    if want > n - taken then want = n - taken end
    if want > 0 then
      local popped = redis.call('ZPOPMIN', P .. QUEUE .. h, want)
      local got = #popped / 2
      for i = 1, #popped, 2 do
        local fp = popped[i]
        redis.call('ZADD', K_LEASES, deadline, fp)
        out[#out + 1] = fp
        out[#out + 1] = redis.call('HGET', K_TASKS, fp)
      end
      if got > 0 then
        taken = taken + got
        redis.call('HSET', hk, 'i', inflight + got, 'n', now + delay)
        backlog(h, -got)
        count('leased', got)
        count('queued', -got)
      end
    end
    refresh(h, limit)
  end
end
flush_counts()
if taken > 0 then
  local fps = {}
  for j = 2, #out, 2 do fps[#fps + 1] = out[j] end
  remember(now .. '|' .. table.concat(fps))
end
return out
""",
)

# ARGV: P, job, call, limit, max_attempts, backoff_base_ms, backoff_max_ms, dedupe, out_of_scope,
#       n_adds, add * n_adds, settle * n_settles   (n_settles = what is left)
# One argument per row, not five: the client's per-argument encoding cost dominated a batch.
#   add    = fp (16 bytes) .. host '|' priority_base '|' bloom_positions '|' body
#   settle = fp (16 bytes) .. kind (1 byte) .. attempts_or_-1 '|' delay_ms '|' reason
# dedupe: 'set' (SADD), 'bf' (BF.ADD), 'bits' (SETBIT positions "block:p1,p2,...")
# kinds: D done, S skipped, F failed, R retry, H host-wide backoff, L release
# -> {added, duplicates, settled_1 (1/0), settled_2, ...}
COMMIT = Script(
    "commit",
    _PRELUDE
    + r"""
local lost = job_lost()
if lost then return lost end
local key = call_key()
local prior = key and redis.call('GET', key)
if prior then
  -- Run before (its reply was lost): its reply again, nothing added or settled twice.
  local out = {}
  for v in string.gmatch(prior, '[^,]+') do out[#out + 1] = tonumber(v) end
  return out
end
local limit, max_attempts = tonumber(ARGV[4]), tonumber(ARGV[5])
local backoff_base, backoff_max, dedupe = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
count('scope', tonumber(ARGV[9]))
local now = now_ms()
local touched = {}

local function is_new(fp, positions)
  if dedupe == 'set' then return redis.call('SADD', K_SEEN, fp) == 1 end
  if dedupe == 'bf' then return redis.call('BF.ADD', K_SEEN, fp) == 1 end
  local block, offsets = string.match(positions, '^(%d+):(.*)$')
  local key = P .. BLOOM .. block
  local new = false
  for offset in string.gmatch(offsets, '%d+') do
    if redis.call('SETBIT', key, offset, 1) == 0 then new = true end
  end
  return new
end

-- The depth of the msgpack body [url, depth, ...] that starts at s[p], read without decoding
-- it (admission._depth_span does the same in Python): depth and the first and last byte of
-- its encoding; nil for a body of another form.
local UINT_WIDTH = {[0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8}
local function depth_at(s, p)
  if string.byte(s, p) ~= 0x95 then return nil end
  local head = string.byte(s, p + 1) or 0
  local at
  if head >= 0xa0 and head <= 0xbf then
    at = p + 2 + head - 0xa0
  elseif head == 0xd9 then
    at = p + 3 + (string.byte(s, p + 2) or 0)
  elseif head == 0xda then
    local b1, b2 = string.byte(s, p + 2, p + 3)
    if not b2 then return nil end
    at = p + 4 + b1 * 256 + b2
  elseif head == 0xdb then
    local b1, b2, b3, b4 = string.byte(s, p + 2, p + 5)
    if not b4 then return nil end
    at = p + 6 + ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  else
    return nil
  end
  local kind = string.byte(s, at)
  if not kind then return nil end
  if kind < 0x80 then return kind, at, at end
  local width = UINT_WIDTH[kind]
  if not width or at + width > string.len(s) then return nil end
  local d = 0
  for j = at + 1, at + width do d = d * 256 + string.byte(s, j) end
  return d, at, at + width
end

-- A duplicate of a task still waiting (in `tasks` and not in `leases`: queued, or delayed for
-- a retry) that was found deeper than this link takes the link's depth, nothing else of it:
-- the page is then fetched at its shortest distance from a seed, so max_depth counts what it
-- says. A leased task keeps its depth (it is being fetched), a finished one is not in `tasks`.
-- Only the depth bytes are compared, so an equal or deeper duplicate costs one HGET; the
-- tasks hash is exact, so a Bloom filter's false positive finds no row and changes nothing.
local function lower_depth(fp, row, pos)
  local v = redis.call('HGET', K_TASKS, fp)
  if not v then return end
  local old, at, stop = depth_at(v, string.match(v, '^%d+|[^|]*|[^|]*|()'))
  local new, new_at, new_stop = depth_at(row, pos)
  if not old or not new or new >= old then return end
  if redis.call('ZSCORE', K_LEASES, fp) then return end
  redis.call('HSET', K_TASKS, fp,
    string.sub(v, 1, at - 1) .. string.sub(row, new_at, new_stop) .. string.sub(v, stop + 1))
end

local added, duplicates = 0, 0
local n_adds = tonumber(ARGV[10])
local i = 11
if n_adds > 0 then
  local seq = num(redis.call('HGET', K_STATS, 'seq'))
  local per_host = {}
  for _ = 1, n_adds do
    local row = ARGV[i]
    local fp = string.sub(row, 1, 16)
    local h, base, positions, pos = string.match(row, '^([^|]*)|([^|]*)|([^|]*)|()', 17)
    if is_new(fp, positions) then
      seq = seq + 1
      local s = string.format('%.17g', tonumber(base) + seq)
      redis.call('HSET', K_TASKS, fp, '0|' .. s .. '|' .. h .. '|' .. string.sub(row, pos))
      redis.call('ZADD', P .. QUEUE .. h, s, fp)
      per_host[h] = (per_host[h] or 0) + 1
      added = added + 1
    else
      duplicates = duplicates + 1
      lower_depth(fp, row, pos)
    end
    i = i + 1
  end
  -- backlog counts a host's queue, so a host whose backlog was 0 had an empty queue and may
  -- now join `ready`; adding to a non-empty queue changes neither membership nor score
  for h, n in pairs(per_host) do
    if redis.call('HINCRBY', K_BACKLOG, h, n) == n then touched[h] = true end
  end
  redis.call('HSET', K_STATS, 'seq', string.format('%d', seq))
  count('queued', added)
  count('added', added)
  count('dupes', duplicates)
end

local function settle(fp, kind, reason, delay, v)
  local a, s, h, pos = parse(v)
  local hk = P .. HOST .. h
  redis.call('HINCRBY', hk, 'i', -1)
  touched[h] = true
  if kind == 'D' then
    redis.call('HDEL', K_TASKS, fp)
    redis.call('HDEL', hk, 'b')  -- a success ends the host's 429/503 backoff streak
    count('done', 1)
  elseif kind == 'S' or kind == 'F' then
    redis.call('HDEL', K_TASKS, fp)
    final(fp, kind, a, h, reason, v, pos)
    if kind == 'S' then count('skipped', 1) else count('failed', 1) end
  elseif kind == 'L' then
    redis.call('ZADD', P .. QUEUE .. h, s, fp)
    backlog(h, 1)
    count('queued', 1)
  else
    local task_delay = delay
    if kind == 'H' then
      local wait = delay
      if wait < 0 then
        wait = math.min(backoff_max, math.max(backoff_base, 2 * num(redis.call('HGET', hk, 'b'))))
      end
      local nxt = math.max(num(redis.call('HGET', hk, 'n')), now + wait)
      redis.call('HSET', hk, 'b', wait, 'n', nxt)
      task_delay = 0
    end
    local _, requeued = requeue_failed(fp, v, reason, task_delay, now, max_attempts, touched)
    if requeued then count('retried', 1) end
  end
end

local out = {added, duplicates}
for j = i, #ARGV do
  local row = ARGV[j]
  local fp, kind = string.sub(row, 1, 16), string.sub(row, 17, 17)
  local expected, delay, pos = string.match(row, '^(-?%d+)|(-?%d+)|()', 18)
  expected = tonumber(expected)
  local ok = 0
  local v = redis.call('HGET', K_TASKS, fp)
  -- the attempts count tells leases of one task apart: a late call for an older lease of a
  -- task that expired and was leased again must not settle the new lease
  if v and (expected < 0 or tonumber(string.match(v, '^(%d+)|')) == expected)
      and redis.call('ZREM', K_LEASES, fp) == 1 then
    ok = 1
    count('leased', -1)
    settle(fp, kind, string.sub(row, pos), tonumber(delay), v)
  end
  out[#out + 1] = ok
end
for h in pairs(touched) do refresh(h, limit) end
flush_counts()
remember(table.concat(out, ','))
return out
""",
)

# ARGV: P, job, call, lease_ms, (fp (16 bytes) .. attempts_or_-1)... -> {now_ms, renewed fp...}
RENEW = Script(
    "renew",
    _PRELUDE
    + r"""
local lost = job_lost()
if lost then return lost end
local now = now_ms()
local deadline = now + tonumber(ARGV[4])
local out = {now}
for i = 5, #ARGV do
  local fp, expected = string.sub(ARGV[i], 1, 16), tonumber(string.sub(ARGV[i], 17))
  if redis.call('ZSCORE', K_LEASES, fp) then
    local v = redis.call('HGET', K_TASKS, fp)
    -- same attempts, same lease: a worker whose lease was reclaimed must not extend the next
    if v and (expected < 0 or tonumber(string.match(v, '^(%d+)|')) == expected) then
      redis.call('ZADD', K_LEASES, deadline, fp)
      out[#out + 1] = fp
    end
  end
end
return out
""",
)

# ARGV: P, job, call, limit, max_attempts -> number of leases expired now
RECOVER = Script(
    "recover",
    _PRELUDE
    + r"""
local lost = job_lost()
if lost then return lost end
local limit, max_attempts = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local touched = {}
local n = reclaim(now, '+inf', max_attempts, redis.call('ZCARD', K_LEASES), touched)
for h in pairs(touched) do refresh(h, limit) end
flush_counts()
return n
""",
)

# ARGV: P, job, call, limit, host, delay_ms -> 1. robots.txt's Crawl-delay for a host: kept
# (`d`), and its next start put at least a delay from now (that robots.txt was a request to
# the host, and tasks leased before it was read may have started since), so the wait holds
# from the first.
SET_DELAY = Script(
    "set_delay",
    _PRELUDE
    + r"""
local lost = job_lost()
if lost then return lost end
local host, delay = ARGV[5], tonumber(ARGV[6])
local hk = P .. HOST .. host
redis.call('HSET', hk, 'd', delay)
local want = now_ms() + delay
if want > num(redis.call('HGET', hk, 'n')) then
  redis.call('HSET', hk, 'n', want)
  refresh(host, tonumber(ARGV[4]))
end
return 1
""",
)

SCRIPTS = (LEASE, COMMIT, RENEW, RECOVER, SET_DELAY)
