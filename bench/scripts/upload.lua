-- 1 KiB uploads, each to a key nobody has used: /object/<bucket>/<prefix>/<thread>-<n>.
-- setup runs once per thread in wrk's main Lua state and gives each thread its own id; init and
-- request run in the thread's state, where the counter lives. Thread id plus counter keeps the
-- keys of the two threads apart, and the prefix keeps a run apart from its warm-up.
--
-- args: bucket, prefix.
local next_thread = 0

function setup(thread)
   next_thread = next_thread + 1
   thread:set("thread_id", next_thread)
end

function init(args)
   bucket = args[1]
   prefix = args[2]
   body = string.rep("0123456789abcdef", 64)
   counter = 0
   wrk.headers["Content-Type"] = "application/octet-stream"
end

function request()
   counter = counter + 1
   local path = "/object/" .. bucket .. "/" .. prefix .. "/" .. thread_id .. "-" .. counter
   return wrk.format("POST", path, nil, body)
end
