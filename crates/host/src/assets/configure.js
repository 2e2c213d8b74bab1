// The Configure view (the "Configure" tab, `#configure`): the running
// project from GET /project, edited in the browser with the editors the
// modules' manifests (GET /modules) declare, then checked and applied
// through the project API. This file switches views, loads the project and
// the modules, renders the instances, and keeps the unsaved-changes mark;
// configure-fields.js has the property editors, configure-wires.js the
// wires, startup actions and live test, configure-apply.js the bar
// (Check, Apply, Reload, Save) and where errors are shown.
//
// Rendering is plain DOM from the edited JSON: an edit changes the JSON at
// once; a change of structure (add, remove, move, another trigger) renders
// the view again, keeping open cards and the focused field.
'use strict';

import { state, el, idOf, pathKey, moduleByPath, propertyFields } from './configure-fields.js';
import { wiresSection, startupSection, refreshVariables, applyVariables, keyOf, adoptKey, samples, updateSummary } from './configure-wires.js';
import { bar, hooks, isDirty, showDirty, placeProblems, recheckSoon } from './configure-apply.js';

const view = document.getElementById('configure-view');
const statusView = document.getElementById('status-view');
const tabs = { status: document.getElementById('tab-status'), configure: document.getElementById('tab-configure') };

// ------------------------------------------------------------ views

let loaded = false;

// Only an admin configures (the host refuses the project API to others,
// and page.css hides the tabs and this view from them).
const admin = (document.body.dataset.role || 'admin') === 'admin';

function showView() {
  const configure = admin && location.hash === '#configure';
  view.hidden = !configure;
  statusView.hidden = configure;
  const [current, other] = configure ? [tabs.configure, tabs.status] : [tabs.status, tabs.configure];
  current.setAttribute('aria-current', 'page');
  other.removeAttribute('aria-current');
  document.title = `${configure ? 'Configure' : 'IO Modules'} · wsio`;
  if (configure && !loaded) {
    loaded = true;
    load();
  }
}
window.addEventListener('hashchange', showView);

window.addEventListener('beforeunload', (event) => {
  if (isDirty()) {
    event.preventDefault();
    event.returnValue = '';
  }
});

