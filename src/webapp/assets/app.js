// Guildhall reference web client: the public REST API plus the /v1/ws gateway, no framework.
// User text is only ever set with textContent, never parsed as HTML.

const $ = (id) => document.getElementById(id);
const UPCOMING_DAYS = 30;
const TYPING_EVERY_MS = 2500;

const state = {
  session: JSON.parse(sessionStorage.getItem("guildhall.session") || "null"),
  users: new Map(), // user id -> display name
  online: new Set(),
  rooms: new Map(), // room id -> {room, communityId, messages: Map(id -> message), lastSeq, unread}
  polls: new Map(), // poll id -> poll
  attachments: new Map(), // attachment id -> attachment view
  typing: new Map(), // room id -> Map(user id -> expiry ms)
  current: null, // open room id
  ws: null,
  wsReady: false,
  reconnectDelay: 500,
  lastTypingSent: 0,
  pending: new Map(), // client_msg_id -> {roomId, content}
  waitingAttachments: new Map(), // attachment id -> resolve()
};

// ---------------------------------------------------------------- REST

class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || "request failed");
    this.problem = problem;
  }
}

async function api(method, path, body, retried = false) {
  const headers = { accept: "application/json" };
  if (state.session) headers.authorization = `Bearer ${state.session.access_token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && state.session && !retried && (await refresh())) {
    return api(method, path, body, true);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({ title: response.statusText }));
  if (!response.ok) throw new ApiError(data);
  return data;
}

/** Spends the refresh token for a new pair; false (and back to login) when it is gone. */
async function refresh() {
  const response = await fetch("/v1/auth/refresh", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: state.session.refresh_token }),
  });
  if (!response.ok) {
    signOut();
    return false;
  }
  saveSession(await response.json());
  return true;
}

function saveSession(session) {
  state.session = session;
  sessionStorage.setItem("guildhall.session", JSON.stringify(session));
}

// ---------------------------------------------------------------- DOM helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value !== undefined) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function status(text, isError = false) {
  const line = $("composer-status");
  line.textContent = text;
  line.classList.toggle("error", isError);
}

function nameOf(userId) {
  if (!state.users.has(userId)) {
    state.users.set(userId, "…");
    api("GET", `/v1/users/${userId}`)
      .then((user) => {
        state.users.set(userId, user.display_name || user.username);
        renderMessages();
      })
      .catch(() => state.users.set(userId, "unknown user"));
  }
  return state.users.get(userId);
}

// ---------------------------------------------------------------- login

function showLogin() {
  $("main").hidden = true;
  $("login").hidden = false;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const action = event.submitter?.value === "register" ? "register" : "login";
  $("login-error").textContent = "";
  try {
    state.session = null;
    saveSession(
      await api("POST", `/v1/auth/${action}`, {
        username: form.get("username"),
        password: form.get("password"),
      }),
    );
    await start();
  } catch (error) {
    $("login-error").textContent = describe(error);
  }
});

$("logout").addEventListener("click", async () => {
  const refreshToken = state.session?.refresh_token;
  if (refreshToken) await api("POST", "/v1/auth/logout", { refresh_token: refreshToken }).catch(() => {});
  signOut();
});

function signOut() {
  sessionStorage.removeItem("guildhall.session");
  state.session = null;
  state.ws?.close();
  location.reload();
}

/** Field errors of a 422 listed after the detail, so the user sees which input to fix. */
function describe(error) {
  const fields = error.problem?.errors?.map((e) => `${e.field}: ${e.message}`) ?? [];
  return [error.message, ...fields].join(" — ");
}

// ---------------------------------------------------------------- communities and rooms

async function start() {
  const me = await api("GET", "/v1/users/me");
  state.users.set(me.id, me.display_name || me.username);
  $("me").textContent = me.display_name || me.username;
  $("login").hidden = true;
  $("main").hidden = false;
  await loadCommunities();
  await loadUnread();
  connect();
}

async function loadCommunities() {
  const page = await api("GET", "/v1/communities?limit=100");
  const nav = $("communities");
  nav.replaceChildren();
  for (const community of page.items) {
    const tree = await api("GET", `/v1/communities/${community.id}/tree`);
    nav.append(
      el("details", { open: true, class: "community" },
        el("summary", {}, community.name),
        renderBranch(tree, community.id)),
    );
  }
  if (!page.items.length) nav.append(el("p", {}, "You are in no community yet."));
  highlightCurrent();
}

function highlightCurrent() {
  for (const link of document.querySelectorAll("[data-room]")) {
    link.classList.toggle("active", link.dataset.room === state.current);
  }
}

/** Rooms of a node, then its groups (and their subgroups), nested the way the tree is. */
function renderBranch(node, communityId) {
  const list = el("ul", { class: "tree" });
  for (const room of node.rooms) {
    const known = state.rooms.get(room.id);
    state.rooms.set(room.id, {
      room,
      communityId,
      messages: known?.messages ?? new Map(),
      lastSeq: known?.lastSeq ?? 0,
      unread: known?.unread ?? 0,
      loaded: known?.loaded ?? false,
    });
    list.append(
      el("li", {},
        el("a", { href: `#${room.id}`, "data-room": room.id, onclick: (e) => { e.preventDefault(); openRoom(room.id); } },
          `${room.private ? "🔒 " : "# "}${room.name}`,
          el("span", { class: "badge", "data-unread": room.id }))),
    );
  }
  for (const group of node.groups) {
    list.append(el("li", { class: "group" }, el("span", { class: "group-name" }, group.name), renderBranch(group, communityId)));
  }
  return list;
}

