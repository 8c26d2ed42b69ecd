-- wrk script for benches/verify.rs: every request carries a bearer token the server has not
-- seen before. Usage: wrk -s new_tokens.lua URL -- TOKENS_FILE THREADS
-- Thread i sends lines i, i+THREADS, i+2*THREADS, ... of TOKENS_FILE (one token a line), each
-- once; a thread that runs out starts over and counts it, and done() reports the reuse so the
-- bench can tell whether the verdict cache could have answered.
-- The requests are formatted once, in init (before wrk starts its clock): formatting one per
-- request in Lua cost wrk about half the CPU the server spent answering it, and wrk shares
-- the machine's two cores with the server under test (about 80 MB per thread for 200,000
-- tokens).
local next_id = 0
local threads = {}

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  requests = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      requests[#requests + 1] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line })
    end
    i = i + 1
  end
  idx = 0
  reused = 0
end

function request()
  idx = idx + 1
  if idx > #requests then
    idx = 1
  end
  if idx == #requests then
    reused = reused + 1
  end
  return requests[idx]
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("reused") or 0)
  end
  io.write(string.format("token stream wraps: %d\n", wraps))
end
