// queue: queue entry and status throughput of one hot concert.
//
// setup registers USERS users, then all of them join the concert's queue
// with JOIN_CONCURRENCY joins in flight (the `join` figures: entry
// throughput into one queue growing to USERS). Then VUS VUs poll random
// tokens of that queue as fast as they can for DURATION_SECONDS (the `poll`
// figures: status throughput; most tokens are WAITING, so each poll computes
// a position and an estimated wait).
//
// With FIXTURE_OUT set, the tokens are also written there, one a line, for
// the same polling under wrk (loadtest/wrk/queue_status.lua).
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_TOKEN=… k6 run loadtest/queue.js

import { check } from 'k6';
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
  joinAll,
  makeUsers,
  randomId,
} from './lib/common.js';
import { TREND_STATS, count, endpointStats, endpointThresholds, report } from './lib/summary.js';

const USERS = envInt('USERS', 20000, 1, 200000);
const VUS = envInt('VUS', 64, 1, 1000);
const DURATION_SECONDS = envInt('DURATION_SECONDS', 20, 1, 600);
const JOIN_CONCURRENCY = envInt('JOIN_CONCURRENCY', 128, 1, 1000);
const SETUP_CONCURRENCY = envInt('SETUP_CONCURRENCY', 128, 1, 1000);

const unexpected = new Counter('unexpected');
const joinedNew = new Counter('joined_new');
const waiting = new Counter('polled_waiting');

export const options = {
  scenarios: {
    poll: {
      executor: 'constant-vus',
      vus: VUS,
      duration: `${DURATION_SECONDS}s`,
      gracefulStop: '5s',
    },
  },
  thresholds: {
    ...endpointThresholds(['join', 'poll'], P95_MS, P99_MS),
    http_req_failed: ['rate<0.01'],
    unexpected: ['count==0'],
  },
  summaryTrendStats: TREND_STATS,
  batch: Math.max(JOIN_CONCURRENCY, SETUP_CONCURRENCY) + 8,
  batchPerHost: Math.max(JOIN_CONCURRENCY, SETUP_CONCURRENCY) + 8,
  setupTimeout: `${envInt('SETUP_TIMEOUT_SECONDS', 300, 10, 3600)}s`,
};

export async function setup() {
  const concert = await createConcert({ title: `queue ${randomId()}`, dates: 1, seats: 50, price: 1000, limit: 4 });
  const users = await makeUsers(USERS, 'queue', SETUP_CONCURRENCY);
  const { joined, joinMs } = await joinAll(users, concert.id, JOIN_CONCURRENCY, unexpected);
  const tokens = joined.map((v) => v.token);
  joinedNew.add(tokens.length);
  return { concertId: concert.id, tokens, joinMs };
}

export default function (data) {
  const token = data.tokens[Math.floor(Math.random() * data.tokens.length)];
  const res = http.get(`${BASE_URL}/v1/queue/tokens/${token}`, {
    tags: { name: 'poll' },
    timeout: REQUEST_TIMEOUT,
    responseCallback: EXPECTED,
  });
  let status = '';
  try {
    status = res.json('status');
  } catch (_) {
    status = '';
  }
  if (!check(res, { 'poll 200': (r) => r.status === 200 })) {
    unexpected.add(1, { why: `poll_${res.status}` });
  }
  if (status === 'WAITING') waiting.add(1);
}

export function handleSummary(data) {
  const setup = data.setup_data || { tokens: [], joinMs: 0 };
  const rows = [endpointStats(data, 'join', setup.joinMs / 1000), endpointStats(data, 'poll', DURATION_SECONDS)];
  const polls = rows[1].requests;
  const facts = {
    base_url: BASE_URL,
    users: USERS,
    joined: count(data, 'joined_new'),
    join_concurrency: JOIN_CONCURRENCY,
    poll_vus: VUS,
    polled_waiting_share: polls ? Math.round((count(data, 'polled_waiting') / polls) * 1000) / 1000 : null,
    unexpected: count(data, 'unexpected'),
  };
  const files = {};
  const fixture = env('FIXTURE_OUT', '');
  if (fixture) files[fixture] = `${setup.tokens.join('\n')}\n`;
  return report(data, 'queue', rows, facts, files);
}
