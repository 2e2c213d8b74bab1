// The Configure view in a real browser, as an integrator commissions a
// site: add an instance, wire a trigger to an action, test the wire on a
// sample message, apply, and see it work; a bad regex and a runaway wire
// caught before anything changes. Each test runs a `wsio run` demo host of
// its own (the status page tests share run.sh's host and must not see
// these changes). Run with `bash tests/browser/run.sh`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HOST_BIN, hasExactly, openPage, sendFromForm, startHost, statusValue, step } from './support.mjs';

const SHOTS = dirname(process.env.WSIO_SCREENSHOT || 'target/browser/status-page.png');

/** Screenshots of the whole page at 1400 and 420 px wide, from the top:
 * `<name>.png` and `<name>-phone.png`. */
async function screenshots(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  for (const [width, suffix] of [[1400, ''], [420, '-phone']]) {
    await page.setViewportSize({ width, height: 900 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, `${name}${suffix}.png`), fullPage: true, animations: 'disabled' });
  }
  await page.setViewportSize({ width: 1400, height: 900 });
}

/** A demo host of the test's own and the page open on its Configure view;
 * `refusals`: paths whose 400 answers the test provokes. */
async function configure(t, refusals = []) {
  assert.ok(HOST_BIN, 'WSIO_BIN is not set: run this through tests/browser/run.sh');
  const host = await startHost('127.0.0.1:0');
  t.after(() => host.stop());
  const { page, problems } = await openPage(t, { width: 1400, height: 900 });
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on('response', (response) => {
    const path = new globalThis.URL(response.url()).pathname;
    // A check of an unfinished project answers 400 with its errors: the
    // page checks as the user types.
    const expected = [400, 409].includes(response.status())
      && [...refusals, '/project/check'].some((end) => path.endsWith(end));
    if (response.status() >= 400 && !expected) problems.push(`${response.status()} for ${response.request().method()} ${path}`);
  });
  const project = async () => (await fetch(`${host.url}project`)).json();
  await page.goto(`${host.url}#configure`);
  await page.locator('#cfg-apply').waitFor();
  return { host, page, problems, project };
}

/** Adds an instance named `name` to the demo server's channel `channel`
 * (echoing our own messages back) and returns its card. */
async function addInstance(page, project, name, channel) {
  const demo = (await project()).instances.find((i) => i.name === 'piesocket').properties;
  await page.getByLabel('Name of the new instance').fill(name);
  await page.getByRole('button', { name: '+ Add instance' }).click();
  const card = page.locator('details.instance-card').filter({ has: page.locator('summary .name', { hasText: new RegExp(`^${name}$`) }) });
  await card.getByLabel('Hostname').fill(String(demo.Hostname));
  await card.getByLabel('Port', { exact: true }).fill(String(demo.Port));
  await card.getByLabel('Path', { exact: true }).fill(`/v3/${channel}?api_key=demo&notify_self=1`);
  return card;
}

/** Adds a wire on `instance`'s Messages Received with these trigger
 * properties, whose first action is `instance`'s Send Message; returns the
 * wire's card. */
async function addMessageWire(page, instance, mode, match) {
  await page.getByRole('button', { name: '+ Add wire' }).click();
  const wire = page.locator('details.wire').last();
  const when = wire.locator('fieldset.when');
  await when.getByLabel('Instance').selectOption(instance);
  await when.getByLabel('Trigger').selectOption('Messages Received');
  await when.getByLabel('Match Mode').selectOption(mode);
  await when.getByLabel('Match String').fill(match);
  const action = wire.locator('fieldset.then li').first();
  await action.getByLabel('Instance').selectOption(instance);
  await action.getByLabel('Action', { exact: true }).selectOption('Send Message');
  return wire;
}

