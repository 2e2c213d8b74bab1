// The Configure view's wires and startup actions: a wire is a trigger of
// one instance (with its trigger properties) and an ordered list of actions
// of any instance (with their properties); startup actions are the same
// action editor without a trigger. Each wire has a live test: the module
// itself matches a sample message and substitutes the variables into the
// wire's actions (POST /modules/<id>/triggers/<trigger>/test); nothing of
// matching is done here. The trigger's variables for the current trigger
// properties come from the module too (…/variables), and a trigger property
// the module refuses (a bad regex) is shown next to the field as it is typed.
'use strict';

import { state, el, idOf, pathKey, moduleOf, propertyFields, fillVariables, isSecretSet } from './configure-fields.js';

const keys = new WeakMap();
let nextKey = 1;
/** A key for a wire or action object that survives reordering. */
export function keyOf(object) {
  if (!keys.has(object)) keys.set(object, `k${nextKey++}`);
  return keys.get(object);
}

/** Gives `fresh` the key of `old`, so a card open before a reload stays open. */
export function adoptKey(fresh, old) {
  if (old && keys.has(old)) keys.set(fresh, keys.get(old));
}

/** Sample messages typed into the wires' tests: wire object -> {message, binary}. */
export const samples = new WeakMap();

function card(object, path, summary, body, className) {
  const key = keyOf(object);
  const details = el('details', {
    class: `card ${className}`,
    'data-path': pathKey(path),
    open: state.open.has(key) || undefined,
    ontoggle: (event) => (event.target.open ? state.open.add(key) : state.open.delete(key)),
  }, el('summary', {}, summary), el('div', { class: 'card-body' }, body));
  return details;
}

/** Move up / Move down / Remove for item `index` of `list`. */
export function listTools(list, index, what, onRemove) {
  const move = (by) => () => {
    const [item] = list.splice(index, 1);
    list.splice(index + by, 0, item);
    state.changed();
    state.rerender();
  };
  return el('div', { class: 'tools' },
    el('button', { type: 'button', class: 'quiet', disabled: index === 0 || undefined, onclick: move(-1), 'aria-label': `Move ${what} up` }, '↑ Up'),
    el('button', { type: 'button', class: 'quiet', disabled: index === list.length - 1 || undefined, onclick: move(1), 'aria-label': `Move ${what} down` }, '↓ Down'),
    el('button', {
      type: 'button',
      class: 'quiet danger',
      'aria-label': `Remove ${what}`,
      onclick: () => {
        if (onRemove) onRemove(); else list.splice(index, 1);
        state.changed();
        state.rerender();
      },
    }, 'Remove'));
}

function instanceSelect(owner, path, label, onChange) {
  const id = idOf(path);
  const names = state.project.instances.map((i) => i.name);
  if (owner.instance && !names.includes(owner.instance)) names.unshift(owner.instance);
  return el('div', { class: 'field', 'data-path': pathKey(path) },
    el('label', { for: id }, label),
    el('select', {
      id,
      'aria-describedby': `${id}-e`,
      onchange: (event) => {
        owner.instance = event.target.value;
        onChange();
        state.changed(path);
        state.rerender();
      },
    }, names.map((name) => el('option', { value: name, selected: name === owner.instance || undefined }, name))),
    el('p', { class: 'field-error', id: `${id}-e`, role: 'alert', hidden: true }));
}

function namedSelect(owner, key, path, label, specs, onChange) {
  const id = idOf(path);
  const names = specs.map((s) => s.name);
  if (owner[key] && !names.includes(owner[key])) names.unshift(owner[key]);
  const chosen = specs.find((s) => s.name === owner[key]);
  return el('div', { class: 'field', 'data-path': pathKey(path) },
    el('label', { for: id }, label),
    el('select', {
      id,
      'aria-describedby': `${id}-d ${id}-e`,
      onchange: (event) => {
        owner[key] = event.target.value;
        onChange();
        state.changed(path);
        state.rerender();
      },
    }, names.map((name) => el('option', { value: name, selected: name === owner[key] || undefined }, name))),
    el('p', { class: 'hint', id: `${id}-d` }, chosen ? chosen.description || '' : ''),
    el('p', { class: 'field-error', id: `${id}-e`, role: 'alert', hidden: true }));
}