async function loadUnread() {
  const unread = await api("GET", "/v1/unread");
  for (const entry of unread.rooms) {
    const room = state.rooms.get(entry.room_id);
    if (room) room.unread = entry.unread;
  }
  renderBadges();
}

function renderBadges() {
  for (const badge of document.querySelectorAll("[data-unread]")) {
    const room = state.rooms.get(badge.dataset.unread);
    const count = room && room.room.id !== state.current ? room.unread : 0;
    badge.textContent = count ? String(count) : "";
  }
}

async function openRoom(roomId) {
  const entry = state.rooms.get(roomId);
  const previousCommunity = state.current && state.rooms.get(state.current)?.communityId;
  state.current = roomId;
  highlightCurrent();
  $("room-name").textContent = `# ${entry.room.name}`;
  $("room-topic").textContent = entry.room.topic || "";
  $("composer").hidden = false;
  if (!entry.loaded) await loadHistory(entry);
  entry.unread = 0;
  renderBadges();
  renderMessages();
  markRead(entry);
  if (previousCommunity !== entry.communityId) {
    await Promise.all([loadMembers(entry.communityId), loadEvents(entry.communityId)]);
  }
}

async function loadHistory(entry, before) {
  const query = before ? `?before=${before}&limit=50` : "?limit=50";
  const page = await api("GET", `/v1/rooms/${entry.room.id}/messages${query}`);
  for (const message of page.messages) remember(entry, message);
  entry.loaded = true;
  entry.hasOlder = page.has_more || (!before && page.messages.length === 50);
}

$("older").addEventListener("click", async () => {
  const entry = state.rooms.get(state.current);
  const oldest = Math.min(...[...entry.messages.values()].map((m) => m.seq));
  await loadHistory(entry, oldest);
  renderMessages();
});

function remember(entry, message) {
  entry.messages.set(message.id, message);
  entry.lastSeq = Math.max(entry.lastSeq, message.seq);
  if (message.poll_id && !state.polls.has(message.poll_id)) loadPoll(message.poll_id);
  for (const attachment of message.attachments) {
    if (!state.attachments.has(attachment.id)) loadAttachment(attachment.id);
  }
}

function markRead(entry) {
  if (entry.lastSeq > 0 && state.wsReady) {
    state.ws.send(JSON.stringify({ type: "read", room_id: entry.room.id, seq: entry.lastSeq }));
  }
}

// ---------------------------------------------------------------- messages

