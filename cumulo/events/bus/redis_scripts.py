"""Lua scripts of the Redis bus: each runs atomically on the server.

Stream entries use Dapr's ``pubsub.redis`` layout: the stream key is the topic,
field ``data`` holds the CloudEvent (JSON format). Cumulo adds ``published_at``
(the server's clock, in microseconds; Dapr ignores fields it does not know).

Entry ids are chosen by the scripts, not by ``*``: ``<ms>-<seq>`` from the
server clock, strictly increasing across every topic of the database (the key
``cumulo:clock`` holds the last one), so an offset names one event bus-wide and
is never reused, even after a trim. ``seq`` stays below 2**20 so that the
offset ``ms << 20 | seq`` maps back to the id.
"""

from __future__ import annotations

PRELUDE = r"""
local SEQ_MAX = 1048575
local CLOCK = 'cumulo:clock'

local function split_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function last_generated(stream)
  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', stream)
  if not ok then return nil end
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return nil
end

local function after(ms, seq, lms, lseq)
  if lms > ms or (lms == ms and lseq >= seq) then
    ms, seq = lms, lseq + 1
    if seq > SEQ_MAX then ms, seq = ms + 1, 0 end
  end
  return ms, seq
end

local function add(stream, body)
  local t = redis.call('TIME')
  local ms, seq = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 0
  local at = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  local clock = redis.call('GET', CLOCK)
  if clock then ms, seq = after(ms, seq, split_id(clock)) end
  local id = string.format('%.0f-%d', ms, seq)
  local added = redis.pcall('XADD', stream, id, 'data', body, 'published_at', at)
  if type(added) == 'table' and added.err then  -- someone else (Dapr) wrote a later id
    local last = last_generated(stream)
    if not last then return redis.error_reply(added.err) end
    ms, seq = after(ms, seq, split_id(last))
    id = string.format('%.0f-%d', ms, seq)
    redis.call('XADD', stream, id, 'data', body, 'published_at', at)
  end
  redis.call('SET', CLOCK, id)
  return id
end

local function publish(stream, body, dedup_key, window_ms)
  if dedup_key ~= '' then
    local seen = redis.call('GET', dedup_key)
    if seen then return seen end
  end
  local id = add(stream, body)
  if dedup_key ~= '' then redis.call('SET', dedup_key, id, 'PX', window_ms) end
  return id
end

local function fields(entry)
  local data, at = false, false
  for i = 1, #entry[2], 2 do
    if entry[2][i] == 'data' then data = entry[2][i + 1] end
    if entry[2][i] == 'published_at' then at = entry[2][i + 1] end
  end
  return data, at
end

local function group_cursor(stream, group)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return false end
  for _, info in ipairs(groups) do
    local name, cursor = nil, nil
    for i = 1, #info, 2 do
      if info[i] == 'name' then name = info[i + 1] end
      if info[i] == 'last-delivered-id' then cursor = info[i + 1] end
    end
    if name == group then return cursor end
  end
  return false
end
"""

# KEYS: stream. ARGV: window_ms, then (dedup key or '', body) per event. Returns the ids.
PUBLISH = (
    PRELUDE
    + r"""
local ids = {}
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = publish(KEYS[1], ARGV[i + 1], ARGV[i], ARGV[1])
end
return ids
"""
)

# KEYS: stream, due zset, attempts hash. ARGV: group, consumer, now_ms, lease_ms, limit,
# expected cursor, then (id, flag) per scanned entry: 1 take, 0 rejected, 2 still pending.
# Returns {'retry'} when another consumer moved the cursor, else {id, data, at, attempt}*.
FETCH = (
    PRELUDE
    + r"""
local stream, due, attempts = KEYS[1], KEYS[2], KEYS[3]
local group, consumer = ARGV[1], ARGV[2]
local now, lease, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if group_cursor(stream, group) ~= ARGV[6] then return {'retry'} end
local out = {}
local function deliver(entry, attempt)
  local data, at = fields(entry)
  out[#out + 1] = {entry[1], data, at, attempt}
  redis.call('ZADD', due, now + lease, entry[1])
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)) do
  local claimed = redis.call('XCLAIM', stream, group, consumer, 0, id)
  if claimed[1] then
    deliver(claimed[1], redis.call('HINCRBY', attempts, id, 1))
  else  -- the entry is gone from the stream
    redis.call('ZREM', due, id)
    redis.call('HDEL', attempts, id, 'e:' .. id)
  end
end
local want = limit - #out
if want <= 0 or #ARGV < 8 then return out end
local count, taken = 0, 0
for i = 7, #ARGV, 2 do
  count = count + 1
  if ARGV[i + 1] == '1' then taken = taken + 1 end
  if taken == want then break end
end
local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '>')
local entries = read and read[1][2] or {}
for n, entry in ipairs(entries) do
  if entry[1] ~= ARGV[5 + 2 * n] then return redis.error_reply('cumulo: stream changed under a fetch') end
  local flag = ARGV[6 + 2 * n]
  if flag == '1' then
    redis.call('HSET', attempts, entry[1], 1)
    deliver(entry, 1)
  elseif flag == '0' then
    redis.call('XACK', stream, group, entry[1])
  end
end
return out
"""
)

# KEYS: stream, due zset, attempts hash. ARGV: group, now_ms, window_ms, then per settlement:
# kind ('ack' | 'nack' | 'dead'), id, delay_ms, error, emit count, (topic, dedup key, body)*.
SETTLE = (
    PRELUDE
    + r"""
local stream, due, attempts = KEYS[1], KEYS[2], KEYS[3]
local group, now, window = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local i = 4
while i <= #ARGV do
  local kind, id, delay, err, emits = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  i = i + 5
  if kind == 'nack' then
    if redis.call('ZSCORE', due, id) then
      redis.call('ZADD', due, now + tonumber(delay), id)
      redis.call('HSET', attempts, 'e:' .. id, err)
    end
  else
    redis.call('XACK', stream, group, id)
    redis.call('ZREM', due, id)
    redis.call('HDEL', attempts, id, 'e:' .. id)
  end
  for _ = 1, emits do
    publish(ARGV[i], ARGV[i + 2], ARGV[i + 1], window)
    i = i + 3
  end
end
return #ARGV
"""
)

# KEYS: stream. ARGV: exclusive start id, inclusive end id. Returns the number of entries.
COUNT = r"""
local total, start = 0, ARGV[1]
while true do
  local page = redis.call('XRANGE', KEYS[1], '(' .. start, ARGV[2], 'COUNT', 1000)
  total = total + #page
  if #page < 1000 then return total end
  start = page[#page][1]
end
"""
