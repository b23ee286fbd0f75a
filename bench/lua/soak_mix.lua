-- The soak mix for bench/soak.py: every route of bench/apps/fastapi_app.py in turn,
-- query strings and path ids varying, one POST with a JSON body in five.
local n = 0
local post_body = '{"name":"widget","price":9.99,"quantity":3,"tags":["a","b"]}'

request = function()
   n = n + 1
   local k = n % 5
   if k == 0 then
      return wrk.format("GET", "/plain")
   elseif k == 1 then
      return wrk.format("GET", "/items/" .. (n % 1000) .. "?q=s" .. (n % 97))
   elseif k == 2 then
      return wrk.format("POST", "/items", { ["Content-Type"] = "application/json" }, post_body)
   elseif k == 3 then
      return wrk.format("GET", "/chain")
   else
      return wrk.format("GET", "/sync")
   end
end