// ------------------------------------------------------------ loading

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${url}: ${response.status} ${response.statusText}`);
  return body;
}

async function load() {
  try {
    const [project, modules] = await Promise.all([getJson('/project'), getJson('/modules')]);
    state.modules = modules.modules || [];
    setProject(project);
  } catch (error) {
    view.replaceChildren(el('p', { class: 'error-text' }, `The project could not be loaded: ${error.message}`));
  }
}

function setProject(project) {
  project.instances ||= [];
  project.wires ||= [];
  project.startup ||= [];
  for (const wire of project.wires) {
    if (!Array.isArray(wire.then)) wire.then = wire.then ? [wire.then] : [];
  }
  // What was open stays open: instances by name, wires and startup
  // actions by position; a wire keeps its test sample.
  const old = state.project;
  if (old) {
    for (const decl of project.instances) adoptKey(decl, old.instances.find((i) => i.name === decl.name));
    project.wires.forEach((wire, w) => {
      adoptKey(wire, old.wires[w]);
      if (old.wires[w] && samples.has(old.wires[w])) samples.set(wire, samples.get(old.wires[w]));
    });
    project.startup.forEach((action, s) => adoptKey(action, old.startup[s]));
  }
  state.project = project;
  state.baseline = JSON.stringify(project);
  state.variables.clear();
  render();
  project.wires.forEach((_, w) => refreshVariables(w, 0));
}

hooks.reloaded = async () => {
  const [project, modules] = await Promise.all([getJson('/project'), getJson('/modules')]);
  state.modules = modules.modules || [];
  setProject(project);
};

// ------------------------------------------------------------ editing

state.changed = (path) => {
  showDirty();
  recheckSoon();
  // A trigger property changes the variables its wire gives.
  if (path && path[0] === 'wires') {
    if (path[2] === 'when') refreshVariables(path[1]);
    updateSummary(path[1]);
  }
};

state.rerender = () => {
  render();
  state.project.wires.forEach((_, w) => refreshVariables(w));
};

function render() {
  const focused = document.activeElement && document.activeElement.id;
  view.replaceChildren(
    el('h2', { class: 'visually-hidden' }, 'Configure'),
    ...bar(),
    instancesSection(),
    wiresSection(),
    startupSection());
  state.project.wires.forEach((_, w) => applyVariables(w));
  placeProblems();
  showDirty();
  if (focused) document.getElementById(focused)?.focus({ preventScroll: true });
}

// ------------------------------------------------------------ instances

function uniqueName(base) {
  const names = new Set(state.project.instances.map((i) => i.name));
  if (!names.has(base)) return base;
  for (let n = 2; ; n++) if (!names.has(`${base} ${n}`)) return `${base} ${n}`;
}

/** Every place the project names instance `from` now names `to`. */
function renameReferences(from, to) {
  for (const wire of state.project.wires) {
    if (wire.when.instance === from) wire.when.instance = to;
    for (const action of wire.then) if (action.instance === from) action.instance = to;
  }
  for (const action of state.project.startup) if (action.instance === from) action.instance = to;
}

function removeInstance(index) {
  const name = state.project.instances[index].name;
  const project = state.project;
  const wires = project.wires.filter((w) => w.when.instance === name).length;
  const actions = project.wires.reduce((n, w) => n + w.then.filter((a) => a.instance === name && w.when.instance !== name).length, 0)
    + project.startup.filter((a) => a.instance === name).length;
  if (wires + actions > 0 && !window.confirm(
    `Remove ${name}, the ${wires} wire(s) that start from it and the ${actions} other action(s) that use it?`)) return;
  project.instances.splice(index, 1);
  project.wires = project.wires.filter((w) => w.when.instance !== name);
  for (const wire of project.wires) wire.then = wire.then.filter((a) => a.instance !== name);
  project.startup = project.startup.filter((a) => a.instance !== name);
  state.changed();
  state.rerender();
}

function instanceCard(decl, i) {
  const path = ['instances', i];
  const module = moduleByPath(decl.module);
  const key = keyOf(decl);
  const nameId = idOf([...path, 'name']);
  let previous = decl.name;
  const moduleText = module ? `${module.manifest.name || module.name} ${module.version}` : `module ${decl.module} (not loaded)`;
  const summaryName = el('span', { class: 'name' }, decl.name);
  const body = [
    el('div', { class: 'tools' },
      el('button', {
        type: 'button',
        class: 'quiet',
        'aria-label': `Duplicate ${decl.name}`,
        onclick: () => {
          const copy = JSON.parse(JSON.stringify(decl));
          copy.name = uniqueName(`${decl.name} copy`);
          state.project.instances.splice(i + 1, 0, copy);
          state.open.add(keyOf(copy));
          state.changed();
          state.rerender();
          document.getElementById(idOf(['instances', i + 1, 'name']))?.focus();
        },
      }, 'Duplicate'),
      el('button', { type: 'button', class: 'quiet danger', 'aria-label': `Remove ${decl.name}`, onclick: () => removeInstance(i) }, 'Remove')),
    el('div', { class: 'field', 'data-path': pathKey([...path, 'name']) },
      el('label', { for: nameId }, 'Name'),
      el('input', {
        id: nameId,
        type: 'text',
        value: decl.name,
        required: true,
        spellcheck: 'false',
        'aria-describedby': `${nameId}-d ${nameId}-e`,
        oninput: (event) => {
          decl.name = event.target.value;
          renameReferences(previous, decl.name);
          previous = decl.name;
          summaryName.textContent = decl.name;
          state.changed([...path, 'name']);
        },
        onchange: () => state.rerender(),
      }),
      el('p', { class: 'hint', id: `${nameId}-d` }, el('strong', { class: 'required' }, 'Required.'), ' Wires and startup actions follow a new name. Renaming an applied instance re-creates it: the host removes the old one and adds one under the new name (a new connection; stored passwords must be typed again).'),
      el('p', { class: 'field-error', id: `${nameId}-e`, role: 'alert', hidden: true })),
    el('p', { class: 'module-line', 'data-path': pathKey([...path, 'module']) }, 'Module: ', moduleText,
      module && module.path ? el('span', { class: 'hint' }, ` · ${module.path}`) : null),
    module
      ? propertyFields(module.manifest.properties, decl, [...path, 'properties'])
      : el('p', { class: 'error-text' }, 'This module is not loaded, so its properties cannot be edited here.'),
  ];
  return el('li', {}, el('details', {
    class: 'card instance-card',
    'data-path': pathKey(path),
    open: state.open.has(key) || undefined,
    ontoggle: (event) => (event.target.open ? state.open.add(key) : state.open.delete(key)),
  }, el('summary', {}, summaryName, ' ', el('span', { class: 'module' }, moduleText)), el('div', { class: 'card-body' }, body)));
}

function instancesSection() {
  const instances = state.project.instances;
  const moduleId = 'cfg-add-module';
  const nameId = 'cfg-add-name';
  const chooser = el('select', { id: moduleId },
    state.modules.map((m, index) => el('option', { value: String(index) }, `${m.manifest.name || m.name} ${m.version}`)));
  const name = el('input', { id: nameId, type: 'text', spellcheck: 'false', value: uniqueName('ws'), required: true });
  const loadPath = el('input', { id: 'cfg-load-path', type: 'text', spellcheck: 'false', placeholder: '/usr/lib/wsio/libother.so', 'aria-describedby': 'cfg-load-hint' });
  const loadResult = el('p', { 'aria-live': 'polite' });
  return el('section', { class: 'config-section', 'aria-labelledby': 'cfg-instances-title' },
    el('h2', { id: 'cfg-instances-title' }, 'Instances'),
    instances.length ? el('ol', { class: 'cards' }, instances.map(instanceCard)) : el('p', { class: 'hint' }, 'No instances yet.'),
    el('form', {
      class: 'add-instance',
      onsubmit: (event) => {
        event.preventDefault();
        const module = state.modules[Number(chooser.value)];
        const wanted = name.value.trim();
        if (!module || !wanted) return;
        const decl = { name: uniqueName(wanted), properties: {} };
        // The host's own module (the first) needs no path.
        if (state.modules.indexOf(module) > 0) decl.module = module.path;
        instances.push(decl);
        state.open.add(keyOf(decl));
        state.changed();
        state.rerender();
        document.getElementById(idOf(['instances', instances.length - 1, 'properties', module.manifest.properties[0]?.name ?? 'x']))?.focus();
      },
    },
    el('div', { class: 'field' }, el('label', { for: moduleId }, 'Module'), chooser),
    el('div', { class: 'field' }, el('label', { for: nameId }, 'Name of the new instance'), name),
    el('button', { type: 'submit' }, '+ Add instance')),
    el('details', { class: 'load-module' },
      el('summary', {}, 'Load another module by path'),
      el('form', {
        onsubmit: async (event) => {
          event.preventDefault();
          loadResult.textContent = 'Loading…';
          try {
            const response = await fetch('/modules', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ path: loadPath.value }) });
            const answer = await response.json().catch(() => ({}));
            if (!response.ok) {
              loadResult.replaceChildren(el('span', { class: 'error-text' }, `✕ ${answer.error || response.status}`));
              return;
            }
            state.modules = (await (await fetch('/modules')).json()).modules || state.modules;
            render();
            document.getElementById('cfg-load-result')?.replaceChildren(el('span', { class: 'ok-text' }, `✓ Loaded ${answer.module?.name || loadPath.value}: choose it in Module above.`));
          } catch (error) {
            loadResult.replaceChildren(el('span', { class: 'error-text' }, `✕ The host did not answer (${error.message})`));
          }
        },
      },
      el('div', { class: 'field' },
        el('label', { for: 'cfg-load-path' }, 'Module file (.so) on the host'),
        loadPath,
        el('p', { class: 'hint', id: 'cfg-load-hint' }, 'The host checks it as wsio run does (ABI version, manifest) before it can be used.')),
      el('button', { type: 'submit', class: 'secondary' }, 'Load module'),
      Object.assign(loadResult, { id: 'cfg-load-result' }))));
}

// ------------------------------------------------------------ start

// Another page (or a SIGHUP) applied a project: show it, unless this page
// has edits of its own (which the next Apply would then be checked against).
document.addEventListener('wsio:project-event', () => {
  if (loaded && state.project && !isDirty()) hooks.reloaded().catch(() => {});
});

showView();
