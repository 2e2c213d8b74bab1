// The Configure view's bar: Check (POST /project/check), Apply
// (PUT /project), Reload from disk (POST /project/reload, offered on 409),
// Save project to… (POST /project/save, for the built-in demo) and the
// unsaved-changes mark. Every error and warning the host returns has a
// `path` into the project JSON: it is shown next to the field at that path
// (or the deepest part of it the page has) and listed at the top with a
// link to the field. Nothing is applied while an error remains: the host
// refuses the whole PUT.
'use strict';

import { state, el, pathKey } from './configure-fields.js';
import { samples } from './configure-wires.js';

/** What the bar says below its buttons; kept across re-renders. */
const outcome = el('div', { class: 'outcome', id: 'cfg-outcome', 'aria-live': 'polite' });

/** Called with the fresh project after an apply, reload or save
 * (configure.js sets it). */
export const hooks = { reloaded: async () => {} };

export function isDirty() {
  return state.project !== null && JSON.stringify(state.project) !== state.baseline;
}

export function bar() {
  const file = state.project.file;
  const where = file
    ? el('p', { class: 'project-file' }, 'Project file: ', el('code', {}, file))
    : el('p', { class: 'project-file' }, 'Running the built-in demo: an apply changes what runs, but no file keeps it. ',
      el('button', { type: 'button', class: 'secondary', onclick: showSaveForm }, 'Save project to…'));
  const dirty = isDirty();
  // Two boxes: the buttons (they stay in view while editing) and what the
  // last check or apply said.
  return [
    el('div', { class: 'config-bar', role: 'region', 'aria-label': 'Check and apply' },
      el('p', { class: 'dirty', id: 'cfg-dirty', 'data-dirty': dirty ? 'yes' : 'no', role: 'status' },
        dirty ? '● Unsaved changes' : 'No unsaved changes'),
      el('div', { class: 'tools' },
        el('button', { type: 'button', class: 'secondary', id: 'cfg-check', onclick: check }, 'Check'),
        el('button', { type: 'button', id: 'cfg-apply', onclick: apply }, 'Apply'),
        el('button', {
          type: 'button',
          class: 'quiet',
          disabled: !dirty || undefined,
          onclick: async () => {
            if (!window.confirm('Discard the changes on this page and show the running project again?')) return;
            clearOutcome();
            await hooks.reloaded();
          },
        }, 'Discard changes'))),
    el('div', { class: 'config-head' }, where, outcome),
  ];
}

/** Marks the view and the tab as having unsaved changes (or not). */
export function showDirty() {
  const dirty = isDirty();
  const mark = document.getElementById('cfg-dirty');
  if (mark) {
    mark.dataset.dirty = dirty ? 'yes' : 'no';
    mark.textContent = dirty ? '● Unsaved changes' : 'No unsaved changes';
  }
  const tab = document.querySelector('#tab-configure .dirty-mark');
  if (tab) tab.hidden = !dirty;
  const discard = document.querySelector('.config-bar .tools .quiet');
  if (discard) discard.disabled = !dirty;
}

function clearOutcome() {
  outcome.replaceChildren();
  state.problems = { errors: [], warnings: [] };
}

/** The project as the host takes it: without the page-only `file`. */
function body(extra) {
  const { file: _file, ...project } = state.project;
  return JSON.stringify({ ...project, ...extra });
}

function testSamples() {
  const list = [];
  state.project.wires.forEach((wire, w) => {
    const sample = samples.get(wire);
    if (sample && sample.message !== '') list.push({ wire: w + 1, message: sample.message, binary: sample.binary });
  });
  return list;
}

async function request(method, url, text) {
  try {
    const response = await fetch(url, { method, headers: { 'Content-Type': 'application/json' }, body: text });
    const answer = await response.json().catch(() => ({}));
    return { status: response.status, answer };
  } catch (error) {
    return { status: 0, answer: { error: `The host did not answer (${error.message})` } };
  }
}

function busy(on) {
  for (const id of ['cfg-check', 'cfg-apply']) {
    const button = document.getElementById(id);
    if (button) button.disabled = on;
  }
}

// ------------------------------------------------------------ check

let liveTimer = null;
/** Bumped by every check and apply: a check answered after a newer
 * request was sent is stale and dropped. */
let generation = 0;

/** Every edit checks the project again once typing pauses, so each field
 * is validated by the host as it is typed (the manifest's validators,
 * every load-time check, the loop warning) and a fixed error goes away. */
export function recheckSoon() {
  clearTimeout(liveTimer);
  if (!isDirty() && !state.problems.errors.length && !state.problems.warnings.length) return;
  liveTimer = setTimeout(() => check({ quiet: true }), 700);
}

