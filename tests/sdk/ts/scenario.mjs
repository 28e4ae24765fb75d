// @ts-check
// REST scenario through openapi-fetch with the types openapi-typescript generates from
// openapi/openapi.json (gen/schema.d.ts). scripts/sdk type-checks this file against them
// (tsc, strict) and runs it on Node 20 as is: plain ESM, global fetch, no build step.
//
//   GUILDHALL_URL=http://127.0.0.1:8080 node scenario.mjs
//
// The same story as tests/sdk/python/scenario.py: two users, a public community and a room,
// the second user joins, both send, the history is paged backwards two at a time, errors are
// problem+json. Exits non-zero on any mismatch.
import createClient from 'openapi-fetch';

/** @typedef {import('./gen/schema.js').paths} paths */
/** @typedef {import('./gen/schema.js').components['schemas']} Schemas */
/** @typedef {import('openapi-fetch').Client<paths>} Api */

const baseUrl = process.env.GUILDHALL_URL ?? 'http://127.0.0.1:8080';
const run = Math.random().toString(16).slice(2, 10);

/** @param {boolean} condition @param {string} what @returns {asserts condition} */
function check(condition, what) {
  if (!condition) {
    console.error(`typescript scenario: FAILED: ${what}`);
    process.exit(1);
  }
}

/**
 * The body of a successful answer.
 * @template T
 * @param {{ data?: T, error?: unknown, response: Response }} answer
 * @param {string} what
 * @returns {T}
 */
function ok(answer, what) {
  if (answer.error !== undefined || answer.data === undefined) {
    check(false, `${what}: ${answer.response.status} ${JSON.stringify(answer.error)}`);
  }
  return answer.data;
}

/**
 * @param {string} name
 * @returns {Promise<{ session: Schemas['AuthSession'], api: Api }>}
 */
async function signedIn(name) {
  const body = { username: `ts_${name}_${run}`, password: 'correct horse battery staple' };
  /** @type {Api} */
  const anonymous = createClient({ baseUrl });
  const session = ok(await anonymous.POST('/v1/auth/register', { body }), 'register');
  /** @type {Api} */
  const api = createClient({ baseUrl, headers: { Authorization: `Bearer ${session.access_token}` } });
  const me = ok(await api.GET('/v1/users/me'), 'get_me');
  check(me.id === session.user.id && me.username === body.username, `get_me is ${JSON.stringify(me)}`);
  return { session, api };
}

const alice = await signedIn('alice');
const bob = await signedIn('bob');

const community = ok(
  await alice.api.POST('/v1/communities', { body: { name: `SDK ${run}`, visibility: 'public' } }),
  'create_community',
);
const room = ok(
  await alice.api.POST('/v1/communities/{community_id}/rooms', {
    params: { path: { community_id: community.id } },
    body: { name: 'general' },
  }),
  'create_room',
);
const joined = ok(
  await bob.api.POST('/v1/communities/{community_id}/join', { params: { path: { community_id: community.id } } }),
  'join_community',
);
check(joined.id === community.id, 'join_community answers the community');

// Alternating senders; each message has an idempotency key.
const senders = [alice, bob];
/** @type {Schemas['MessageView'][]} */
const sent = [];
for (let i = 1; i <= 5; i++) {
  const who = senders[i % 2];
  check(who !== undefined, 'a sender');
  const body = { content: `hello ${i} from typescript`, client_msg_id: `ts-${run}-${i}` };
  const message = ok(
    await who.api.POST('/v1/rooms/{room_id}/messages', { params: { path: { room_id: room.id } }, body }),
    'send_message',
  );
  check(message.room_id === room.id && message.sender_id === who.session.user.id, `sent ${JSON.stringify(message)}`);
  check(message.content === body.content && message.attachments.length === 0, `sent ${JSON.stringify(message)}`);
  sent.push(message);
}
check(JSON.stringify(sent.map((m) => m.seq)) === '[1,2,3,4,5]', `seqs ${sent.map((m) => m.seq)}`);

// Newest page first, then `before` the lowest seq seen, two at a time.
/** @type {number[][]} */
const pages = [];
/** @type {number | undefined} */
let before;
for (;;) {
  const query = before === undefined ? { limit: 2 } : { limit: 2, before };
  const page = ok(
    await bob.api.GET('/v1/rooms/{room_id}/messages', { params: { path: { room_id: room.id }, query } }),
    'list_messages',
  );
  const seqs = page.messages.map((m) => m.seq);
  check(JSON.stringify(seqs) === JSON.stringify([...seqs].sort((a, b) => a - b)), `a page is in seq order: ${seqs}`);
  pages.push(seqs);
  for (const m of page.messages) {
    const original = sent[m.seq - 1];
    check(
      original !== undefined &&
        m.id === original.id &&
        m.content === original.content &&
        m.sender_id === original.sender_id &&
        Array.isArray(m.reactions),
      `history message ${m.seq}`,
    );
  }
  if (!page.has_more) break;
  check(seqs.length === 2 && pages.length < 5, `a full page before the last: ${JSON.stringify(pages)}`);
  before = seqs[0];
}
check(JSON.stringify(pages) === '[[4,5],[2,3],[1]]', `pages ${JSON.stringify(pages)}`);

// Errors are problem+json, typed as the Problem schema.
const missing = await alice.api.GET('/v1/rooms/{room_id}/messages', {
  params: { path: { room_id: crypto.randomUUID() } },
});
check(missing.response.status === 404, `unknown room: status ${missing.response.status}`);
check(
  (missing.response.headers.get('content-type') ?? '').startsWith('application/problem+json'),
  `unknown room: content type ${missing.response.headers.get('content-type')}`,
);
/** @type {Schemas['Problem'] | undefined} */
const notFound = missing.error;
check(notFound?.status === 404 && notFound.code === 'not_found', `unknown room: ${JSON.stringify(notFound)}`);

const blank = await alice.api.POST('/v1/rooms/{room_id}/messages', {
  params: { path: { room_id: room.id } },
  body: { content: '   ' },
});
/** @type {Schemas['Problem'] | undefined} */
const invalid = blank.error;
check(
  blank.response.status === 422 && invalid?.code === 'validation_failed',
  `blank message: ${blank.response.status} ${JSON.stringify(invalid)}`,
);
const fields = (invalid.errors ?? []).map((e) => e.field);
check(JSON.stringify(fields) === '["content"]', `blank message: fields ${JSON.stringify(fields)}`);

console.log(`typescript scenario: ok (${sent.length} messages, pages ${JSON.stringify(pages)}, problem+json 404 and 422)`);