/** One action (of a wire or the startup list) with its properties.
 * `variablesOf`: the wire index whose variables its text fields offer. */
function actionEditor(action, path, variablesOf) {
  const manifest = moduleOf(action.instance)?.manifest;
  const actions = manifest ? manifest.actions : [];
  const spec = actions.find((a) => a.name === action.action);
  return el('div', { class: 'action-editor', 'data-path': pathKey(path) },
    el('div', { class: 'pair' },
      instanceSelect(action, [...path, 'instance'], 'Instance', () => {
        const next = moduleOf(action.instance)?.manifest;
        if (next && !next.actions.some((a) => a.name === action.action)) action.action = next.actions[0]?.name || '';
        delete action.properties;
      }),
      namedSelect(action, 'action', [...path, 'action'], 'Action', actions, () => delete action.properties)),
    spec && spec.properties.length
      ? propertyFields(spec.properties, action, [...path, 'properties'], { variablesOf })
      : null);
}

function newAction() {
  const first = state.project.instances[0];
  const manifest = first && moduleOf(first.name)?.manifest;
  return { instance: first ? first.name : '', action: manifest?.actions[0]?.name || '' };
}

/** A short line for a wire's summary: `lab · Messages Received (Regex "…") → lab: Send Message`. */
function wireSummary(wire) {
  const shown = Object.entries(wire.when.properties || {})
    .filter(([, v]) => typeof v !== 'object')
    .map(([k, v]) => (k === 'Match String' ? `"${v}"` : String(v)));
  const trigger = `${wire.when.instance} · ${wire.when.trigger}${shown.length ? ` (${shown.join(', ')})` : ''}`;
  const then = wire.then.map((a) => `${a.instance}: ${a.action}`).join(', ') || 'no action yet';
  return `${trigger} → ${then}`;
}