test('a new instance, wired Regex capture → Send Message <2>, tested, applied, answers, saved', { timeout: 150_000 }, async (t) => {
  const { host, page, problems, project } = await configure(t, ['/project']);

  await step('the view shows the running project and says it is the built-in demo', async () => {
    assert.equal(await page.locator('details.instance-card').count(), 2);
    await page.getByText('Running the built-in demo').waitFor();
    await hasExactly(page.locator('#cfg-dirty'), 'No unsaved changes');
  });

  await step('add the instance "lab" on channel 7 of the demo server', async () => {
    await addInstance(page, project, 'lab', 7);
    await hasExactly(page.locator('#cfg-dirty'), '● Unsaved changes');
    await page.locator('#tab-configure .dirty-mark').waitFor();
  });

  const wire = await addMessageWire(page, 'lab', 'Regex', '^room (\\w+)$');
  const message = wire.locator('fieldset.then li').first().getByLabel('Message', { exact: true });

  await step('the placeholder picker names the variables of the regex and inserts <2>', async () => {
    await hasExactly(wire.locator('.variables'), 'Variables: <1> Message, <2> regex group 1, <3> Message Type');
    await message.fill('');
    const picker = wire.getByRole('combobox', { name: 'Insert a trigger variable into Message' });
    await picker.locator('option', { hasText: '<2> regex group 1' }).waitFor({ state: 'attached' });
    await picker.selectOption('2');
    assert.equal(await message.inputValue(), '<2>');
  });

  await step('lab connects at startup', async () => {
    await page.getByRole('button', { name: '+ Add startup action' }).click();
    const startup = page.locator('#cfg-startup-title ~ .action-list > li').last();
    await startup.getByLabel('Instance').selectOption('lab');
    await startup.getByLabel('Action', { exact: true }).selectOption('Connect');
  });

  await step('the live test matches a sample and shows Message after substitution', async () => {
    await wire.getByText('Test this wire on a message').click();
    await wire.getByLabel('Sample message').fill('room kitchen');
    await wire.getByRole('button', { name: 'Test', exact: true }).click();
    await hasExactly(wire.locator('[data-test-result="matched"]'), '✓ Matches: the wire would run.');
    await hasExactly(wire.locator('.variables-table tr', { hasText: '<2>' }).locator('td'), 'kitchen');
    await hasExactly(wire.locator('.substituted dd').first(), 'kitchen');
    await wire.getByLabel('Sample message').fill('hall kitchen');
    await wire.getByRole('button', { name: 'Test', exact: true }).click();
    await wire.locator('[data-test-result="not-matched"]').waitFor();
    await wire.getByLabel('Sample message').fill('room kitchen');
    await wire.getByRole('button', { name: 'Test', exact: true }).click();
    await wire.locator('[data-test-result="matched"]').waitFor();
  });
  await screenshots(page, 'configure');
  // The README's picture: the wire and its test, as a laptop shows them
  // below the bar (docs/configure.png is this, through pngquant).
  await page.setViewportSize({ width: 1240, height: 1150 });
  await wire.evaluate((card) => window.scrollTo(0, card.getBoundingClientRect().top + window.scrollY - 70));
  await page.screenshot({ path: join(SHOTS, 'configure-wire.png'), animations: 'disabled' });
  await page.setViewportSize({ width: 1400, height: 900 });

  await step('apply: lab is added, the demo instances are kept', async () => {
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('[data-outcome="applied"]').waitFor();
    await hasExactly(page.locator('.applied li', { hasText: 'Added' }), 'Added: lab');
    await hasExactly(page.locator('.applied li', { hasText: 'Unchanged' }), 'Unchanged (kept connected): piesocket, visitor');
    await hasExactly(page.locator('#cfg-dirty'), 'No unsaved changes');
    const running = await project();
    assert.deepEqual(running.instances.map((i) => i.name), ['piesocket', 'visitor', 'lab']);
    const added = running.wires.at(-1);
    assert.deepEqual(added.when, { instance: 'lab', trigger: 'Messages Received', properties: { 'Match Mode': 'Regex', 'Match String': '^room (\\w+)$' } });
    assert.equal(added.then[0].properties.Message, '<2>');
  });
  await screenshots(page, 'configure-applied');

  await step('on the status view, lab hears "room kitchen" and its wire answers "kitchen"', async () => {
    await page.getByRole('link', { name: 'Status' }).click();
    const lab = page.locator('article[data-instance="lab"]');
    await hasExactly(lab.locator('.connection .badge'), 'Established');
    await sendFromForm(lab, 'room kitchen');
    // The echo of "room kitchen" fires the wire, which sends "kitchen",
    // whose echo is the last message lab receives.
    await hasExactly(statusValue(lab, 'LastSent'), 'kitchen');
    await hasExactly(statusValue(lab, 'LastReceived'), 'kitchen');
  });
  await screenshots(page, 'status-after-apply');

  const file = join(mkdtempSync(join(tmpdir(), 'wsio-configure-')), 'lab.toml');
  await step('the demo is saved to a file, which is the project file from then on', async () => {
    await page.getByRole('link', { name: 'Configure', exact: false }).click();
    await page.getByRole('button', { name: 'Save project to…' }).click();
    await page.getByLabel('Save the running project to').fill(file);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('[data-outcome="saved"]').waitFor();
    await hasExactly(page.locator('.project-file code'), file);
    assert.equal((await project()).file, file);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(readFileSync(file, 'utf8'), /name = "lab"/);
  });

  await step('an apply after the file changed on disk is refused; Reload from disk runs the file', async () => {
    appendFileSync(file, '\n# edited by hand while the page was open\n');
    const greeting = page.locator('details.wire').first();
    await greeting.locator(':scope > summary').click();
    await greeting.locator('fieldset.then li').first().getByLabel('Message', { exact: true }).fill('hello again');
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('[data-outcome="conflict"]').waitFor();
    await page.getByRole('button', { name: 'Reload from disk' }).click();
    await page.locator('[data-outcome="reloaded"]').waitFor();
    await hasExactly(page.locator('#cfg-dirty'), 'No unsaved changes');
    assert.equal(await greeting.locator('fieldset.then li').first().getByLabel('Message', { exact: true }).inputValue(), 'hello from wsio');
  });
  assert.deepEqual(problems, []);
  await host.stop();
});

