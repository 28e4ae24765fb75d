// End-to-end: the reference web client (/app) in Debian's headless Chromium, two browser
// contexts (two users) chatting through a live Guildhall with real S3 and the media Lambda.
//
//   GUILDHALL_URL=http://127.0.0.1:8080 GUILDHALL_E2E_OUT=/tmp/out node tests/web/chat.mjs
//
// Fails (exit 1) on any missed step, any uncaught page error or CSP violation, and any request
// to a host other than the server's and its object storage (the page loads nothing from a CDN).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.GUILDHALL_URL ?? "http://127.0.0.1:8080";
const OUT = process.env.GUILDHALL_E2E_OUT ?? "/tmp/guildhall-e2e";
const CHROMIUM = process.env.GUILDHALL_CHROMIUM ?? "/usr/bin/chromium";
const STEP_TIMEOUT_MS = 20000;
const PASSWORD = "correct-horse-battery-staple";

async function rest(method, path, token, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Two users, a public community with a group and a room, a poll and a weekly event. */
async function seed() {
  const tag = randomBytes(3).toString("hex");
  const register = (name) => rest("POST", "/v1/auth/register", null, { username: `${name}_${tag}`, password: PASSWORD, display_name: `${name} ${tag}` });
  const ann = await register("ann");
  const ben = await register("ben");
  const community = await rest("POST", "/v1/communities", ann.access_token, { name: `E2E ${tag}`, visibility: "public" });
  const group = await rest("POST", `/v1/communities/${community.id}/groups`, ann.access_token, { name: "Town square" });
  const room = await rest("POST", `/v1/communities/${community.id}/rooms`, ann.access_token, { name: "general", group_id: group.id });
  await rest("POST", `/v1/communities/${community.id}/join`, ben.access_token, {});
  await rest("POST", `/v1/rooms/${room.id}/polls`, ann.access_token, { question: "Lunch?", options: ["Pizza", "Soup"] });
  const start = new Date(Date.now() + 3600_000);
  start.setUTCSeconds(0, 0);
  await rest("POST", `/v1/communities/${community.id}/events`, ann.access_token, {
    title: "Weekly sync",
    starts_at: start.toISOString(),
    ends_at: new Date(start.getTime() + 3600_000).toISOString(),
    timezone: "UTC",
    rrule: "FREQ=WEEKLY;COUNT=4",
  });
  return { ann, ben, room };
}

/** A page that records what must not happen: page errors, CSP refusals, foreign requests. */
async function openPage(browser, problems, label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const allowed = new Set([new URL(BASE).host, ...(process.env.GUILDHALL_E2E_S3_HOSTS ?? "").split(",").filter(Boolean)]);
  page.on("pageerror", (error) => problems.push(`${label}: page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") {
      problems.push(`${label}: console error: ${message.text()}`);
    }
  });
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (!["data:", "blob:"].includes(url.protocol) && !allowed.has(url.host)) {
      problems.push(`${label}: request to a foreign host: ${request.url()}`);
    }
  });
  return { context, page };
}

async function logIn(page, user) {
  await page.goto(`${BASE}/app`);
  await page.fill('input[name="username"]', user.user.username);
  await page.fill('input[name="password"]', PASSWORD);
  await page.click('button[value="login"]');
  await page.locator("#me", { hasText: user.user.display_name }).waitFor();
  await page.locator("#connection.up").waitFor();
}

async function openRoom(page, room) {
  await page.locator(".group-name", { hasText: "Town square" }).waitFor();
  await page.click(`a[data-room="${room.id}"]`);
  await page.locator("#room-name", { hasText: "# general" }).waitFor();
}

const contents = (page) => page.$$eval("#messages li.message[data-seq]", (items) =>
  items.map((li) => ({ seq: Number(li.dataset.seq), text: li.querySelector(".content").textContent })));

async function waitForMessage(page, text) {
  await page.locator("#messages li.message[data-seq]", { hasText: text }).waitFor();
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const { ann, ben, room } = await seed();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-quic", "--disable-component-update", "--disable-sync"],
  });
  const problems = [];
  try {
    const a = await openPage(browser, problems, "ann");
    const b = await openPage(browser, problems, "ben");
    await logIn(a.page, ann);
    await logIn(b.page, ben);
    await openRoom(a.page, room);
    await openRoom(b.page, room);
    console.log("ok: both logged in, community tree shows the group and the room");

    await a.page.locator(`#members li.online[data-user="${ben.user.id}"]`).waitFor();
    await b.page.locator(`#members li.online[data-user="${ann.user.id}"]`).waitFor();
    console.log("ok: each sees the other online");

    await a.page.type("#message-input", "hel");
    await b.page.locator("#typing", { hasText: `${ann.user.display_name} is typing` }).waitFor();
    console.log("ok: typing shows up on the other side");

    await a.page.fill("#message-input", "hello from ann");
    await a.page.press("#message-input", "Enter");
    await waitForMessage(b.page, "hello from ann");
    await b.page.fill("#message-input", "hi from ben");
    await b.page.press("#message-input", "Enter");
    await waitForMessage(a.page, "hi from ben");
    for (const page of [a.page, b.page]) {
      await waitForMessage(page, "hi from ben");
      const seen = (await contents(page)).filter((m) => m.text.endsWith(" from ann") || m.text.endsWith(" from ben"));
      assert.deepEqual(seen.map((m) => m.text), ["hello from ann", "hi from ben"]);
      assert.ok(seen[0].seq < seen[1].seq, `seq order: ${JSON.stringify(seen)}`);
    }
    console.log("ok: messages arrive live, in seq order, on both sides");

    await b.page.click('.poll button[data-option="Pizza"]');
    await b.page.locator('.poll button.chosen[data-option="Pizza"]').waitFor();
    await a.page.locator(".poll small", { hasText: "1 voted" }).waitFor();
    const tally = await a.page.$eval('.poll button[data-option="Pizza"] + .votes', (span) => span.textContent.trim());
    assert.equal(tally, "1");
    console.log("ok: ben's vote reaches ann's live tally");

    for (const page of [a.page, b.page]) await page.locator("#events li.event", { hasText: "Weekly sync" }).first().waitFor();
    assert.equal(await a.page.locator("#events li.event").count(), 4);
    console.log("ok: upcoming events listed (4 weekly occurrences)");

    const image = await a.page.screenshot({ type: "png" });
    await a.page.setInputFiles("#file-input", { name: "screen.png", mimeType: "image/png", buffer: image });
    for (const page of [a.page, b.page]) {
      const thumb = page.locator('#messages a.attachment img[alt="screen.png"]');
      await thumb.waitFor({ timeout: 60000 });
      await page.waitForFunction(() => {
        const img = document.querySelector('#messages a.attachment img[alt="screen.png"]');
        return img && img.complete && img.naturalWidth > 0;
      }, null, { timeout: 30000 });
      const width = await thumb.evaluate((img) => img.naturalWidth);
      assert.equal(width, 256, "thumb_256 of a 1280x800 screenshot");
    }
    console.log("ok: image uploaded to S3, processed by the Lambda, thumbnail shown on both sides");

    for (const [name, page] of [["ann", a.page], ["ben", b.page]]) {
      const file = join(OUT, `web-client-${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      assert.ok(statSync(file).size > 10000, `${file} is too small to be a screenshot`);
      console.log(`ok: screenshot ${file}`);
    }

    await b.context.close();
    await a.page.locator(`#members li.offline[data-user="${ben.user.id}"]`).waitFor();
    console.log("ok: ben closing his window shows him offline to ann");
  } finally {
    await browser.close();
  }
  assert.deepEqual(problems, [], "the pages raised no errors and loaded nothing from elsewhere");
  console.log("web client e2e: all steps passed");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
