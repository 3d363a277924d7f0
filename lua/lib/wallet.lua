-- Prelude of the wallet scripts (tag {u:<bucket>}), after common.lua.
--
-- w:<uid>   hash name, key_hash, created_at, balance, version
-- h:<uid>   list of the newest ledger entries (JSON), at most HISTORY_LEN
-- pay:<pid> "D:<balance_after>" once debited, "I" once refused for lack of
--           funds, "V" once voided by recovery (saga record; "I" and "V"
--           never debit)
-- ref:<rid> "<balance_after>" once a refund was credited
-- idem:<uid>:<scope>:<key> first answer of an idempotent request

local HISTORY_LEN = 200
local SAGA_TTL = 30 * 86400

-- Moves the balance by `amount` (negative for a debit), appends the ledger
-- entry to the history and the stream. `ikey`, the request's idempotency
-- key (or nil), goes with the event, so that `rebuild` can restore the
-- request's idempotency record. Returns the new balance and version.
local function book(uid, kind, amount, reference, now, ikey)
  local w = B .. 'w:' .. uid
  local before = tonumber(redis.call('HGET', w, 'balance'))
  local after = before + amount
  local version = redis.call('HINCRBY', w, 'version', 1)
  redis.call('HSET', w, 'balance', after)
  local entry = {
    user_id = tonumber(uid), version = version, type = kind, amount = amount,
    balance_before = before, balance_after = after,
    reference = reference or cjson.null, at = now, idempotency_key = ikey,
  }
  local d = emit('ledger', entry)
  redis.call('LPUSH', B .. 'h:' .. uid, d)
  redis.call('LTRIM', B .. 'h:' .. uid, 0, HISTORY_LEN - 1)
  return after, version
end
