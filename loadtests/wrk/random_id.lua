-- GET WRK_PATH with every "{id}" replaced by a random integer in [WRK_MIN_ID, WRK_MAX_ID].
-- Counts 5xx answers separately from 4xx (a 404 for an inactive user is a right answer) and
-- prints "server_errors N" at the end.
local template = os.getenv("WRK_PATH") or "/"
local min_id = tonumber(os.getenv("WRK_MIN_ID") or "1")
local max_id = tonumber(os.getenv("WRK_MAX_ID") or "1")
local seed = tonumber(os.getenv("WRK_SEED") or "20261125")
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_seed", seed + counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(thread_seed or seed)
  server_errors = 0
end

request = function()
  local path = template:gsub("{id}", tostring(math.random(min_id, max_id)))
  return wrk.format("GET", path)
end

response = function(status, headers, body)
  if status >= 500 then
    server_errors = server_errors + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("server_errors") or 0)
  end
  io.write(string.format("server_errors %d\n", total))
end
