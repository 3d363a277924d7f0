// hold: seat holds and conflicts on one hot schedule.
//
// setup makes one concert with one date of SEATS seats (purchase limit 10)
// and USERS users, all with an ACTIVE queue token (the server needs
// QUEUE_ACTIVE_MAX >= USERS). Then VUS VUs hold SEATS_PER_HOLD random seats
// for random users as fast as they can for DURATION_SECONDS. Most seats are
// held at any moment, so most attempts are 409 SEAT_UNAVAILABLE; holds lapse
// after the server's HOLD_TTL_SECONDS (loadtest/run.sh sets 2 s), which puts
// their seats back on sale, so the mix stays steady. With RATE set, holds
// start at that steady rate instead (an open model, for latency), after a
// warm-up of WARMUP_SECONDS that the figures leave out.
//
// With FIXTURE_OUT set, the users are also written there for the same
// requests under wrk (loadtest/wrk/hold.lua): a first line
// "<concert id> <schedule id> <seats> <seats per hold>", then
// "<user id> <api key> <queue token>" per user.
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_TOKEN=… k6 run loadtest/hold.js

import http from 'k6/http';
import { Counter } from 'k6/metrics';

import {
  BASE_URL,
  EXPECTED,
  P95_MS,
  P99_MS,
  REQUEST_TIMEOUT,
  createConcert,
  env,
  envInt,
  headers,
  loadScenario,
  makeUsers,
  phase,
  problemCode,
  randomId,
} from './lib/common.js';
import { TREND_STATS, count, endpointStats, endpointThresholds, report } from './lib/summary.js';

const USERS = envInt('USERS', 1000, 1, 100000);
const VUS = envInt('VUS', 64, 1, 1000);
const SEATS = envInt('SEATS', 200, 1, 20000);
const SEATS_PER_HOLD = envInt('SEATS_PER_HOLD', 1, 1, 10);
const DURATION_SECONDS = envInt('DURATION_SECONDS', 20, 1, 600);
const SETUP_CONCURRENCY = envInt('SETUP_CONCURRENCY', 64, 1, 1000);

const held = new Counter('holds_ok');
const taken = new Counter('conflicts_seat');
const limited = new Counter('conflicts_limit');
const unexpected = new Counter('unexpected');

// RATE > 0: an open model instead (see `loadScenario`), for latency.
const RATE = envInt('RATE', 0, 0, 100000);

const scenario = loadScenario({ vus: VUS, seconds: DURATION_SECONDS, rate: RATE });

export const options = {
  scenarios: { hold: scenario },
  thresholds: {
    ...endpointThresholds(['hold'], P95_MS, P99_MS),
    http_req_failed: ['rate<0.01'],
    unexpected: ['count==0'],
    holds_ok: ['count>0'],
  },
  summaryTrendStats: TREND_STATS,
  batch: SETUP_CONCURRENCY + 8,
  batchPerHost: SETUP_CONCURRENCY + 8,
  setupTimeout: `${envInt('SETUP_TIMEOUT_SECONDS', 120, 10, 3600)}s`,
};

export async function setup() {
  const concert = await createConcert({ title: `hold ${randomId()}`, dates: 1, seats: SEATS, price: 1000, limit: 10 });
  const users = await makeUsers(USERS, 'hold', SETUP_CONCURRENCY, concert.id);
  const waitingUsers = users.filter((u) => u.status !== 'ACTIVE').length;
  if (waitingUsers) {
    throw new Error(`setup: ${waitingUsers} users are not ACTIVE: run the server with QUEUE_ACTIVE_MAX >= USERS`);
  }
  return { concertId: concert.id, scheduleId: concert.schedules[0].id, users };
}

/** SEATS_PER_HOLD distinct random seats. */
function pickSeats() {
  const pick = new Set();
  while (pick.size < Math.min(SEATS_PER_HOLD, SEATS)) pick.add(1 + Math.floor(Math.random() * SEATS));
  return [...pick];
}

export default function (data) {
  const u = data.users[Math.floor(Math.random() * data.users.length)];
  const res = http.post(
    `${BASE_URL}/v1/reservations`,
    JSON.stringify({ schedule_id: data.scheduleId, seat_numbers: pickSeats() }),
    {
      headers: headers({ key: u.key, token: u.token }),
      tags: { name: phase('hold', RATE) },
      timeout: REQUEST_TIMEOUT,
      responseCallback: EXPECTED,
    },
  );
  if (res.status === 201) {
    held.add(1);
  } else if (res.status === 409) {
    const code = problemCode(res);
    if (code === 'SEAT_UNAVAILABLE') taken.add(1);
    else if (code === 'PURCHASE_LIMIT_EXCEEDED') limited.add(1);
    else unexpected.add(1, { why: code });
  } else {
    unexpected.add(1, { why: String(res.status) });
  }
}

export function handleSummary(data) {
  const setup = data.setup_data || { users: [] };
  const rows = [endpointStats(data, 'hold', DURATION_SECONDS)];
  const facts = {
    base_url: BASE_URL,
    users: USERS,
    seats: SEATS,
    seats_per_hold: SEATS_PER_HOLD,
    vus: VUS,
    rate: RATE,
    holds_ok: count(data, 'holds_ok'),
    conflicts_seat: count(data, 'conflicts_seat'),
    conflicts_limit: count(data, 'conflicts_limit'),
    unexpected: count(data, 'unexpected'),
  };
  const files = {};
  const fixture = env('FIXTURE_OUT', '');
  if (fixture && setup.users.length) {
    const lines = [`${setup.concertId} ${setup.scheduleId} ${SEATS} ${SEATS_PER_HOLD}`];
    for (const u of setup.users) lines.push(`${u.id} ${u.key} ${u.token}`);
    files[fixture] = `${lines.join('\n')}\n`;
  }
  return report(data, 'hold', rows, facts, files);
}
