-- One request template for every bench scenario, set through the environment:
--   WRK_PATH    path; every "{id}" becomes a random integer in [WRK_MIN_ID, WRK_MAX_ID]
--   WRK_METHOD  GET (default) or POST
--   WRK_BODY    JSON body; every "{n}" becomes a value unique to this run (sign-ups need new emails)
--   WRK_TOKEN   sent as "Authorization: Token <token>" when set
-- Counts 5xx answers separately from 4xx (a 404 for an inactive user is a right answer; a 4xx
-- on a write is not, and is counted too) and prints them at the end.
local template = os.getenv("WRK_PATH") or "/"
local method = os.getenv("WRK_METHOD") or "GET"
local body_template = os.getenv("WRK_BODY")
local token = os.getenv("WRK_TOKEN")
local min_id = tonumber(os.getenv("WRK_MIN_ID") or "1")
local max_id = tonumber(os.getenv("WRK_MAX_ID") or "1")
local seed = tonumber(os.getenv("WRK_SEED") or "20261125")
local nonce = os.getenv("WRK_NONCE") or tostring(os.time())
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_seed", seed + counter)
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(thread_seed or seed)
  server_errors = 0
  write_rejections = 0
  sent = 0
  wrk.headers["Content-Type"] = "application/json"
  -- Production runs behind a TLS-terminating proxy, which adds this header.
  wrk.headers["X-Forwarded-Proto"] = "https"
  if token then
    wrk.headers["Authorization"] = "Token " .. token
  end
end

request = function()
  local path = template:gsub("{id}", function() return tostring(math.random(min_id, max_id)) end)
  local body = nil
  if body_template then
    sent = sent + 1
    local unique = nonce .. "-" .. tostring(thread_number) .. "-" .. tostring(sent)
    body = body_template:gsub("{n}", unique)
  end
  return wrk.format(method, path, nil, body)
end

response = function(status, headers, body)
  if status >= 500 then
    server_errors = server_errors + 1
  elseif status >= 400 and method ~= "GET" then
    write_rejections = write_rejections + 1
  end
end

function done(summary, latency, requests)
  local errors, rejections = 0, 0
  for _, thread in ipairs(threads) do
    errors = errors + (thread:get("server_errors") or 0)
    rejections = rejections + (thread:get("write_rejections") or 0)
  end
  io.write(string.format("server_errors %d\nwrite_rejections %d\n", errors, rejections))
end