function renderMessages() {
  const entry = state.current && state.rooms.get(state.current);
  if (!entry) return;
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const ordered = [...entry.messages.values()].sort((a, b) => a.seq - b.seq);
  const pending = [...state.pending.entries()].filter(([, p]) => p.roomId === entry.room.id);
  list.replaceChildren(
    ...ordered.map(renderMessage),
    ...pending.map(([id, p]) =>
      el("li", { class: p.failed ? "message failed" : "message pending", "data-client-msg-id": id },
        el("span", { class: "author" }, nameOf(state.session.user.id)),
        el("span", { class: "content" }, p.content),
        el("small", {}, p.failed ? ` not sent: ${p.failed}` : " sending…"))),
  );
  $("older").hidden = !entry.hasOlder;
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderMessage(message) {
  const time = new Date(message.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return el("li", { class: "message", "data-seq": message.seq, "data-id": message.id },
    el("span", { class: "author" }, nameOf(message.sender_id)),
    el("time", { datetime: message.created_at }, time),
    el("span", { class: "content" }, message.deleted ? "(deleted)" : message.content),
    message.edited_at && !message.deleted ? el("small", {}, " (edited)") : null,
    message.poll_id && !message.deleted ? renderPoll(message.poll_id) : null,
    message.attachments.map((a) => renderAttachment(a.id)));
}

function send(content, attachmentIds = []) {
  const entry = state.rooms.get(state.current);
  if (!entry || !state.wsReady) {
    status("Not connected yet; try again in a moment.", true);
    return;
  }
  const clientMsgId = crypto.randomUUID();
  state.pending.set(clientMsgId, { roomId: entry.room.id, content, attachmentIds });
  state.ws.send(JSON.stringify({
    type: "send", room_id: entry.room.id, client_msg_id: clientMsgId, content, attachment_ids: attachmentIds,
  }));
  renderMessages();
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("message-input");
  const content = input.value.trim();
  if (!content) return;
  send(content);
  input.value = "";
});

$("message-input").addEventListener("input", () => {
  const now = Date.now();
  if (state.wsReady && state.current && now - state.lastTypingSent > TYPING_EVERY_MS) {
    state.lastTypingSent = now;
    state.ws.send(JSON.stringify({ type: "typing", room_id: state.current }));
  }
});

function renderTyping() {
  const now = Date.now();
  const typers = [...(state.typing.get(state.current)?.entries() ?? [])]
    .filter(([user, until]) => until > now && user !== state.session.user.id)
    .map(([user]) => nameOf(user));
  $("typing").textContent = typers.length ? `${typers.join(", ")} ${typers.length > 1 ? "are" : "is"} typing…` : "";
}
setInterval(renderTyping, 500);

// ---------------------------------------------------------------- polls

$("new-poll").addEventListener("click", () => { $("poll-form").hidden = !$("poll-form").hidden; });

$("poll-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const options = String(form.get("options")).split("\n").map((o) => o.trim()).filter(Boolean);
  try {
    await api("POST", `/v1/rooms/${state.current}/polls`, {
      question: form.get("question"),
      options,
      multiple_choice: form.get("multiple") === "on",
      client_msg_id: crypto.randomUUID(),
    });
    event.target.reset();
    event.target.hidden = true;
    status("");
  } catch (error) {
    status(describe(error), true);
  }
});

async function loadPoll(pollId) {
  if (!state.polls.has(pollId)) state.polls.set(pollId, null);
  try {
    state.polls.set(pollId, await api("GET", `/v1/polls/${pollId}`));
  } catch {
    state.polls.delete(pollId);
  }
  renderMessages();
}

function renderPoll(pollId) {
  const poll = state.polls.get(pollId);
  if (!poll) return el("div", { class: "poll" }, "Loading poll…");
  const mine = new Set(poll.my_votes ?? []);
  return el("div", { class: "poll", "data-poll": poll.id },
    el("strong", {}, poll.question),
    poll.closed ? el("small", {}, " (closed)") : null,
    el("ul", {}, poll.options.map((option) =>
      el("li", {},
        el("button", {
          type: "button",
          class: mine.has(option.id) ? "chosen" : "",
          disabled: poll.closed,
          "data-option": option.label,
          onclick: () => vote(poll, option.id),
        }, option.label),
        el("span", { class: "votes" }, option.votes === null ? "" : ` ${option.votes}`)))),
    el("small", {}, `${poll.voter_count} voted`));
}

async function vote(poll, optionId) {
  const mine = new Set(poll.my_votes ?? []);
  if (poll.multiple_choice) {
    if (mine.has(optionId)) mine.delete(optionId);
    else mine.add(optionId);
  } else {
    mine.clear();
    mine.add(optionId);
  }
  try {
    const updated = mine.size
      ? await api("PUT", `/v1/polls/${poll.id}/vote`, { option_ids: [...mine] })
      : await api("DELETE", `/v1/polls/${poll.id}/vote`);
    if (updated) state.polls.set(poll.id, updated);
    else await loadPoll(poll.id);
    renderMessages();
  } catch (error) {
    status(describe(error), true);
  }
}

/**
 * `poll.updated` is the room-wide view: no `my_votes`, and tallies only where everyone may see
 * them. A viewer who sees more (the creator, moderators, voters after voting) asks again.
 */