export function wiresSection() {
  const wires = state.project.wires;
  const list = el('ol', { class: 'cards' });
  const names = state.project.instances.map((i) => i.name);
  if (state.wiresOf && !names.includes(state.wiresOf)) state.wiresOf = '';
  const filter = el('div', { class: 'field wires-filter' },
    el('label', { for: 'cfg-wires-of' }, 'Show the wires of'),
    el('select', {
      id: 'cfg-wires-of',
      onchange: (event) => {
        state.wiresOf = event.target.value;
        state.rerender();
      },
    }, el('option', { value: '' }, 'every instance'),
    names.map((name) => el('option', { value: name, selected: name === state.wiresOf || undefined }, name))));
  wires.forEach((wire, w) => {
    if (state.wiresOf && wire.when.instance !== state.wiresOf) return;
    const path = ['wires', w];
    const manifest = moduleOf(wire.when.instance)?.manifest;
    const triggers = manifest ? manifest.triggers : [];
    const trigger = triggers.find((t) => t.name === wire.when.trigger);
    const actions = el('ol', { class: 'action-list' });
    wire.then.forEach((action, a) => {
      actions.append(el('li', {},
        el('div', { class: 'item-head' }, el('h4', {}, `Action ${a + 1}`), listTools(wire.then, a, `action ${a + 1} of wire ${w + 1}`)),
        actionEditor(action, ['wires', w, 'then', a], w)));
    });
    const body = [
      listTools(wires, w, `wire ${w + 1}`),
      el('fieldset', { class: 'when' }, el('legend', {}, 'When'),
        el('div', { class: 'pair' },
          instanceSelect(wire.when, [...path, 'when', 'instance'], 'Instance', () => {
            const next = moduleOf(wire.when.instance)?.manifest;
            if (next && !next.triggers.some((t) => t.name === wire.when.trigger)) wire.when.trigger = next.triggers[0]?.name || '';
            delete wire.when.properties;
            state.variables.delete(w);
          }),
          namedSelect(wire.when, 'trigger', [...path, 'when', 'trigger'], 'Trigger', triggers, () => {
            delete wire.when.properties;
            state.variables.delete(w);
          })),
        trigger && trigger.properties.length
          ? propertyFields(trigger.properties, wire.when, [...path, 'when', 'properties'])
          : null,
        variablesLine(w)),
      el('fieldset', { class: 'then' }, el('legend', {}, 'Then, in this order'),
        wire.then.length ? actions : el('p', { class: 'hint' }, 'No action yet.'),
        el('button', {
          type: 'button',
          class: 'secondary',
          onclick: () => {
            wire.then.push(newAction());
            state.changed();
            state.rerender();
          },
        }, '+ Add action')),
      testPanel(wire, w),
    ];
    list.append(el('li', {}, card(wire, path,
      [el('span', { class: 'number' }, `wire ${w + 1}`), ' ', el('span', { class: 'summary-text', 'data-summary-of': w }, wireSummary(wire))],
      body, 'wire')));
  });
  const add = el('button', {
    type: 'button',
    class: 'secondary',
    disabled: state.project.instances.length === 0 || undefined,
    onclick: () => {
      const first = state.project.instances.find((i) => i.name === state.wiresOf) || state.project.instances[0];
      const manifest = moduleOf(first.name)?.manifest;
      const wire = {
        when: { instance: first.name, trigger: manifest?.triggers[0]?.name || '' },
        then: [newAction()],
      };
      wires.push(wire);
      state.open.add(keyOf(wire));
      state.changed();
      state.rerender();
      document.getElementById(idOf(['wires', wires.length - 1, 'when', 'instance']))?.focus();
    },
  }, '+ Add wire');
  return el('section', { class: 'config-section', 'aria-labelledby': 'cfg-wires-title' },
    el('h2', { id: 'cfg-wires-title' }, 'Wires'),
    el('p', { class: 'hint' }, 'When a trigger of an instance fires, its wires run their actions in order. <1>, <2>, … in an action property are the trigger’s variables.'),
    wires.length > 1 && names.length > 1 ? filter : null,
    list.children.length ? list : el('p', { class: 'hint' }, wires.length ? `No wire starts from ${state.wiresOf}.` : 'No wires yet.'),
    add);
}

/** Writes wire `w`'s summary line again after an edit. */
export function updateSummary(w) {
  const wire = state.project.wires[w];
  const line = document.querySelector(`[data-summary-of="${w}"]`);
  if (wire && line) line.textContent = wireSummary(wire);
}

/** "Variables: <1> Message, <2> …" under a wire's trigger. */
function variablesLine(w) {
  const line = el('p', { class: 'variables', 'data-variables-line': w, 'aria-live': 'polite' });
  showVariables(line, state.variables.get(w));
  return line;
}

function showVariables(line, known) {
  const list = (known && known.variables) || [];
  line.textContent = list.length
    ? `Variables: ${list.map((v) => `<${v.number}> ${v.name}`).join(', ')}`
    : '';
}

export function startupSection() {
  const startup = state.project.startup;
  const list = el('ol', { class: 'action-list' });
  startup.forEach((action, s) => {
    list.append(el('li', {},
      el('div', { class: 'item-head' }, el('h4', {}, `Startup ${s + 1}`), listTools(startup, s, `startup action ${s + 1}`)),
      actionEditor(action, ['startup', s])));
  });
  return el('section', { class: 'config-section', 'aria-labelledby': 'cfg-startup-title' },
    el('h2', { id: 'cfg-startup-title' }, 'Startup actions'),
    el('p', { class: 'hint' }, 'Run in order when the project starts, and for an instance that an apply adds or re-creates.'),
    startup.length ? list : el('p', { class: 'hint' }, 'No startup actions.'),
    el('button', {
      type: 'button',
      class: 'secondary',
      disabled: state.project.instances.length === 0 || undefined,
      onclick: () => {
        startup.push(newAction());
        state.changed();
        state.rerender();
      },
    }, '+ Add startup action'));
}

