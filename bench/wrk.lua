-- One wrk script for every HTTP scenario of bench/run.py. Arguments after `--`:
--   <data file written by run.py> <scenario name>
-- Every request is built here: charges and deposits get a unique summary each (no two bodies alike),
-- the wallet and, for charges, the merchant are drawn at random per request. No Idempotency-Key is
-- sent.
-- hold_capture: each thread places holds (0.02 of a random client wallet by a random merchant, expiring
-- in 10 minutes) and, as each hold's 201 arrives, its next request captures 0.01 of it (final: the rest is
-- released). So about half the requests are holds and half captures: a pair is two requests.
-- refund: a merchant refunds 0.01 of one of its charges of 100.00 made during the set-up.
-- charges_bulk: POST /wallet/charges, a batch of BULK_BATCH (100) charges of 0.01 by a random merchant,
-- each from a random one of the client wallets, each with its unique summary. A request is 100 charges;
-- an item whose own status is not 200 counts as a non-2xx answer.
-- Non-2xx answers are counted per thread (wrk itself only counts status >= 400) and the first
-- one is kept for the report. done() prints one line "BENCH_JSON {...}" that run.py parses.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

function init(args)
   data = dofile(args[1])
   scenario = args[2]
   non2xx = 0
   first_error = ""
   counter = 0
   math.randomseed(os.time() * 1000 + thread_id)
   json_headers = { ["Content-Type"] = "application/json" }
   if scenario == "history_" .. (args[3] or "") then
      history = data.history[args[3]]
   end
   merchant_of_wallet = {}
   for index, wallet in ipairs(data.merchant_wallets) do
      merchant_of_wallet[wallet] = data.merchants[index]
   end
   to_capture = {}  -- holds placed by this thread whose 201 arrived: {hold id, merchant key}, oldest first
end

BULK_BATCH = 100

local function pick(list)
   return list[math.random(#list)]
end

local function post(path, auth, body)
   return wrk.format("POST", path, { ["Content-Type"] = "application/json", ["Authorization"] = "Token " .. auth }, body)
end

local function get(path, auth)
   return wrk.format("GET", path, { ["Authorization"] = "Token " .. auth })
end

function request()
   counter = counter + 1
   if scenario == "charge_spread" or scenario == "charge_hot" then
      local merchant = scenario == "charge_hot" and data.merchants[1] or pick(data.merchants)
      local body = string.format('{"wallet":"%s","amount":"0.01","summary":"bench %d-%d"}', pick(data.sources), thread_id, counter)
      return post("/wallet/charge", merchant, body)
   elseif scenario == "charges_bulk" then
      local items = {}
      for i = 1, BULK_BATCH do
         items[i] = string.format('{"wallet":"%s","amount":"0.01","summary":"bulk %d-%d-%d"}',
            pick(data.sources), thread_id, counter, i)
      end
      return post("/wallet/charges", pick(data.merchants), '{"charges":[' .. table.concat(items, ",") .. ']}')
   elseif scenario == "deposit" then
      local wallet = pick(data.owned)
      local body = string.format('{"wallet":"%s","amount":"0.01","summary":"bench %d-%d"}', wallet[2], thread_id, counter)
      return post("/wallet/deposit", wallet[1], body)
   elseif scenario == "info" then
      local wallet = pick(data.owned)
      return get("/wallet/info/" .. wallet[2], wallet[1])
   elseif scenario == "hold_capture" then
      local next_hold = table.remove(to_capture, 1)
      if next_hold ~= nil then
         return post("/wallet/hold/" .. next_hold[1] .. "/capture", next_hold[2], '{"amount":"0.01","final":true}')
      end
      local body = string.format('{"wallet":"%s","amount":"0.02","summary":"bench %d-%d","expires_in":600}',
         pick(data.sources), thread_id, counter)
      return post("/wallet/hold", pick(data.merchants), body)
   elseif scenario == "refund" then
      local charge = pick(data.refundable)
      local body = string.format('{"operation":%d,"amount":"0.01","summary":"bench %d-%d"}', charge[2], thread_id, counter)
      return post("/wallet/refund", charge[1], body)
   elseif history ~= nil then
      return get("/wallet/history/" .. history[2], history[1])
   end
   error("unknown scenario " .. tostring(scenario))
end

function response(status, headers, body)
   if status == 201 and scenario == "hold_capture" then
      local hold = string.match(body, '"hold":"([^"]+)"')
      local merchant = merchant_of_wallet[string.match(body, '"merchant_wallet":"([^"]+)"')]
      if hold ~= nil and merchant ~= nil then
         table.insert(to_capture, { hold, merchant })
      end
   end
   if status == 200 and scenario == "charges_bulk" then
      -- 200 answers a batch whatever its items' outcomes: count every item that is not a 200 as an error.
      for item in string.gmatch(body, '"status":[013-9]%d%d[^}]*}') do
         non2xx = non2xx + 1
         if first_error == "" then
            first_error = "200 with an item " .. item
         end
      end
   end
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_error == "" then
         first_error = status .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

local function quote(text)
   return '"' .. string.gsub(text, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
   local total_non2xx, error_text = 0, ""
   for _, thread in ipairs(threads) do
      total_non2xx = total_non2xx + thread:get("non2xx")
      local text = thread:get("first_error")
      if error_text == "" and text ~= nil then error_text = text end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
         .. '"non2xx":%d,"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"first_error":%s}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean, total_non2xx, e.connect, e.read, e.write, e.timeout, quote(error_text)))
end