function pollUpdated(poll) {
  const known = state.polls.get(poll.id);
  if (known?.results_visible && !poll.results_visible) {
    loadPoll(poll.id);
    return;
  }
  state.polls.set(poll.id, { ...poll, my_votes: poll.my_votes ?? known?.my_votes ?? null });
  renderMessages();
}

// ---------------------------------------------------------------- attachments

$("file-input").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file || !state.current) return;
  try {
    status(`Uploading ${file.name}…`);
    const ticket = await api("POST", "/v1/uploads", {
      room_id: state.current, filename: file.name, content_type: file.type, size: file.size,
    });
    const put = await fetch(ticket.upload.url, { method: "PUT", headers: ticket.upload.headers, body: file });
    if (!put.ok) throw new Error(`the storage refused the upload (${put.status})`);
    const ready = waitForAttachment(ticket.attachment_id);
    await api("POST", `/v1/uploads/${ticket.attachment_id}/complete`);
    status(`Processing ${file.name}…`);
    const attachment = await ready;
    if (attachment.status !== "ready") throw new Error(attachment.failure_reason || "processing failed");
    send(file.name, [attachment.id]);
    status("");
  } catch (error) {
    status(`Upload failed: ${describe(error)}`, true);
  }
});

/** Resolves on the attachment's `attachment.updated` once processed, or by asking after 10 s. */
function waitForAttachment(attachmentId) {
  return new Promise((resolve) => {
    const check = async () => {
      const attachment = await api("GET", `/v1/attachments/${attachmentId}`).catch(() => null);
      if (attachment && (attachment.status === "ready" || attachment.status === "failed")) done(attachment);
      else timer = setTimeout(check, 10000);
    };
    let timer = setTimeout(check, 10000);
    const done = (attachment) => {
      clearTimeout(timer);
      state.waitingAttachments.delete(attachmentId);
      resolve(attachment);
    };
    state.waitingAttachments.set(attachmentId, done);
  });
}

async function loadAttachment(attachmentId) {
  state.attachments.set(attachmentId, null);
  try {
    state.attachments.set(attachmentId, await api("GET", `/v1/attachments/${attachmentId}`));
  } catch {
    state.attachments.delete(attachmentId);
  }
  renderMessages();
}

function renderAttachment(attachmentId) {
  const attachment = state.attachments.get(attachmentId);
  if (!attachment) return el("div", { class: "attachment" }, "…");
  const thumb = attachment.variants.find((v) => v.name === "thumb_256");
  if (attachment.status === "ready" && thumb?.url) {
    return el("a", { class: "attachment", href: attachment.url || thumb.url, target: "_blank", rel: "noopener" },
      el("img", { src: thumb.url, width: thumb.width, height: thumb.height, alt: attachment.filename }));
  }
  return el("div", { class: "attachment" }, `${attachment.filename} (${attachment.status})`);
}

// ---------------------------------------------------------------- members, presence, events

async function loadMembers(communityId) {
  const page = await api("GET", `/v1/communities/${communityId}/members?limit=100`);
  for (const member of page.items) {
    state.users.set(member.user_id, member.display_name || member.username);
    if (member.online) state.online.add(member.user_id);
    else state.online.delete(member.user_id);
  }
  state.members = page.items.map((m) => m.user_id);
  renderMembers();
}

function renderMembers() {
  $("members").replaceChildren(...(state.members ?? []).map((userId) => {
    const online = state.online.has(userId);
    return el("li", { class: online ? "online" : "offline", "data-user": userId },
      el("span", { class: "dot", title: online ? "online" : "offline" }), nameOf(userId));
  }));
}

