-- HTTP/1.1 pipelining: N requests for PATH in one write.
-- usage: wrk ... -s pipeline.lua URL -- N PATH   (defaults: 16 /plain)
-- wrk counts every response in Requests/sec; its latency figures are per batch of N.
init = function(args)
   local depth = tonumber(args[1]) or 16
   local path = args[2] or "/plain"
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, path)
   end
   req = table.concat(r)
end

request = function()
   return req
end
