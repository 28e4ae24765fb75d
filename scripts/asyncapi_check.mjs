// Checks openapi/asyncapi.yaml (run by scripts/asyncapi-check, which installs the packages):
//
//   1. the official parser (@asyncapi/parser, its Spectral rules included) reports no error and
//      no warning;
//   2. the YAML reads back to the schemas openapi/openapi.json has under the same names (the
//      emitter in src/yaml.rs is faithful, and both documents describe the same types);
//   3. with a base URL: frames captured from that live server (two users, a room, every op and
//      the events they cause) each match the schema of the message their `type` names, in the
//      direction they travelled (ajv). Frames of a `type` the document lacks fail.
//
//   node scripts/asyncapi_check.mjs NODE_MODULES_DIR asyncapi.yaml openapi.json [BASE_URL]
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { randomUUID } from 'node:crypto';

const [modules, yamlPath, openapiPath, baseUrl] = process.argv.slice(2);
const require = createRequire(`${modules}/`);
const { Parser } = require('@asyncapi/parser');
const yaml = require('js-yaml');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');
const WebSocket = require('ws');

const failures = [];
const fail = (message) => {
  failures.push(message);
  console.error(`FAIL ${message}`);
};

// 1. The parser.
const text = readFileSync(yamlPath, 'utf8');
const { diagnostics } = await new Parser().parse(text, { source: yamlPath });
const SEVERITY = ['error', 'warning', 'info', 'hint'];
const counts = { error: 0, warning: 0, info: 0, hint: 0 };
for (const d of diagnostics) {
  const severity = SEVERITY[d.severity] ?? 'error';
  counts[severity] += 1;
  const line = `${severity} ${d.code}: ${d.message} at ${JSON.stringify(d.path)}`;
  // The parser's only advice on a valid 3.0.0 document is "3.1.0 exists" (info).
  if (d.severity <= 1) fail(`parser: ${line}`);
  else console.log(`parser: ${line}`);
}
console.log(
  `parser: ${counts.error} errors, ${counts.warning} warnings, ${counts.info} infos, ${counts.hint} hints`,
);

// 2. The YAML against openapi.json.
const doc = yaml.load(text);
const openapi = JSON.parse(readFileSync(openapiPath, 'utf8'));
const schemas = doc.components.schemas;
for (const [name, schema] of Object.entries(schemas)) {
  if (!isDeepStrictEqual(schema, openapi.components.schemas[name])) {
    fail(`schema ${name} differs from openapi.json's`);
  }
}
console.log(`schemas: ${Object.keys(schemas).length} identical to openapi.json's`);

if (!baseUrl) {
  finish();
}

// 3. Live frames.
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const formats = new Set();
JSON.stringify(schemas, (key, value) => {
  if (key === 'format' && typeof value === 'string') formats.add(value);
  return value;
});
for (const format of formats) {
  if (!ajv.formats[format]) ajv.addFormat(format, true);
}
ajv.addSchema({ $id: 'asyncapi', components: { schemas } });
const byType = { send: new Map(), receive: new Map() };
for (const operation of Object.values(doc.operations)) {
  for (const ref of operation.messages) {
    const id = ref.$ref.split('/').pop();
    const message = doc.components.messages[id];
    const schema = message.payload.$ref.split('/').pop();
    byType[operation.action].set(message.name, schema);
  }
}

async function rest(method, path, token, body) {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const raw = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${raw}`);
  return raw ? JSON.parse(raw) : null;
}

const seen = [];
function check(direction, frame) {
  const schema = byType[direction === 'client' ? 'send' : 'receive'].get(frame.type);
  seen.push({ direction, type: frame.type });
  if (!schema) return fail(`${direction} frame of type ${frame.type} is not in the document`);
  const validate = ajv.getSchema(`asyncapi#/components/schemas/${schema}`);
  if (!validate(frame)) {
    fail(`${direction} ${frame.type} does not match ${schema}: ${ajv.errorsText(validate.errors)}\n  ${JSON.stringify(frame)}`);
  }
}

class Client {
  constructor(token) {
    this.frames = [];
    this.waiters = [];
    this.socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/v1/ws?token=${token}`);
    this.socket.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      check('server', frame);
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => !w());
    });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('error', reject);
    });
  }
  send(frame) {
    check('client', frame);
    this.socket.send(JSON.stringify(frame));
  }
  /// Waits (10 s unless told) for a frame of `type` (and `where`) after the first `from` frames.
  next(type, where = () => true, from = 0, within = 10_000) {
    const find = () => this.frames.slice(from).find((f) => f.type === type && where(f));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} frame within ${within} ms`)), within);
      const done = () => {
        const found = find();
        if (found) {
          clearTimeout(timer);
          resolve(found);
        }
        return Boolean(found);
      };
      if (!done()) this.waiters.push(done);
    });
  }
}

