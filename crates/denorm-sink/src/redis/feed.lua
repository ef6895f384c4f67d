-- One page of a feed written by denorm's Redis sink, merged from the
-- partition's fanned-out rows and the content of each celebrity it follows,
-- in the feed's order (denorm-sink/src/redis.rs loads it as the function
-- `denorm_feed_page`, library `denorm`).
--
--   FCALL_RO denorm_feed_page 0 <prefix> <feed> <partition key> [<limit> [<offset>]]
--
-- <partition key> is the partition value as the sink writes it in key names
-- (an integer in decimal). Returns the rows' JSON objects. Reads:
--   {prefix}{feed}:{partition}                 fanned-out rows (sorted set)
--   {prefix}{feed}__edges:{partition}          celebrities followed (sorted set)
--   {prefix}{feed}__celebrities:{fan key}      a celebrity's content (sorted set)
--   {prefix}denorm:sink:feeds                  hash: feed -> retain ("" for none)
-- A member is "{order key hex}|…": the merge orders by score, then the hex
-- bytes, both descending, as each sorted set does.

local function score_of(text)
  if text == 'inf' or text == '+inf' then return math.huge end
  if text == '-inf' then return -math.huge end
  return tonumber(text)
end

-- Whether a is larger than b, byte by byte (not by locale).
local function larger(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

-- "{start},{len}|rest" -> start, len, rest
local function located(text)
  local bar = string.find(text, '|', 1, true)
  local comma = string.find(text, ',', 1, true)
  return tonumber(string.sub(text, 1, comma - 1)), tonumber(string.sub(text, comma + 1, bar - 1)),
    string.sub(text, bar + 1)
end

-- Appends the first n rows of sorted set `key` to `rows` as {score, hex, json};
-- `partition` (a JSON literal) replaces a celebrity row's partition value.
local function take(key, n, rows, partition)
  local found = redis.call('ZREVRANGE', key, 0, n - 1, 'WITHSCORES')
  for i = 1, #found, 2 do
    local member = found[i]
    local bar = string.find(member, '|', 1, true)
    local json = string.sub(member, bar + 1)
    if partition then
      local start, len, rest = located(json)
      json = string.sub(rest, 1, start) .. partition .. string.sub(rest, start + len + 1)
    end
    rows[#rows + 1] = {score_of(found[i + 1]), string.sub(member, 1, bar - 1), json}
  end
end

local function page(keys, args)
  local prefix, feed, partition = args[1], args[2], args[3]
  if not (prefix and feed and partition) then
    return redis.error_reply('usage: FCALL_RO denorm_feed_page 0 <prefix> <feed> <partition key> [<limit> [<offset>]]')
  end
  local limit, offset = tonumber(args[4] or '20'), tonumber(args[5] or '0')
  if not (limit and offset) then
    return redis.error_reply('denorm_feed_page: <limit> and <offset> must be numbers')
  end
  local n = offset + limit
  local retain = tonumber(redis.call('HGET', prefix .. 'denorm:sink:feeds', feed))
  if retain and retain < n then n = retain end
  if n <= offset then return {} end
  local rows = {}
  take(prefix .. feed .. ':' .. partition, n, rows, nil)
  for _, member in ipairs(redis.call('ZRANGE', prefix .. feed .. '__edges:' .. partition, 0, -1)) do
    local bar = string.find(member, '|', 1, true)
    local len = tonumber(string.sub(member, 1, bar - 1))
    local fan = string.sub(member, bar + 1, bar + len)
    local start, l, json = located(string.sub(member, bar + len + 1))
    take(prefix .. feed .. '__celebrities:' .. fan, n, rows, string.sub(json, start + 1, start + l))
  end
  table.sort(rows, function(a, b)
    if a[1] ~= b[1] then return a[1] > b[1] end
    return larger(a[2], b[2])
  end)
  local out = {}
  for i = offset + 1, math.min(n, #rows) do
    out[#out + 1] = rows[i][3]
  end
  return out
end
