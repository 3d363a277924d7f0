-- The Idempotency-Key a charge, a hold or a payment was asked with, so
-- that `ticketrush rebuild` can restore the idempotency records of the last
-- day after Redis is lost.
alter table wallet_ledger add column idempotency_key text;

create index wallet_ledger_idempotency_recent on wallet_ledger (created_at)
    where idempotency_key is not null;

alter table payment add column idempotency_key text;

create index payment_idempotency_recent on payment (created_at)
    where idempotency_key is not null;

alter table reservation add column idempotency_key text;

create index reservation_idempotency_recent on reservation (held_at)
    where idempotency_key is not null;