async function scenario() {
  const password = 'correct horse battery';
  const suffix = randomUUID().slice(0, 8);
  const alice = await rest('POST', '/v1/auth/register', null, { username: `alice_${suffix}`, password });
  const bob = await rest('POST', '/v1/auth/register', null, { username: `bob_${suffix}`, password });
  const [a, b] = [alice.access_token, bob.access_token];
  const community = await rest('POST', '/v1/communities', a, { name: `Check ${suffix}`, visibility: 'public' });
  const room = await rest('POST', `/v1/communities/${community.id}/rooms`, a, { name: 'general', private: false });

  const alices = new Client(a);
  await alices.opened;
  await alices.next('ready');
  // The server reminds 30 s ahead (GUILDHALL_EVENT_REMINDER_S): this one starts in 40 s.
  const soon = new Date(Math.ceil(Date.now() / 1000) * 1000 + 40_000);
  const reminded = await rest('POST', `/v1/communities/${community.id}/events`, a, {
    title: 'Soon',
    starts_at: soon.toISOString(),
    ends_at: new Date(soon.getTime() + 900_000).toISOString(),
    timezone: 'UTC',
    room_id: room.id,
  });
  const occurrence = encodeURIComponent(reminded.starts_at);
  await rest('PUT', `/v1/events/${reminded.id}/occurrences/${occurrence}/rsvp`, a, { status: 'going' });
  alices.send({ type: 'heartbeat' });
  await alices.next('heartbeat_ack');
  await rest('POST', `/v1/communities/${community.id}/join`, b);
  await alices.next('member.joined');
  const bobs = new Client(b);
  await bobs.opened;
  await bobs.next('ready');
  await alices.next('presence', (f) => f.status === 'online');

  alices.send({ type: 'send', room_id: room.id, client_msg_id: 'c1', content: `hello @bob_${suffix}` });
  const ack = await alices.next('ack');
  await bobs.next('message.created');
  const message = ack.message;
  bobs.send({ type: 'typing', room_id: room.id });
  await alices.next('typing');
  bobs.send({ type: 'read', room_id: room.id, seq: message.seq });
  await alices.next('receipt');
  const reaction = `/v1/rooms/${room.id}/messages/${message.id}/reactions/%F0%9F%91%8D`;
  await rest('PUT', reaction, b);
  await alices.next('reaction.added');
  await rest('DELETE', reaction, b);
  await alices.next('reaction.removed');
  await rest('PATCH', `/v1/rooms/${room.id}/messages/${message.id}`, a, { content: 'hello again' });
  await alices.next('message.updated');
  await rest('PATCH', `/v1/rooms/${room.id}`, a, { topic: 'checks' });
  await alices.next('room.updated');

  const poll = await rest('POST', `/v1/rooms/${room.id}/polls`, a, { question: 'Tea?', options: ['yes', 'no'] });
  await rest('PUT', `/v1/polls/${poll.id}/vote`, b, { option_ids: [poll.options[0].id] });
  await alices.next('poll.updated');
  const survey = await rest('POST', `/v1/rooms/${room.id}/surveys`, a, {
    title: 'Lunch',
    questions: [{ kind: 'single', prompt: 'Where?', options: ['here', 'there'] }],
  });
  const question = survey.questions[0];
  await rest('POST', `/v1/surveys/${survey.id}/responses`, b, {
    answers: [{ question_id: question.id, option_ids: [question.options[0].id] }],
  });
  await alices.next('survey.updated');
  const start = new Date(Date.now() + 3_600_000);
  await rest('POST', `/v1/communities/${community.id}/events`, a, {
    title: 'Standup',
    starts_at: start.toISOString(),
    ends_at: new Date(start.getTime() + 900_000).toISOString(),
    timezone: 'UTC',
    room_id: room.id,
  });
  await alices.next('event.updated');
  await rest('DELETE', `/v1/rooms/${room.id}/messages/${message.id}`, a);
  await alices.next('message.deleted');

  alices.send({ type: 'unsubscribe', room_ids: [room.id] });
  await alices.next('unsubscribed');
  alices.send({ type: 'subscribe', room_ids: [room.id, randomUUID()] });
  await alices.next('subscribed');
  await alices.next('error', (f) => f.code === 'not_found');
  let from = alices.frames.length;
  alices.socket.send(JSON.stringify({ type: 'no_such_op' }));
  await alices.next('error', (f) => f.code === 'validation_failed', from);
  from = alices.frames.length;
  alices.send({ type: 'send', room_id: randomUUID(), client_msg_id: 'c2', content: 'nowhere' });
  await alices.next('error', (f) => f.ref === 'c2', from);

  // The server runs with GUILDHALL_RESUME_MAX_MESSAGES=2: a short gap replays, a long one does not.
  const resumer = new Client(a);
  await resumer.opened;
  await resumer.next('ready');
  resumer.send({ type: 'resume', positions: { [room.id]: 0 } });
  await resumer.next('resync_required');
  const other = await rest('POST', `/v1/communities/${community.id}/rooms`, a, { name: 'quiet', private: false });
  for (const content of ['one', 'two']) {
    await rest('POST', `/v1/rooms/${other.id}/messages`, a, { content, client_msg_id: `q-${content}` });
  }
  const replayer = new Client(a);
  await replayer.opened;
  await replayer.next('ready');
  replayer.send({ type: 'resume', positions: { [other.id]: 0 } });
  await replayer.next('message.created', (f) => f.message.seq === 2);

  bobs.socket.close();
  await alices.next('presence', (f) => f.status === 'offline');
  await rest('DELETE', `/v1/communities/${community.id}/members/${bob.user.id}`, a);
  await alices.next('member.left');
  await alices.next('event.starting', () => true, 0, 30_000);
  for (const client of [alices, resumer, replayer]) client.socket.close();
}

try {
  await scenario();
} catch (err) {
  fail(`scenario: ${err.message}`);
}
const covered = (action) => [...byType[action].keys()].filter((t) =>
  seen.some((s) => s.type === t && s.direction === (action === 'send' ? 'client' : 'server')));
for (const action of ['send', 'receive']) {
  const missing = [...byType[action].keys()].filter((t) => !covered(action).includes(t));
  console.log(
    `live ${action}: ${covered(action).length}/${byType[action].size} message types captured and valid` +
      (missing.length ? ` (not exercised: ${missing.join(', ')})` : ''),
  );
}
console.log(`live frames: ${seen.length} checked`);
finish();

function finish() {
  if (failures.length) {
    console.error(`asyncapi-check: ${failures.length} failure(s)`);
    process.exit(1);
  }
  console.log('asyncapi-check: ok');
  process.exit(0);
}
