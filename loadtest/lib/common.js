// Shared helpers of the k6 scenarios: configuration from the environment,
// HTTP calls with bounded retries, a bounded-concurrency runner for the async
// user flows, and the fixtures every scenario starts from (a concert, users).
//
// Everything is configured through environment variables with defaults;
// BASE_URL must be a loopback address.

import exec from 'k6/execution';
import http from 'k6/http';
import { setTimeout } from 'k6/timers';

/** A string from the environment, or `fallback`. */
export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

/** An integer from the environment within [min, max], or `fallback`. */
export function envInt(name, fallback, min, max) {
  const raw = env(name, String(fallback));
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got '${raw}'`);
  }
  return n;
}

/** Throws unless `url` points at this machine. */
export function assertLoopback(url) {
  const m = /^https?:\/\/(\[[^\]]+\]|[^/:]+)(:\d+)?(\/|$)/.exec(url);
  const host = m ? m[1] : '';
  if (!(host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host))) {
    throw new Error(`${url} is not a loopback address: load is only ever sent to this machine`);
  }
}

export const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
assertLoopback(BASE_URL);

/**
 * The scenario of a load loop: `vus` VUs as fast as they can for `seconds`,
 * or with `rate` > 0 an open model instead, `rate` iterations a second
 * started on schedule by at most `vus` VUs (so at most `vus` connections),
 * whether or not earlier ones have finished. Latency then is the server's,
 * not the wait for a free connection that a saturated closed loop adds (64
 * connections / 10,000 requests a second is 6.4 ms of queueing by Little's
 * law alone). The open model runs WARMUP_SECONDS longer (see `phase`).
 */
export function loadScenario({ vus, seconds, rate }) {
  return rate > 0
    ? {
        executor: 'constant-arrival-rate',
        rate,
        timeUnit: '1s',
        preAllocatedVUs: vus,
        maxVUs: vus,
        duration: `${seconds + WARMUP_SECONDS}s`,
        gracefulStop: '5s',
      }
    : { executor: 'constant-vus', vus, duration: `${seconds}s`, gracefulStop: '5s' };
}

/**
 * Seconds at the start of an open model whose requests are left out of its
 * figures: the VUs' first connections and first copies of the setup data,
 * and the write-behind of the users the setup just made, all fall there.
 * Without it, about a hundred holds of the first half second took over 3 ms
 * at 1,000/s: half of the slowest percent of a 20 s run.
 */
export const WARMUP_SECONDS = envInt('WARMUP_SECONDS', 2, 0, 60);

/**
 * The `name` tag of a request of endpoint `name`: `<name>_warmup` during
 * the warm-up of an open model (`rate` > 0), so that it counts apart.
 */
export function phase(name, rate) {
  const warm = rate > 0 && Date.now() - exec.scenario.startTime < WARMUP_SECONDS * 1000;
  return warm ? `${name}_warmup` : name;
}

/** Per-request timeout (seconds). */
export const REQUEST_TIMEOUT = `${envInt('REQUEST_TIMEOUT_SECONDS', 10, 1, 120)}s`;

/** Thresholds shared by every scenario (milliseconds). */
export const P95_MS = envInt('P95_MS', 500, 1, 600000);
export const P99_MS = envInt('P99_MS', 1500, 1, 600000);

/** 2xx, and 409 (a seat taken is an answer, not a failure). */
export const EXPECTED = http.expectedStatuses({ min: 200, max: 299 }, 409);

export const sleepMs = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A random integer in [lo, hi]. */
export const randInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** A random string for idempotency keys and names. */
export function randomId() {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

/** Request headers: a user key, a queue token, an idempotency key. */
export function headers({ key, token, idem, admin } = {}) {
  const h = { 'Content-Type': 'application/json' };
  if (key) h.Authorization = `Bearer ${key}`;
  if (admin) h.Authorization = `Bearer ${admin}`;
  if (token) h['Queue-Token'] = token;
  if (idem) h['Idempotency-Key'] = idem;
  return h;
}

/** The JSON body of a response, or null. */
export function body(res) {
  try {
    return res && res.body ? JSON.parse(res.body) : null;
  } catch (_) {
    return null;
  }
}

/** The problem `code` of an error response, or ''. */
export function problemCode(res) {
  const b = body(res);
  return (b && b.code) || '';
}

/**
 * One request, retried (at most `retries` more times, with a short pause)
 * when there is no answer or a 5xx. Only call it with `retries` > 0 for
 * requests that are safe to repeat: reads, and writes with an
 * Idempotency-Key.
 */
export async function call(method, path, payload, { name, hdrs, retries = 0, expected = EXPECTED } = {}) {
  const params = {
    headers: hdrs || headers(),
    tags: { name },
    timeout: REQUEST_TIMEOUT,
    responseCallback: expected,
  };
  const data = payload === null || payload === undefined ? null : JSON.stringify(payload);
  let res = null;
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleepMs(100 * attempt);
    try {
      res = await http.asyncRequest(method, `${BASE_URL}${path}`, data, params);
    } catch (_) {
      res = null;
    }
    if (res && res.status !== 0 && res.status < 500) return res;
  }
  return res || { status: 0, body: null };
}

/** Runs `fn` on every item with at most `limit` in flight; keeps order. */
export async function pooled(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  const workers = [];
  for (let w = 0; w < Math.min(limit, items.length); w++) workers.push(worker());
  await Promise.all(workers);
  return out;
}

/** The admin token, required by every scenario's setup. */
export function adminToken() {
  const t = env('ADMIN_TOKEN', '');
  if (!t) throw new Error('ADMIN_TOKEN is not set: the scenarios create their concert through the admin API');
  return t;
}

/**
 * Creates a concert whose booking is open now, with `dates` schedules of
 * `seats` seats each, and returns the API's answer (with schedule ids).
 */
export async function createConcert({ title, dates, seats, price, limit }) {
  const day = 24 * 3600 * 1000;
  const schedules = [];
  for (let i = 0; i < dates; i++) {
    schedules.push({
      starts_at: new Date(Date.now() + (30 + i) * day).toISOString().replace(/\.\d+Z$/, 'Z'),
      seat_count: seats,
      price,
      purchase_limit: limit,
    });
  }
  const res = await call(
    'POST',
    '/v1/admin/concerts',
    { title, artist: 'k6', venue: 'loopback', description: 'load test', schedules },
    { name: 'admin_concert', hdrs: headers({ admin: adminToken() }) },
  );
  const concert = body(res);
  if (res.status !== 201 || !concert || !Array.isArray(concert.schedules)) {
    throw new Error(`creating the concert failed: ${res.status} ${res.body}`);
  }
  return concert;
}

/** Registers a user; returns {id, key} or null. */
export async function register(name) {
  const res = await call('POST', '/v1/users', { name }, { name: 'create_user' });
  const b = body(res);
  return res.status === 201 && b ? { id: b.id, key: b.api_key } : null;
}

/** Joins the queue; returns the token view or null. */
export async function join(user, concertId, name = 'join') {
  const res = await call(
    'POST',
    '/v1/queue/tokens',
    { concert_id: concertId },
    { name, hdrs: headers({ key: user.key }), retries: 2 },
  );
  const b = body(res);
  return (res.status === 201 || res.status === 200) && b ? b : null;
}

/**
 * Every user joins the concert's queue, `concurrency` at once. Returns the
 * token views that came back (a failed join adds to the `unexpected`
 * counter) and how long the joins took.
 */
export async function joinAll(users, concertId, concurrency, unexpected) {
  const started = Date.now();
  const views = await pooled(users, concurrency, (u) => join(u, concertId));
  const joinMs = Date.now() - started;
  const joined = [];
  for (const v of views) {
    if (v) joined.push(v);
    else unexpected.add(1, { why: 'join' });
  }
  return { joined, joinMs };
}

/** Polls a token until it is ACTIVE or `deadline` (ms epoch); the last view. */
export async function waitActive(token, deadline, pollMs, name = 'poll') {
  let view = null;
  while (Date.now() < deadline) {
    const res = await call('GET', `/v1/queue/tokens/${token}`, null, { name, retries: 1 });
    view = body(res);
    if (res.status === 200 && view && view.status !== 'WAITING') return view;
    await sleepMs(Math.round(pollMs * (0.8 + 0.4 * Math.random())));
  }
  return view;
}

/**
 * `count` users, registered and (when `concertId` is given) in the queue,
 * with at most `concurrency` requests in flight: [{id, key, token, status}].
 * Throws when any of them could not be made.
 */
export async function makeUsers(count, prefix, concurrency, concertId) {
  const idx = Array.from({ length: count }, (_, i) => i);
  const users = await pooled(idx, concurrency, async (i) => {
    const u = await register(`${prefix}-${i}`);
    if (!u || !concertId) return u;
    const t = await join(u, concertId, 'setup_join');
    return t ? { id: u.id, key: u.key, token: t.token, status: t.status } : null;
  });
  const missing = users.filter((u) => !u).length;
  if (missing) throw new Error(`setup: ${missing} of ${count} users could not be created or queued`);
  return users;
}