test('a bad regex is shown next to Match String as it is typed, and nothing is applied', { timeout: 90_000 }, async (t) => {
  const { page, problems, project } = await configure(t, ['/variables', '/project']);
  const before = await project();
  const wire = await addMessageWire(page, 'piesocket', 'Regex', 'room (\\w+');
  await wire.locator('fieldset.then li').first().getByLabel('Message', { exact: true }).fill('<2>');
  const matchString = wire.locator('fieldset.when .field', { has: page.getByLabel('Match String') });

  await step('the module\'s refusal appears under Match String while typing', async () => {
    // From /variables at once, then from the live check (which says the
    // same with the wire's number, and takes its place).
    await matchString.locator('.live-error, .problem.error').filter({ hasText: /regular expression/ }).first().waitFor();
    assert.equal(await wire.getByLabel('Match String').getAttribute('aria-invalid'), 'true');
  });

  await step('Apply is refused: the error is next to Match String and listed at the top with a link', async () => {
    await page.getByRole('button', { name: 'Apply', exact: true }).click();
    await page.locator('[data-outcome="errors"]').filter({ hasText: 'nothing was applied' }).waitFor();
    await matchString.locator('.problem.error').filter({ hasText: /regular expression/ }).waitFor();
    const link = page.locator('.problems.errors a').filter({ hasText: 'Match String' });
    await link.click();
    assert.equal(await page.evaluate(() => document.activeElement.getAttribute('name')), 'Match String');
    assert.deepEqual(await project(), before, 'GET /project is unchanged');
  });
  await screenshots(page, 'configure-bad-regex');

  await step('fixing the regex clears the error as it is typed', async () => {
    await wire.getByLabel('Match String').fill('room (\\w+)');
    await matchString.locator('.problem, .live-error').first().waitFor({ state: 'detached' });
    assert.equal(await matchString.locator('.problem, .live-error').count(), 0);
  });
  assert.deepEqual(problems, []);
});

test('the runaway wire (Contains "temp" → Send Message "got <1>" on an echo) is warned about, not refused', { timeout: 90_000 }, async (t) => {
  const { page, problems, project } = await configure(t);
  await addInstance(page, project, 'echo', 9);
  const wire = await addMessageWire(page, 'echo', 'Contains', 'temp');
  await wire.locator('fieldset.then li').first().getByLabel('Message', { exact: true }).fill('got <1>');
  // What the server would send: Check tests the wire on it too.
  await wire.getByText('Test this wire on a message').click();
  await wire.getByLabel('Sample message').fill('temp 21');

  await step('Check finds no error and one warning naming the loop, shown at the wire', async () => {
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    await page.locator('[data-outcome="checked"]').waitFor();
    const warning = page.locator('.problems.warnings li').filter({ hasText: /loop/ });
    await warning.waitFor();
    assert.equal(await page.locator('.problems.errors').count(), 0);
    await wire.locator('.problem.warning').filter({ hasText: /loop/ }).first().waitFor();
  });
  await screenshots(page, 'configure-loop-warning');
  assert.deepEqual(problems, []);
});
