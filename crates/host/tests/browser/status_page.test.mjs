// The status page in a real browser, as an integrator uses it while
// commissioning: headless Chromium (Debian's package, never a downloaded
// one) driven by playwright-core, against `wsio run` with the built-in demo.
//
// Run it with `bash tests/browser/run.sh`, which builds and starts the host
// and passes its address in WSIO_STATUS_URL. Every wait is Playwright's
// (a locator that appears within a timeout); nothing sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { HOST_BIN, hasExactly, openPage, sendFromForm, startHost, statusValue, step } from './support.mjs';

const URL = process.env.WSIO_STATUS_URL;
const SCREENSHOT = process.env.WSIO_SCREENSHOT || 'target/browser/status-page.png';
const TOKEN = process.env.WSIO_TEST_TOKEN || 'browser-test-token.never-shown';

test('the status page shows live status, runs actions from the manifest and logs them', { timeout: 120_000 }, async (t) => {
  assert.ok(URL, 'WSIO_STATUS_URL is not set: run this through tests/browser/run.sh');
  const { context, page, problems } = await openPage(t);
  // Every script error and every failed request is a problem, except the
  // one refusal this test provokes (listed in `refusalExpected`).
  let refusalExpected = null;
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on('response', (response) => {
    const path = new globalThis.URL(response.url()).pathname;
    if (response.status() >= 400 && path !== refusalExpected) {
      problems.push(`${response.status()} for ${response.request().method()} ${path}`);
    }
  });

  await page.goto(URL);
  await page.locator('#feed[data-feed="live"]').waitFor();

  const piesocket = page.locator('article[data-instance="piesocket"]');
  const visitor = page.locator('article[data-instance="visitor"]');
  const log = page.locator('#log');

  await step('piesocket is established, said in words as well as colour', async () => {
    await hasExactly(piesocket.locator('.connection[data-state="established"] .badge'), 'Established');
    await hasExactly(visitor.locator('.connection[data-state="established"] .badge'), 'Established');
  });

  await step('each instance shows its target, query hidden, and the wires that start from it', async () => {
    for (const instance of [piesocket, visitor]) {
      await instance.locator('code[data-target]').filter({ hasText: /^ws:\/\/127\.0\.0\.1:\d+\/v3\/1\?…$/ }).waitFor();
    }
    assert.ok(!(await page.content()).includes('api_key'), 'the query (it may hold a key) is not on the page');
    const wires = piesocket.locator('.wires li');
    assert.equal(await wires.count(), 2);
    await hasExactly(wires.nth(0), 'wire 1 WebSocket Established → piesocket: Send Message');
    await hasExactly(wires.nth(1), 'wire 2 Messages Received (Contains "ping") → piesocket: Send Message');
    assert.ok(await wires.nth(1).isVisible());
    await hasExactly(visitor.locator('.wires-none'), 'No wires start from this instance.');
  });

  await step('a message sent from visitor\'s form reaches piesocket, which answers', async () => {
    await sendFromForm(visitor, 'ping from the browser');

    await hasExactly(statusValue(visitor, 'LastSent'), 'ping from the browser');
    await hasExactly(statusValue(piesocket, 'LastReceived'), 'ping from the browser');
    await hasExactly(statusValue(piesocket, 'LastSent'), 'pong: ping from the browser');
    await hasExactly(statusValue(visitor, 'LastReceived'), 'pong: ping from the browser');

    await log
      .locator('.entry[data-kind="trigger"]', { hasText: 'piesocket · Messages Received' })
      .filter({ hasText: 'ping from the browser' })
      .first()
      .waitFor();
    await log
      .locator('.entry[data-kind="trigger"]', { hasText: 'visitor · Messages Received' })
      .filter({ hasText: 'pong: ping from the browser' })
      .first()
      .waitFor();
  });

  await step('a bearer token typed into Connect is sent, then gone from the page', async () => {
    const connect = piesocket.getByRole('form', { name: 'Connect', exact: true });
    const token = connect.getByLabel('Bearer Token', { exact: true });
    assert.equal(await token.getAttribute('type'), 'password');
    await token.fill(TOKEN);
    await token.press('Enter'); // the keyboard way: implicit submission
    await connect.locator('output[data-result="ok"]').waitFor();
    assert.equal(await token.inputValue(), '', 'the password field is cleared once sent');
    await log
      .locator('.entry[data-kind="action"]', { hasText: 'piesocket · Connect' })
      .filter({ hasText: '(secret)' })
      .first()
      .waitFor();
    const html = await page.content();
    assert.ok(!html.includes(TOKEN), 'the token is not on the page');
  });

  await step('an action the module refuses shows its error next to the form', async () => {
    const connect = visitor.getByRole('form', { name: 'Connect', exact: true });
    // A space is not allowed in a token (RFC 6750); run.sh checks that the
    // host's log never shows this one either.
    const invalid = `bad ${TOKEN}`;
    refusalExpected = '/io_modules/visitor/actions/Connect';
    await connect.getByLabel('Bearer Token', { exact: true }).fill(invalid);
    await connect.getByRole('button', { name: 'Connect', exact: true }).click();
    const error = connect.locator('output[data-result="error"]');
    await error.filter({ hasText: 'Bearer Token' }).waitFor();
    assert.ok(!(await error.textContent()).includes(TOKEN), 'the error does not echo the token');
    assert.ok(!(await page.content()).includes(TOKEN), 'the token is not on the page');
  });

  await step('Disconnect on piesocket fires Disconnected and shows why', async () => {
    await piesocket.getByRole('form', { name: 'Disconnect', exact: true }).getByRole('button', { name: 'Disconnect', exact: true }).click();
    await log.locator('.entry[data-kind="trigger"]', { hasText: 'piesocket · Disconnected' }).first().waitFor();
    await hasExactly(piesocket.locator('.connection[data-state="disconnected"] .badge'), 'Disconnected');
    // The log is newest first.
    const first = await log.locator('.entry').first().textContent();
    assert.match(first, /piesocket · Disconnected/);
  });

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  // The log column is sticky: from the top, the picture shows the page as
  // it opens.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: SCREENSHOT, fullPage: true, animations: 'disabled' });
  // And at a phone's width, where the columns stack.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-phone.png'), fullPage: true, animations: 'disabled' });
  assert.deepEqual(problems, []);
});

