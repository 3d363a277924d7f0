-- credit_refund: KEYS[1] wallet base; ARGV[1] user id, ARGV[2] reservation
-- id, ARGV[3] amount. Step 2 of the refund saga, idempotent by reservation
-- id. A refund may lift the balance over the charge ceiling: it is money
-- the user already had. Returns {"CREDITED", balance_after} |
-- {"USER_NOT_FOUND"}. O(1).
local uid, rid, amount = ARGV[1], ARGV[2], tonumber(ARGV[3])
local rec = B .. 'ref:' .. rid
local seen = redis.call('GET', rec)
if seen then return { 'CREDITED', seen } end
if redis.call('EXISTS', B .. 'w:' .. uid) == 0 then return { 'USER_NOT_FOUND' } end
local after = book(uid, 'REFUND', amount, rid, now_ms())
redis.call('SET', rec, int(after), 'EX', SAGA_TTL)
return { 'CREDITED', int(after) }
