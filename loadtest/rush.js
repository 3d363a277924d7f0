// rush: USERS people arrive within ARRIVAL_SECONDS for one concert with
// DATES dates of SEATS seats. Each registers, charges its wallet, joins the
// queue, polls until ACTIVE, lists the dates and a date's free seats, holds
// SEATS_PER_USER free seats (another pick on every 409) and pays; once
// everything is sold, the rest find no date and leave the queue.
//
// At the end an auditor checks through the API that no seat was sold twice,
// that the SOLD seats are exactly the seats of the successful payments, and
// that money is conserved (charged = balances left + revenue of the SOLD
// seats). Any violation fails a threshold, so k6 exits non-zero.
//
// Each VU runs its share of the users concurrently (async), so ten thousand
// users need a hundred VUs, not ten thousand.
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_TOKEN=… USERS=10000 k6 run loadtest/rush.js

import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';

import {
  BASE_URL,
  P95_MS,
  P99_MS,
  body,
  call,
  createConcert,
  envInt,
  headers,
  join,
  problemCode,
  randInt,
  randomId,
  register,
  sleepMs,
  waitActive,
} from './lib/common.js';
import { TREND_STATS, count, endpointStats, endpointThresholds, report, totalStats } from './lib/summary.js';

const USERS = envInt('USERS', 10000, 1, 100000);
const VUS = envInt('VUS', Math.min(USERS, 100), 1, 1000);
const DATES = envInt('DATES', 4, 1, 20);
const SEATS = envInt('SEATS', 50, 1, 20000);
const PRICE = envInt('PRICE', 150000, 1, 2000000);
const SEATS_PER_USER = envInt('SEATS_PER_USER', 1, 1, 4);
const ARRIVAL_SECONDS = envInt('ARRIVAL_SECONDS', 5, 0, 600);
const POLL_MS = envInt('POLL_MS', 2000, 50, 60000);
const MAX_WAIT_SECONDS = envInt('MAX_WAIT_SECONDS', 240, 1, 3600);
const HOLD_ATTEMPTS = envInt('HOLD_ATTEMPTS', 20, 1, 1000);
const MAX_DURATION_SECONDS = envInt('MAX_DURATION_SECONDS', 420, 10, 7200);
/** Per-seat "sold at most once" thresholds up to this many seats. */
const SEAT_THRESHOLDS_MAX = envInt('SEAT_THRESHOLDS_MAX', 2000, 0, 20000);

const ENDPOINTS = ['create_user', 'charge', 'join', 'poll', 'schedules', 'seats', 'hold', 'pay', 'leave', 'balance'];
const CAPACITY = DATES * SEATS;

// Invariant ledgers: users add what they saw, the auditor subtracts what the
// API shows at the end; each must come to exactly 0.
const seatLedger = new Counter('ledger_seats'); // seats paid − seats SOLD
const paymentLedger = new Counter('ledger_payments'); // payment amounts − revenue of SOLD seats
const moneyLedger = new Counter('ledger_money'); // (charged − balance left) − revenue of SOLD seats
const seatSales = new Counter('seat_sales'); // per seat tag: successful payments that include it
const violations = new Counter('violations'); // an answer that contradicts the contract
const unaccounted = new Counter('users_unaccounted'); // started − finished with known balance
const audits = new Counter('audit_done');
const soldSeats = new Counter('seats_sold');
const heldSeats = new Counter('seats_held_at_end');
const payments = new Counter('payments_ok');
const soldOutSeen = new Counter('sold_out_seen');
const gaveUp = new Counter('gave_up');
const conflicts = new Counter('hold_conflicts');
const saleAt = new Trend('sale_at_ms'); // ms from the start of the rush to each sale
const queueWait = new Trend('queue_wait_ms', true);

const thresholds = {
  ...endpointThresholds(ENDPOINTS, P95_MS, P99_MS),
  http_req_failed: [`rate<${envInt('MAX_ERROR_PERMILLE', 10, 0, 1000) / 1000}`],
  ledger_seats: ['count==0'],
  ledger_payments: ['count==0'],
  ledger_money: ['count==0'],
  violations: ['count==0'],
  users_unaccounted: ['count==0'],
  audit_done: ['count==1'],
};
if (CAPACITY <= SEAT_THRESHOLDS_MAX) {
  for (let d = 0; d < DATES; d++) {
    for (let n = 1; n <= SEATS; n++) thresholds[`seat_sales{seat:d${d}s${n}}`] = ['count<=1'];
  }
}