// A wire the host reports in an instance's `looping_wires` counter is
// marked "possibly looping" in words on the 2 s counter refresh, and the
// mark goes when the host stops reporting it. /io_modules is the host's
// own answer with that one field changed, so the demo need not loop.
test('a wire the host reports as looping is marked in words, and unmarked when it stops', { timeout: 60_000 }, async (t) => {
  assert.ok(URL, 'WSIO_STATUS_URL is not set: run this through tests/browser/run.sh');
  const { context, page, problems } = await openPage(t);
  let looping = [2];
  await page.route('**/io_modules', async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    for (const instance of body.instances) {
      if (instance.name === 'piesocket') instance.counters.looping_wires = looping;
    }
    await route.fulfill({ response, json: body });
  });
  await page.goto(URL);
  const wires = page.locator('article[data-instance="piesocket"] .wires');
  await step('wire 2 is marked possibly looping, wire 1 is not', async () => {
    await hasExactly(wires.locator('li[data-wire="2"][data-looping] .looping strong'), 'possibly looping');
    assert.equal(await wires.locator('li[data-wire="1"] .looping').count(), 0);
    assert.ok(await wires.locator('li[data-wire="2"] .looping').isVisible());
  });
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await wires.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-looping.png'), animations: 'disabled' });
  await page.setViewportSize({ width: 390, height: 844 });
  await wires.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-looping-phone.png'), animations: 'disabled' });
  await step('the mark goes once the host no longer reports the wire', async () => {
    looping = [];
    await wires.locator('li[data-wire="2"]:not([data-looping])').waitFor();
    assert.equal(await wires.locator('.looping').count(), 0);
  });
  assert.deepEqual(problems, []);
});

