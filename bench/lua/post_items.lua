-- POST /items with a JSON body matching bench/apps/fastapi_app.py's Item model.
wrk.method = "POST"
wrk.body = '{"name":"widget","price":9.99,"quantity":3,"tags":["a","b"]}'
wrk.headers["Content-Type"] = "application/json"