async function check(options = {}) {
  const quiet = options.quiet === true;
  clearTimeout(liveTimer);
  const mine = ++generation;
  if (!quiet) busy(true);
  const { status, answer } = await request('POST', '/project/check', body({ samples: testSamples() }));
  if (!quiet) busy(false);
  if (mine !== generation) return;
  if (status === 200 || status === 400) {
    showProblems(answer.errors || [], answer.warnings || [], answer.errors && answer.errors.length
      ? null
      : el('p', { class: 'ok-text', 'data-outcome': 'checked' }, '✓ No errors: Apply would be accepted.'));
  } else {
    outcome.replaceChildren(el('p', { class: 'error-text', 'data-outcome': 'failed' }, `✕ ${answer.error || `The check failed (${status}).`}`));
  }
}

// ------------------------------------------------------------ apply

async function apply() {
  clearTimeout(liveTimer);
  generation++;
  busy(true);
  const { status, answer } = await request('PUT', '/project', body());
  busy(false);
  if (status === 200) {
    const applied = answer.applied || {};
    const line = (label, names) => el('li', {}, el('strong', {}, `${label}: `), names && names.length ? names.join(', ') : 'none');
    const saved = answer.saved
      ? el('p', {}, 'Saved to ', el('code', {}, answer.saved), '.')
      : el('p', {}, 'Not saved to a file: the host runs the built-in demo. Use “Save project to…” to keep it.');
    await hooks.reloaded();
    showProblems([], answer.warnings || [], [
      el('p', { class: 'ok-text', 'data-outcome': 'applied' }, '✓ Applied.'),
      el('ul', { class: 'applied' },
        line('Added', applied.added),
        line('Changed (re-created)', applied.changed),
        line('Removed', applied.removed),
        line('Unchanged (kept connected)', applied.unchanged)),
      saved,
    ]);
    document.dispatchEvent(new CustomEvent('wsio:project-applied'));
  } else if (status === 400 && answer.errors) {
    showProblems(answer.errors, answer.warnings || [], null, 'nothing was applied.');
  } else if (status === 409) {
    offerReload(answer.error || 'The project file changed on disk since it was loaded.');
  } else {
    outcome.replaceChildren(el('p', { class: 'error-text', 'data-outcome': 'failed' }, `✕ Nothing was applied: ${answer.error || `the host answered ${status}`}`));
  }
}

function offerReload(message) {
  outcome.replaceChildren(
    el('p', { class: 'error-text', 'data-outcome': 'conflict' }, `✕ ${message}`),
    el('p', {}, 'Reloading runs the file as it is now; the changes on this page are lost. ',
      el('button', {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          const { status, answer } = await request('POST', '/project/reload', '{}');
          if (status === 200) {
            await hooks.reloaded();
            outcome.replaceChildren(el('p', { class: 'ok-text', 'data-outcome': 'reloaded' }, '✓ Reloaded from disk.'));
          } else if (answer.errors) {
            showProblems(answer.errors, answer.warnings || [], null, 'the file on disk was not reloaded.');
          } else {
            outcome.replaceChildren(el('p', { class: 'error-text' }, `✕ ${answer.error || status}`));
          }
        },
      }, 'Reload from disk')));
}

// ------------------------------------------------------------ save

function showSaveForm() {
  const input = el('input', { id: 'cfg-save-path', type: 'text', value: 'project.toml', spellcheck: 'false', 'aria-describedby': 'cfg-save-hint' });
  const result = el('p', { 'aria-live': 'polite' });
  const save = async (overwrite) => {
    if (isDirty()) {
      result.replaceChildren(el('span', { class: 'error-text' }, 'Apply or discard the changes first: Save writes the project that runs.'));
      return;
    }
    const { status, answer } = await request('POST', '/project/save', JSON.stringify({ path: input.value, overwrite }));
    if (status === 200) {
      await hooks.reloaded();
      outcome.replaceChildren(el('p', { class: 'ok-text', 'data-outcome': 'saved' }, '✓ Saved to ', el('code', {}, answer.saved || state.project.file || input.value),
        '. From now on, Apply writes to this file.'));
    } else if (status === 409) {
      result.replaceChildren(el('span', { class: 'error-text' }, `✕ ${answer.error || 'That file exists.'} `),
        el('button', { type: 'button', class: 'secondary', onclick: () => save(true) }, 'Overwrite it'));
    } else {
      result.replaceChildren(el('span', { class: 'error-text' }, `✕ ${answer.error || status}`));
    }
  };
  outcome.replaceChildren(el('form', {
    class: 'save-form',
    onsubmit: (event) => {
      event.preventDefault();
      save(false);
    },
  },
  el('label', { for: 'cfg-save-path' }, 'Save the running project to'),
  input,
  el('button', { type: 'submit' }, 'Save'),
  el('p', { class: 'hint', id: 'cfg-save-hint' }, 'A path on the host (relative to where wsio was started). An existing file is not replaced unless you say so.'),
  result));
  input.focus();
}

