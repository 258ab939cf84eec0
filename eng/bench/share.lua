-- wrk: counts answers per process ("Hello from <pid>") to show how evenly the workers share the load.
-- Slower than report.lua (every body goes through Lua), so it runs apart from the timed runs.
-- SHARE <pid> <answers>, one line per process.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
end

function response(status, headers, body)
  local pid = body and string.match(body, "Hello from (%d+)")
  if pid then
    counts[pid] = (counts[pid] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for pid, n in pairs(thread:get("counts")) do
      total[pid] = (total[pid] or 0) + n
    end
  end
  for pid, n in pairs(total) do
    io.write(string.format("SHARE %s %d\n", pid, n))
  end
end