async function loadEvents(communityId) {
  const from = new Date();
  const to = new Date(from.getTime() + UPCOMING_DAYS * 86400000);
  const page = await api("GET",
    `/v1/communities/${communityId}/occurrences?from=${from.toISOString()}&to=${to.toISOString()}`);
  $("events").replaceChildren(...page.occurrences.filter((o) => !o.cancelled).slice(0, 10).map((o) =>
    el("li", { class: "event" },
      el("strong", {}, o.title),
      el("br"),
      el("time", { datetime: o.starts_at }, new Date(o.starts_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" })),
      o.my_rsvp ? el("small", {}, ` (${o.my_rsvp})`) : el("button", {
        type: "button",
        onclick: () => rsvp(o, communityId),
      }, "Going"))));
  if (!page.occurrences.length) $("events").append(el("li", {}, `Nothing in the next ${UPCOMING_DAYS} days.`));
}

async function rsvp(occurrence, communityId) {
  try {
    await api("PUT", `/v1/events/${occurrence.event_id}/occurrences/${occurrence.original_start}/rsvp`, { status: "going" });
    await loadEvents(communityId);
  } catch (error) {
    status(describe(error), true);
  }
}

// ---------------------------------------------------------------- gateway

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/ws?token=${encodeURIComponent(state.session.access_token)}`);
  state.ws = ws;
  let heartbeat;
  ws.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "ready") {
      state.wsReady = true;
      state.reconnectDelay = 500;
      heartbeat = setInterval(() => ws.send('{"type":"heartbeat"}'), frame.heartbeat_interval_ms);
      resume(ws);
      $("connection").textContent = "connected";
      $("connection").className = "up";
    }
    handle(frame);
  });
  ws.addEventListener("close", async () => {
    clearInterval(heartbeat);
    state.wsReady = false;
    $("connection").textContent = "reconnecting…";
    $("connection").className = "down";
    if (!state.session) return;
    await new Promise((r) => setTimeout(r, state.reconnectDelay));
    state.reconnectDelay = Math.min(state.reconnectDelay * 2, 15000);
    // A token that expired while connected is renewed before the next attempt.
    await api("GET", "/v1/users/me").catch(() => {});
    if (state.session) connect();
  });
}

/** Replays what each loaded room missed while disconnected (resume answers in seq order). */
function resume(ws) {
  const positions = {};
  for (const [roomId, entry] of state.rooms) {
    if (entry.loaded) positions[roomId] = entry.lastSeq;
  }
  if (Object.keys(positions).length) ws.send(JSON.stringify({ type: "resume", positions }));
  for (const [clientMsgId, pending] of state.pending) {
    if (!pending.failed) {
      ws.send(JSON.stringify({
        type: "send", room_id: pending.roomId, client_msg_id: clientMsgId, content: pending.content,
        attachment_ids: pending.attachmentIds,
      }));
    }
  }
}

function handle(frame) {
  switch (frame.type) {
    case "ack":
      state.pending.delete(frame.client_msg_id);
      messageArrived(frame.message);
      break;
    case "message.created":
    case "message.updated":
    case "message.deleted":
      messageArrived(frame.message, frame.type === "message.created");
      break;
    case "typing": {
      const room = state.typing.get(frame.room_id) ?? new Map();
      room.set(frame.user_id, Date.now() + frame.expires_in_ms);
      state.typing.set(frame.room_id, room);
      renderTyping();
      break;
    }
    case "presence":
      if (frame.status === "online") state.online.add(frame.user_id);
      else state.online.delete(frame.user_id);
      renderMembers();
      break;
    case "poll.updated":
      pollUpdated(frame.poll);
      break;
    case "attachment.updated":
      state.attachments.set(frame.attachment.id, null);
      state.waitingAttachments.get(frame.attachment.id)?.(frame.attachment);
      loadAttachment(frame.attachment.id);
      break;
    case "member.joined":
    case "member.left":
      memberChanged(frame);
      break;
    case "room.updated":
      loadCommunities().then(renderBadges);
      break;
    case "event.updated": {
      const current = state.rooms.get(state.current);
      if (current?.communityId === frame.community_id) loadEvents(frame.community_id);
      break;
    }
    case "error":
      if (frame.ref && state.pending.has(frame.ref)) {
        state.pending.get(frame.ref).failed = frame.message;
        renderMessages();
      } else {
        status(frame.message, true);
      }
      break;
    default:
      break;
  }
}

function messageArrived(message, isNew = false) {
  const entry = state.rooms.get(message.room_id);
  if (!entry) return;
  const seen = entry.messages.has(message.id);
  if (!entry.loaded && message.room_id !== state.current) {
    if (isNew && !seen && message.sender_id !== state.session.user.id) entry.unread += 1;
    entry.lastSeq = Math.max(entry.lastSeq, message.seq);
    renderBadges();
    return;
  }
  remember(entry, message);
  if (message.room_id === state.current) {
    renderMessages();
    markRead(entry);
  } else if (isNew && !seen && message.sender_id !== state.session.user.id) {
    entry.unread += 1;
    renderBadges();
  }
}

function memberChanged(frame) {
  const current = state.rooms.get(state.current);
  if (frame.user_id === state.session.user.id) loadCommunities().then(renderBadges);
  else if (current?.communityId === frame.community_id) loadMembers(frame.community_id);
}

// ---------------------------------------------------------------- boot

if (state.session) {
  start().catch(() => showLogin());
} else {
  showLogin();
}