// ------------------------------------------------------------ variables

const pendingVariables = new Map();

/** Asks the module for wire `w`'s variables (soon, once typing pauses). */
export function refreshVariables(w, delay = 300) {
  clearTimeout(pendingVariables.get(w));
  pendingVariables.set(w, setTimeout(() => fetchVariables(w), delay));
}

async function fetchVariables(w) {
  const wire = state.project.wires[w];
  const module = wire && moduleOf(wire.when.instance);
  if (!module || !wire.when.trigger) return;
  const sent = JSON.stringify(wire.when.properties || {});
  const url = `/modules/${module.id}/triggers/${encodeURIComponent(wire.when.trigger)}/variables`;
  let known;
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ properties: withoutSecrets(wire.when.properties) }) });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) known = { variables: answer.variables || [] };
    else if (response.status === 400) known = { variables: [], error: answer.error || 'The module refuses these trigger properties.' };
    else return;
  } catch (_) {
    return;
  }
  // An answer for properties that changed since is stale.
  if (state.project.wires[w] !== wire || JSON.stringify(wire.when.properties || {}) !== sent) return;
  state.variables.set(w, known);
  applyVariables(w);
}

/** Shows what is known of wire `w`'s variables on the page as it is. */
export function applyVariables(w) {
  const known = state.variables.get(w);
  for (const select of document.querySelectorAll(`select[data-variables-of="${w}"]`)) fillVariables(select, known);
  const line = document.querySelector(`[data-variables-line="${w}"]`);
  if (line) showVariables(line, known);
  // The module's refusal goes next to the trigger property being edited
  // (Match String, most often).
  for (const old of document.querySelectorAll(`.live-error[data-wire="${w}"]`)) {
    const control = old.parentElement.querySelector('[data-property]');
    if (control) {
      control.removeAttribute('aria-invalid');
      control.removeAttribute('data-live-invalid');
      control.setAttribute('aria-describedby', control.getAttribute('aria-describedby').replace(` ${old.id}`, ''));
    }
    old.remove();
  }
  if (!known || !known.error) return;
  const base = ['wires', w, 'when', 'properties'];
  const edited = state.lastEdited && pathKey(state.lastEdited.slice(0, 4)) === pathKey(base) ? state.lastEdited : null;
  const prefix = pathKey(base).slice(0, -1) + ',';
  const target = (edited && fieldAt(edited))
    || fieldAt([...base, 'Match String'])
    || [...document.querySelectorAll('[data-path]')].find((node) => node.dataset.path.startsWith(prefix));
  if (!target) return;
  const id = `cfg-live-${w}`;
  const said = [...target.querySelectorAll(':scope > .problem')].some((p) => p.textContent.includes(known.error));
  const message = el('p', { class: 'field-error live-error', id, 'data-wire': w, role: 'alert', hidden: said || undefined }, known.error);
  target.append(message);
  const control = target.querySelector('[data-property]');
  if (control) {
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('data-live-invalid', '');
    control.setAttribute('aria-describedby', `${control.getAttribute('aria-describedby')} ${id}`);
  }
}

function fieldAt(path) {
  const key = pathKey(path);
  return [...document.querySelectorAll('[data-path]')].find((node) => node.dataset.path === key) || null;
}

export function withoutSecrets(properties) {
  const out = {};
  for (const [name, value] of Object.entries(properties || {})) {
    if (!isSecretSet(value)) out[name] = value;
  }
  return out;
}

// ------------------------------------------------------------ test