export const options = {
  scenarios: {
    rush: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${MAX_DURATION_SECONDS}s`,
      gracefulStop: '10s',
    },
  },
  thresholds,
  summaryTrendStats: TREND_STATS,
  // Idle connections a VU keeps: its users run concurrently.
  batch: Math.ceil(USERS / VUS) + 8,
  batchPerHost: Math.ceil(USERS / VUS) + 8,
  setupTimeout: '60s',
  teardownTimeout: '120s',
  discardResponseBodies: false,
};

export async function setup() {
  const concert = await createConcert({
    title: `rush ${randomId()}`,
    dates: DATES,
    seats: SEATS,
    price: PRICE,
    limit: Math.max(4, SEATS_PER_USER),
  });
  return {
    concertId: concert.id,
    scheduleIds: concert.schedules.map((s) => s.id),
    t0: Date.now(),
  };
}

export default async function (data) {
  const mine = [];
  for (let u = exec.vu.idInTest - 1; u < USERS; u += VUS) mine.push(u);
  await Promise.all(mine.map((u) => rushUser(u, data)));
}

/** One person's rush, start to end. Never throws. */
async function rushUser(u, data) {
  unaccounted.add(1);
  try {
    await sleepMs(Math.round((u / USERS) * ARRIVAL_SECONDS * 1000));
    const me = await register(`rush-${u}`);
    if (!me) {
      unaccounted.add(-1); // no user, no money
      return;
    }
    const charged = await charge(me);
    if (charged === null) return; // unknown: stays unaccounted
    const paid = await buy(me, data);
    await settle(me, charged, paid);
  } catch (e) {
    console.error(`user ${u}: ${e}`);
  }
}

/** Charges the price of the wanted seats plus some change; the amount or null. */
async function charge(me) {
  const amount = PRICE * SEATS_PER_USER + 1000 * randInt(0, 9);
  const res = await call(
    'POST',
    `/v1/users/${me.id}/balance/charge`,
    { amount },
    { name: 'charge', hdrs: headers({ key: me.key, idem: `charge-${randomId()}` }), retries: 3 },
  );
  const b = body(res);
  if (res.status !== 200 || !b) return null;
  if (b.balance !== amount) violations.add(1, { why: 'charge_balance' });
  return amount;
}

/** Queue, pick, hold, pay. Returns the amount paid (0 if nothing bought). */
async function buy(me, data) {
  const entered = Date.now();
  const view = await join(me, data.concertId);
  if (!view) return 0;
  let state = view;
  if (state.status === 'WAITING') {
    state = await waitActive(view.token, entered + MAX_WAIT_SECONDS * 1000, POLL_MS);
  }
  queueWait.add(Date.now() - entered);
  if (!state || state.status !== 'ACTIVE') {
    if (state && state.status === 'EXPIRED') violations.add(1, { why: 'dropped_while_polling' });
    gaveUp.add(1);
    await leave(me, view.token);
    return 0;
  }
  const held = await hold(me, view.token, data);
  if (!held) {
    await leave(me, view.token);
    return 0;
  }
  return pay(me, view.token, held, data);
}

/** Holds free seats of an open date; the reservation or null (sold out, gave up). */
async function hold(me, token, data) {
  const h = headers({ key: me.key, token });
  let attempts = 0;
  for (let round = 0; round < HOLD_ATTEMPTS && attempts < HOLD_ATTEMPTS; round++) {
    const listed = await call('GET', `/v1/concerts/${data.concertId}/schedules`, null, {
      name: 'schedules',
      hdrs: h,
      retries: 1,
    });
    const open = (body(listed) || {}).schedules;
    if (listed.status !== 200 || !Array.isArray(open)) {
      if (listed.status !== 0) violations.add(1, { why: `schedules_${listed.status}` });
      return null;
    }
    if (open.length === 0) {
      soldOutSeen.add(1);
      return null;
    }
    const date = open[randInt(0, open.length - 1)];
    const map = await call('GET', `/v1/schedules/${date.id}/seats?status=AVAILABLE`, null, {
      name: 'seats',
      hdrs: h,
      retries: 1,
    });
    const free = ((body(map) || {}).seats || []).map((s) => s.number);
    while (free.length > 0 && attempts < HOLD_ATTEMPTS) {
      const pick = [];
      while (pick.length < SEATS_PER_USER && free.length > 0) {
        pick.push(free.splice(randInt(0, free.length - 1), 1)[0]);
      }
      attempts++;
      const res = await call(
        'POST',
        '/v1/reservations',
        { schedule_id: date.id, seat_numbers: pick },
        { name: 'hold', hdrs: headers({ key: me.key, token, idem: `hold-${randomId()}` }), retries: 2 },
      );
      if (res.status === 201) {
        const r = body(res);
        if (!r || r.status !== 'HELD' || r.amount !== PRICE * pick.length) {
          violations.add(1, { why: 'hold_body' });
        }
        return r;
      }
      if (res.status === 409 && problemCode(res) === 'SEAT_UNAVAILABLE') {
        conflicts.add(1);
        continue;
      }
      if (res.status !== 409 || problemCode(res) !== 'BOOKING_CLOSED') {
        violations.add(1, { why: `hold_${res.status}_${problemCode(res)}` });
      }
      return null;
    }
  }
  gaveUp.add(1);
  return null;
}

/** Pays a hold; the amount paid (0 on failure). */
async function pay(me, token, r, data) {
  const res = await call(
    'POST',
    '/v1/payments',
    { reservation_id: r.id },
    { name: 'pay', hdrs: headers({ key: me.key, token, idem: `pay-${r.id}` }), retries: 3 },
  );
  const p = body(res);
  if (res.status !== 201 || !p) {
    violations.add(1, { why: `pay_${res.status}_${problemCode(res)}` });
    return 0;
  }
  if (p.status !== 'SUCCESS' || p.amount !== r.amount || p.reservation_id !== r.id) {
    violations.add(1, { why: 'pay_body' });
  }
  const date = data.scheduleIds.indexOf(r.schedule_id);
  if (date < 0) violations.add(1, { why: 'pay_schedule' });
  for (const n of r.seat_numbers) seatSales.add(1, { seat: `d${date}s${n}` });
  seatLedger.add(r.seat_numbers.length);
  paymentLedger.add(p.amount);
  payments.add(1);
  saleAt.add(Date.now() - data.t0);
  return p.amount;
}

async function leave(me, token) {
  await call('DELETE', `/v1/queue/tokens/${token}`, null, {
    name: 'leave',
    hdrs: headers({ key: me.key }),
    retries: 1,
  });
}

/** Reads the balance left and books the user's money into the ledgers. */
async function settle(me, charged, paid) {
  const res = await call('GET', `/v1/users/${me.id}/balance`, null, {
    name: 'balance',
    hdrs: headers({ key: me.key }),
    retries: 3,
  });
  const b = body(res);
  if (res.status !== 200 || !b || typeof b.balance !== 'number') return;
  if (b.balance !== charged - paid) violations.add(1, { why: 'balance' });
  moneyLedger.add(charged - b.balance);
  unaccounted.add(-1);
}

/** The auditor: what the API says was sold, against what the users saw. */
export async function teardown(data) {
  const auditor = await register(`auditor-${randomId()}`);
  if (!auditor) throw new Error('audit: cannot register the auditor');
  const view = await join(auditor, data.concertId, 'audit');
  const state = view && (await waitActive(view.token, Date.now() + 60000, 500, 'audit'));
  if (!state || state.status !== 'ACTIVE') throw new Error('audit: the auditor never became ACTIVE');
  const h = headers({ key: auditor.key, token: view.token });
  let sold = 0;
  let held = 0;
  for (const sid of data.scheduleIds) {
    const res = await call('GET', `/v1/schedules/${sid}/seats`, null, { name: 'audit', hdrs: h, retries: 3 });
    const seats = (body(res) || {}).seats;
    if (res.status !== 200 || !Array.isArray(seats) || seats.length !== SEATS) {
      throw new Error(`audit: seat map of schedule ${sid}: ${res.status}`);
    }
    for (const s of seats) {
      if (s.status === 'SOLD') sold++;
      if (s.status === 'HELD') held++;
    }
  }
  const revenue = sold * PRICE;
  seatLedger.add(-sold);
  paymentLedger.add(-revenue);
  moneyLedger.add(-revenue);
  soldSeats.add(sold);
  heldSeats.add(held);
  violations.add(0);
  audits.add(1);
  await call('DELETE', `/v1/queue/tokens/${view.token}`, null, { name: 'audit', hdrs: headers({ key: auditor.key }) });
}

export function handleSummary(data) {
  const seconds = data.state.testRunDurationMs / 1000;
  const rows = ENDPOINTS.map((n) => endpointStats(data, n, seconds));
  rows.push(totalStats(data, seconds));
  const sold = count(data, 'seats_sold');
  const sale = data.metrics.sale_at_ms;
  const wait = data.metrics.queue_wait_ms;
  const facts = {
    base_url: BASE_URL,
    users: USERS,
    vus: VUS,
    capacity: CAPACITY,
    seats_sold: sold,
    seats_held_at_end: count(data, 'seats_held_at_end'),
    payments_ok: count(data, 'payments_ok'),
    sold_out: sold === CAPACITY,
    sold_out_seconds: sold === CAPACITY && sale ? Math.round(sale.values.max / 100) / 10 : null,
    first_sale_seconds: sale ? Math.round(sale.values.min / 100) / 10 : null,
    hold_conflicts: count(data, 'hold_conflicts'),
    sold_out_seen: count(data, 'sold_out_seen'),
    gave_up: count(data, 'gave_up'),
    queue_wait_p50_ms: wait ? Math.round(wait.values.med) : null,
    queue_wait_max_ms: wait ? Math.round(wait.values.max) : null,
    violations: count(data, 'violations'),
    users_unaccounted: count(data, 'users_unaccounted'),
    ledger_seats: count(data, 'ledger_seats'),
    ledger_payments: count(data, 'ledger_payments'),
    ledger_money: count(data, 'ledger_money'),
    audit_done: count(data, 'audit_done') === 1,
  };
  return report(data, 'rush', rows, facts);
}