// The badge and the countdown come from the machine-readable status
// variables (ConnectionState, NextRetry), never from Connection Status's
// sentence. The live feed is replaced by a made-up one, so the states a
// demo cannot reach on demand are shown too.
test('the badge and the reconnect countdown follow Connection State and Next Retry', { timeout: 60_000 }, async (t) => {
  assert.ok(URL, 'WSIO_STATUS_URL is not set: run this through tests/browser/run.sh');
  const { context, page, problems } = await openPage(t);

  const now = new Date();
  const stamp = (date) => date.toISOString().replace('Z', '+00:00');
  const status = (key, label, value) => ({ key, label, value, timestamp: stamp(now) });
  const snapshot = {
    now: stamp(now),
    events: [],
    instances: [
      {
        instance: 'piesocket',
        status: [
          // A sentence the page must not read: the words disagree on purpose.
          status('ConnectionStatus', 'Connection Status', 'Established, or so this text says'),
          status('NextRetry', 'Next Retry', stamp(new Date(now.getTime() + 30_000))),
          {
            ...status('ConnectionState', 'Connection State', 'reconnecting'),
            connection: { state: 'reconnecting', text: 'Reconnecting' },
          },
        ],
      },
      {
        // As a module without Connection State would report it.
        instance: 'visitor',
        status: [status('ConnectionStatus', 'Connection Status', 'Established')],
      },
    ],
  };
  // A feed that stays open after its snapshot, as the host's does (a
  // served body would end, and an ended feed rightly makes every badge
  // Unknown).
  await page.addInitScript((snapshot) => {
    window.EventSource = class {
      constructor() {
        this.readyState = 1;
        this.listeners = {};
        setTimeout(() => {
          for (const listener of this.listeners.snapshot || []) {
            listener({ data: JSON.stringify(snapshot) });
          }
        }, 0);
      }
      addEventListener(type, listener) {
        (this.listeners[type] ||= []).push(listener);
      }
      close() {}
    };
    window.EventSource.CLOSED = 2;
  }, snapshot);
  await page.goto(URL);

  const piesocket = page.locator('article[data-instance="piesocket"] .connection');
  const visitor = page.locator('article[data-instance="visitor"] .connection');
  await step('reconnecting shows a countdown to Next Retry', async () => {
    const badge = piesocket.locator('.badge');
    await piesocket.and(page.locator('[data-state="reconnecting"]')).waitFor();
    await badge.filter({ hasText: /^Reconnecting in (29|30) s$/ }).waitFor();
    await hasExactly(piesocket.locator('.connection-detail'), 'Established, or so this text says');
  });
  await step('a module without Connection State gets an Unknown badge', async () => {
    await visitor.and(page.locator('[data-state="unknown"]')).waitFor();
    await hasExactly(visitor.locator('.badge'), 'Unknown');
    await hasExactly(visitor.locator('.connection-detail'), 'Established');
  });
  assert.deepEqual(problems, []);
});

// A badge must never stay green while the host cannot be reached: a host
// of this test's own is stopped (the live feed ends and its retries fail),
// every badge turns Unknown, and the states come back with the snapshot of
// a host started again on the same address.
test('while the host does not answer, every badge is Unknown until the feed is back', { timeout: 90_000 }, async (t) => {
  assert.ok(HOST_BIN, 'WSIO_BIN is not set: run this through tests/browser/run.sh');
  const first = await startHost('127.0.0.1:0');
  t.after(() => first.stop());
  const { context, page, problems } = await openPage(t);
  await page.goto(first.url);

  const visitor = page.locator('article[data-instance="visitor"] .connection');
  const feed = page.locator('#feed');
  await step('the feed is live and the instance established', async () => {
    await hasExactly(feed, 'Live');
    await hasExactly(visitor.locator('.badge'), 'Established');
  });
  await step('host stopped: the feed says so and the badge is Unknown', async () => {
    await first.stop();
    await hasExactly(feed, 'Host unreachable: retrying…');
    await visitor.and(page.locator('[data-state="unknown"]')).waitFor();
    await hasExactly(visitor.locator('.badge'), 'Unknown');
    await hasExactly(visitor.locator('.connection-detail'), 'not known while the host does not answer');
  });
  const second = await startHost(first.address);
  t.after(() => second.stop());
  await step('host back: a fresh snapshot shows the state again', async () => {
    await hasExactly(feed, 'Live');
    await visitor.and(page.locator('[data-state="established"]')).waitFor();
    await hasExactly(visitor.locator('.badge'), 'Established');
  });
  assert.deepEqual(problems, []);
});
