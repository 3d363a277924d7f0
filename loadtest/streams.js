// streams: the fixture of the queue event stream scenario.
//
// setup registers USERS users, then all of them join one concert's queue
// with JOIN_CONCURRENCY joins in flight, and writes their tokens, one a
// line, to FIXTURE_OUT. The server runs with a small QUEUE_ACTIVE_MAX, so
// nearly every token stays WAITING. examples/sse_streams.rs then opens one
// event stream per token (loadtest/run.sh streams); this script only makes
// the line and reports how fast it was made.
//
//   BASE_URL=http://127.0.0.1:8080 ADMIN_TOKEN=… FIXTURE_OUT=/tmp/tokens.txt k6 run loadtest/streams.js

import { Counter } from 'k6/metrics';

import {
  BASE_URL,
  P95_MS,
  P99_MS,
  createConcert,
  env,
  envInt,
  joinAll,
  makeUsers,
  randomId,
} from './lib/common.js';
import { TREND_STATS, count, endpointStats, endpointThresholds, report } from './lib/summary.js';

const USERS = envInt('USERS', 10000, 1, 100000);
const JOIN_CONCURRENCY = envInt('JOIN_CONCURRENCY', 128, 1, 1000);
const SETUP_CONCURRENCY = envInt('SETUP_CONCURRENCY', 128, 1, 1000);

const unexpected = new Counter('unexpected');
const waiting = new Counter('joined_waiting');

export const options = {
  scenarios: {
    // Everything happens in setup; one empty iteration satisfies k6.
    fixture: { executor: 'shared-iterations', vus: 1, iterations: 1 },
  },
  thresholds: {
    ...endpointThresholds(['create_user', 'join'], P95_MS, P99_MS),
    unexpected: ['count==0'],
  },
  summaryTrendStats: TREND_STATS,
  batch: Math.max(JOIN_CONCURRENCY, SETUP_CONCURRENCY) + 8,
  batchPerHost: Math.max(JOIN_CONCURRENCY, SETUP_CONCURRENCY) + 8,
  setupTimeout: `${envInt('SETUP_TIMEOUT_SECONDS', 300, 10, 3600)}s`,
};

export async function setup() {
  const concert = await createConcert({ title: `streams ${randomId()}`, dates: 1, seats: 50, price: 1000, limit: 4 });
  const started = Date.now();
  const users = await makeUsers(USERS, 'streams', SETUP_CONCURRENCY);
  const registerMs = Date.now() - started;
  const { joined, joinMs } = await joinAll(users, concert.id, JOIN_CONCURRENCY, unexpected);
  const tokens = joined.map((v) => v.token);
  waiting.add(joined.filter((v) => v.status === 'WAITING').length);
  return { concertId: concert.id, tokens, registerMs, joinMs };
}

export default function () {}

export function handleSummary(data) {
  const setup = data.setup_data || { tokens: [], registerMs: 0, joinMs: 0 };
  const rows = [
    endpointStats(data, 'create_user', setup.registerMs / 1000),
    endpointStats(data, 'join', setup.joinMs / 1000),
  ];
  const facts = {
    base_url: BASE_URL,
    users: USERS,
    concert_id: setup.concertId,
    tokens: setup.tokens.length,
    joined_waiting: count(data, 'joined_waiting'),
    join_concurrency: JOIN_CONCURRENCY,
    unexpected: count(data, 'unexpected'),
  };
  const files = {};
  const fixture = env('FIXTURE_OUT', '');
  if (fixture) files[fixture] = `${setup.tokens.join('\n')}\n`;
  return report(data, 'streams', rows, facts, files);
}
