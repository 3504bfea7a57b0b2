-- One fixed request with a method and body of the harness's choosing (wrk's -H flags add the
-- headers). wrk builds the request once per thread after init, so every request is the same
-- bytes and the script costs nothing while measuring.
--
-- args: method, body, then zero or more "Name: value" header lines.
function init(args)
   wrk.method = args[1]
   wrk.body = args[2]
   for i = 3, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      if name then
         wrk.headers[name] = value
      end
   end
end