// ------------------------------------------------------------ problems

/** Lists `errors` and `warnings` at the top (with links) and puts each
 * next to its field. */
function showProblems(errors, warnings, lead, refusal) {
  state.problems = { errors, warnings };
  const parts = lead ? [lead].flat() : [];
  if (errors.length) {
    parts.push(el('p', { class: 'error-text', 'data-outcome': 'errors' },
      `✕ ${errors.length === 1 ? '1 error' : `${errors.length} errors`}: ${refusal || 'Apply would be refused.'} Fix ${errors.length === 1 ? 'it' : 'them'} first:`));
    parts.push(problemList(errors, 'errors'));
  }
  if (warnings.length) {
    parts.push(el('p', { class: 'warning-text' }, `⚠ ${warnings.length === 1 ? '1 warning' : `${warnings.length} warnings`} (they do not stop an apply):`));
    parts.push(problemList(warnings, 'warnings'));
  }
  outcome.replaceChildren(...parts);
  placeProblems();
}

function problemList(problems, kind) {
  return el('ul', { class: `problems ${kind}` }, problems.map((problem) => {
    const target = deepest(problem.path || [], problem.message);
    const id = target ? focusable(target)?.id : null;
    // The host's messages mostly start where they are ("wire 3: …"), as
    // wsio run prints them; `at` is added only when they do not.
    const where = problem.at ? problem.at.split(',')[0] : '';
    const text = where && !problem.message.startsWith(where) ? `${problem.at}: ${problem.message}` : problem.message;
    return el('li', {}, id
      ? el('a', { href: `#${id}`, onclick: (event) => { event.preventDefault(); reveal(document.getElementById(id)); } }, text)
      : text);
  }));
}

/** The element for the deepest part of `path` the page shows. A path
 * that stops at a set of properties (the module refused them as a whole)
 * means the property its message names, when it names one. */
function deepest(path, message = '') {
  for (let length = path.length; length > 0; length--) {
    const key = pathKey(path.slice(0, length));
    const found = [...document.querySelectorAll('[data-path]')].find((node) => node.dataset.path === key);
    if (found && found.classList.contains('properties')) {
      const named = [...found.querySelectorAll(':scope [data-property]')]
        .filter((control) => message.includes(control.dataset.property))
        .sort((a, b) => b.dataset.property.length - a.dataset.property.length)[0];
      return named ? named.closest('[data-path]') : found;
    }
    if (found) return found;
  }
  return null;
}

function focusable(target) {
  if (target.matches('details')) return target.querySelector(':scope > summary');
  return target.querySelector('input, select, textarea') || target;
}

function reveal(node) {
  if (!node) return;
  for (let parent = node.parentElement; parent; parent = parent.parentElement) {
    if (parent.tagName === 'DETAILS') parent.open = true;
  }
  node.scrollIntoView({ block: 'center' });
  node.focus();
}

/** Puts the known problems next to their fields (after every render). */
export function placeProblems() {
  for (const old of document.querySelectorAll('#configure-view .problem')) old.remove();
  for (const control of document.querySelectorAll('#configure-view [aria-invalid="true"]:not([data-live-invalid])')) control.removeAttribute('aria-invalid');
  const place = (problem, kind) => {
    const target = deepest(problem.path || [], problem.message);
    if (!target) return;
    const message = el('p', { class: `problem ${kind}`, role: kind === 'error' ? 'alert' : undefined },
      `${kind === 'error' ? '✕' : '⚠'} ${problem.message}`);
    if (target.matches('details')) {
      target.open = true;
      target.querySelector(':scope > .card-body').prepend(message);
      return;
    }
    const slot = target.querySelector(':scope > .field-error');
    if (slot) slot.before(message); else target.append(message);
    // The module's own refusal shown while typing says the same.
    for (const live of target.querySelectorAll(':scope > .live-error')) {
      if (problem.message.includes(live.textContent)) live.hidden = true;
    }
    const control = target.querySelector(':scope > input, :scope > select, :scope > textarea');
    if (control && kind === 'error') control.setAttribute('aria-invalid', 'true');
    if (control && !message.id) {
      message.id = `${control.id}-p${Math.random().toString(36).slice(2, 7)}`;
      control.setAttribute('aria-describedby', `${control.getAttribute('aria-describedby') || ''} ${message.id}`.trim());
    }
    for (let parent = target.parentElement; parent; parent = parent.parentElement) {
      if (parent.tagName === 'DETAILS' && !parent.classList.contains('test')) parent.open = true;
    }
  };
  for (const error of state.problems.errors) place(error, 'error');
  for (const warning of state.problems.warnings) place(warning, 'warning');
}

