-- The system of record: every table is a projection of the Redis event
-- streams, written by the write-behind worker with idempotent upserts.
--
-- Ordering: events of one stream are totally ordered by their stream id
-- (`<ms>-<seq>`). Rows fed by a concert stream keep the id of the last event
-- applied (`event_ms`, `event_seq`) and only move forward, so replays and
-- out-of-order batches converge on the same rows. Wallet rows use the
-- wallet's own `version` the same way.
--
-- Foreign keys join only rows of the same stream (a concert's schedules,
-- seats, reservations and payments). A reservation's user comes from a
-- wallet stream that may be projected a moment later, so user ids there are
-- plain columns, indexed.

create table app_user (
    user_id      bigint primary key,
    name         text not null,
    -- hex sha-256 of the api key; the key itself is never stored
    api_key_hash text not null unique,
    balance      bigint not null default 0 check (balance >= 0),
    version      bigint not null default 0,
    created_at   timestamptz not null,
    updated_at   timestamptz not null default now()
);

-- Every change of a wallet, one row per version: charges, payments (amount
-- negative, reference = payment id) and refunds (reference = reservation id).
create table wallet_ledger (
    user_id        bigint not null,
    version        bigint not null,
    entry_type     text not null check (entry_type in ('CHARGE', 'PAYMENT', 'REFUND')),
    amount         bigint not null,
    balance_before bigint not null,
    balance_after  bigint not null check (balance_after = balance_before + amount),
    reference      uuid,
    created_at     timestamptz not null,
    primary key (user_id, version)
);

create table concert (
    concert_id  bigint primary key,
    title       text not null,
    artist      text not null,
    venue       text not null,
    description text not null default '',
    created_at  timestamptz not null,
    updated_at  timestamptz not null default now()
);

-- A date of a concert (the ERDs' ConcertDate / CONCERT_SCHEDULE /
-- CONCERT_OPTION): its own seat count, price and purchase limit.
create table schedule (
    schedule_id      bigint primary key,
    concert_id       bigint not null references concert (concert_id),
    starts_at        timestamptz not null,
    booking_opens_at timestamptz not null,
    seat_count       integer not null check (seat_count between 1 and 20000),
    price            bigint not null check (price >= 0),
    purchase_limit   integer not null check (purchase_limit between 1 and 10),
    created_at       timestamptz not null,
    check (booking_opens_at <= starts_at)
);
create index schedule_concert_idx on schedule (concert_id);

-- One row per seat; status follows the reservation that last touched it.
create table seat (
    schedule_id    bigint not null references schedule (schedule_id),
    seat_number    integer not null check (seat_number >= 1),
    price          bigint not null,
    status         text not null default 'AVAILABLE' check (status in ('AVAILABLE', 'HELD', 'SOLD')),
    reservation_id uuid,
    hold_expires_at timestamptz,
    event_ms       bigint not null default 0,
    event_seq      bigint not null default 0,
    updated_at     timestamptz not null default now(),
    primary key (schedule_id, seat_number)
);

create table reservation (
    reservation_id uuid primary key,
    user_id        bigint not null,
    concert_id     bigint not null references concert (concert_id),
    schedule_id    bigint not null references schedule (schedule_id),
    amount         bigint not null,
    status         text not null check (status in ('HELD', 'CONFIRMED', 'CANCELLED', 'EXPIRED', 'REFUNDED')),
    held_at        timestamptz not null,
    expires_at     timestamptz not null,
    confirmed_at   timestamptz,
    cancelled_at   timestamptz,
    refunded_at    timestamptz,
    payment_id     uuid,
    event_ms       bigint not null,
    event_seq      bigint not null,
    updated_at     timestamptz not null default now()
);
create index reservation_user_idx on reservation (user_id, held_at desc);
create index reservation_schedule_idx on reservation (schedule_id, status);

-- The seats of a reservation (one or more, all or none).
create table reservation_seat (
    reservation_id uuid not null references reservation (reservation_id),
    schedule_id    bigint not null,
    seat_number    integer not null,
    primary key (reservation_id, seat_number),
    foreign key (schedule_id, seat_number) references seat (schedule_id, seat_number)
);
create index reservation_seat_seat_idx on reservation_seat (schedule_id, seat_number);

-- Payments, failed ones included (with their reason), as the ERDs record.
create table payment (
    payment_id     uuid primary key,
    reservation_id uuid not null references reservation (reservation_id),
    user_id        bigint not null,
    concert_id     bigint not null references concert (concert_id),
    amount         bigint not null,
    status         text not null check (status in ('SUCCESS', 'FAILED', 'REFUNDED')),
    reason         text,
    balance_after  bigint,
    created_at     timestamptz not null,
    paid_at        timestamptz,
    refunded_at    timestamptz,
    event_ms       bigint not null,
    event_seq      bigint not null,
    updated_at     timestamptz not null default now()
);
create index payment_user_idx on payment (user_id);
create index payment_reservation_idx on payment (reservation_id);

-- Waiting-room tokens (the ERDs' USER_QUEUE / waiting_token / QUEUE_TOKENS).
create table queue_token (
    token        text primary key,
    concert_id   bigint not null references concert (concert_id),
    user_id      bigint not null,
    status       text not null check (status in ('WAITING', 'ACTIVE', 'EXPIRED')),
    issued_at    timestamptz not null,
    activated_at timestamptz,
    active_until timestamptz,
    expired_at   timestamptz,
    event_ms     bigint not null,
    event_seq    bigint not null
);
create index queue_token_concert_idx on queue_token (concert_id, status);
create index queue_token_user_idx on queue_token (user_id);

-- The write-behind's bookkeeping: the last event applied from each stream
-- and how many, for lag reporting and for `verify`.
create table writebehind_cursor (
    stream         text primary key,
    last_ms        bigint not null,
    last_seq       bigint not null,
    events_applied bigint not null default 0,
    updated_at     timestamptz not null default now()
);
