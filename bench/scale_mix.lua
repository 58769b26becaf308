-- wrk script for the scale run's HTTP load: 60% GET one lead, 20% a filtered, sorted list page,
-- 20% POST a new lead (unique company, so the duplicate rule lets it through).
-- Environment: SCALE_IDS (a file of lead ids, one per line), SCALE_TOKEN (bearer token),
-- SCALE_LIST (the list path with its query string).

local ids = {}
local threads = {}
local counter = 0
local tid = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("SCALE_IDS")) do
    ids[#ids + 1] = line
  end
  math.randomseed(os.time() * 1000 + tid)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("SCALE_TOKEN")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local r = math.random(100)
  if r <= 60 then
    return wrk.format("GET", "/api/v1/records/lead/" .. ids[math.random(#ids)])
  elseif r <= 80 then
    return wrk.format("GET", os.getenv("SCALE_LIST"))
  end
  local body = string.format('{"company": "Loadtest %d-%d-%d Tech", "source": "web", "status": "new"}',
    tid, counter, math.random(1000000000))
  return wrk.format("POST", "/api/v1/records/lead", nil, body)
end
