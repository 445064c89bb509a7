-- wrk script: HTTP pipelining, `depth` GET requests (default 16) sent in
-- one write per round trip; wrk counts each response.  bench/http.sh runs
--   wrk -s bench/pipeline.lua URL -- 16
-- (the URL's path is requested, e.g. /plaintext).
init = function(args)
    local depth = tonumber(args[1]) or 16
    local r = {}
    for i = 1, depth do
        r[i] = wrk.format(nil)
    end
    req = table.concat(r)
end

request = function()
    return req
end