function testPanel(wire, w) {
  const sample = samples.get(wire) || { message: '', binary: false };
  samples.set(wire, sample);
  const id = idOf(['test', w]);
  const result = el('div', { class: 'test-result', id: `${id}-result`, 'aria-live': 'polite' });
  const message = el('textarea', {
    id: `${id}-message`,
    rows: 2,
    spellcheck: 'false',
    oninput: (event) => (sample.message = event.target.value),
  });
  message.value = sample.message;
  const binary = el('input', {
    id: `${id}-binary`,
    type: 'checkbox',
    checked: sample.binary || undefined,
    onchange: (event) => (sample.binary = event.target.checked),
  });
  return el('details', { class: 'test', 'data-test': w },
    el('summary', {}, 'Test this wire on a message'),
    el('div', { class: 'test-body' }, el('div', { class: 'test-input' }, el('div', { class: 'field' },
      el('label', { for: `${id}-message` }, 'Sample message'),
      message,
      el('p', { class: 'hint' }, 'The module matches it with the trigger properties above and fills the actions’ variables; nothing is sent.')),
    el('div', { class: 'field toggle' }, binary, el('label', { for: `${id}-binary` }, 'Binary message (hex digits)')),
    el('div', { class: 'tools' },
      el('button', {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          const received = await lastReceived(wire.when.instance);
          if (received === null) {
            result.replaceChildren(el('p', { class: 'error-text' }, `${wire.when.instance} has received nothing yet (or is not running).`));
            return;
          }
          message.value = received;
          sample.message = received;
        },
      }, `Use Last Received of ${wire.when.instance}`),
      el('button', { type: 'button', onclick: () => runTest(wire, sample, result) }, 'Test'))),
    result));
}

async function lastReceived(instance) {
  try {
    const response = await fetch('/io_modules');
    const body = await response.json();
    const found = (body.instances || []).find((i) => i.name === instance);
    const status = found && (found.status || []).find((s) => s.key === 'LastReceived');
    return status && status.value !== '' ? status.value : null;
  } catch (_) {
    return null;
  }
}

async function runTest(wire, sample, result) {
  const module = moduleOf(wire.when.instance);
  if (!module) {
    result.replaceChildren(el('p', { class: 'error-text' }, `No instance named ${wire.when.instance}.`));
    return;
  }
  result.replaceChildren(el('p', { class: 'hint' }, 'Testing…'));
  const url = `/modules/${module.id}/triggers/${encodeURIComponent(wire.when.trigger)}/test`;
  const body = {
    properties: withoutSecrets(wire.when.properties),
    message: sample.message,
    binary: sample.binary,
    actions: wire.then.map((a) => ({ action: a.action, properties: withoutSecrets(a.properties) })),
  };
  let answer;
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      result.replaceChildren(el('p', { class: 'error-text', 'data-test-result': 'error' }, `✕ ${answer.error || `${response.status} ${response.statusText}`}`));
      return;
    }
  } catch (error) {
    result.replaceChildren(el('p', { class: 'error-text' }, `✕ The host did not answer (${error.message})`));
    return;
  }
  const shown = [el('p', { class: answer.matched ? 'matched' : 'not-matched', 'data-test-result': answer.matched ? 'matched' : 'not-matched' },
    answer.matched ? '✓ Matches: the wire would run.' : '✕ Does not match: the wire would not run.')];
  if (answer.matched) {
    const names = answer.names || [];
    shown.push(el('table', { class: 'variables-table' },
      el('caption', {}, 'Variables'),
      el('tbody', {}, (answer.variables || []).map((value, i) => el('tr', {},
        el('th', { scope: 'row' }, `<${i + 1}>${names[i] ? ` ${names[i]}` : ''}`),
        el('td', {}, value))))));
    const actions = answer.actions || [];
    if (actions.length) {
      shown.push(el('p', { class: 'hint' }, 'The actions would run with:'),
        el('ol', { class: 'substituted' }, actions.map((action, a) => el('li', {},
          el('strong', {}, `${wire.then[a]?.instance ?? ''}: ${action.action}`),
          el('dl', {}, Object.entries(action.properties || {}).flatMap(([name, value]) => [
            el('dt', {}, name), el('dd', {}, typeof value === 'string' ? value : JSON.stringify(value))]))))));
    }
  }
  result.replaceChildren(...shown);
}
