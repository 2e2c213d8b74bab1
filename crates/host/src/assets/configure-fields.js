// The Configure view's shared state and its property editors: one field
// per property, with the editor its manifest declares (line_edit, password,
// spinbox, toggle, dropdown, text), its default shown and its description
// as help. Every field carries the JSON path of its value in the project
// (`data-path`), which is where the host's errors point (`path`), so a
// message from POST /project/check lands next to the field it concerns.
//
// Values are set as text, never as HTML. A secret the host holds comes as
// {"secret":"set"} and stays that object unless the user types a new value.
'use strict';

/** What the Configure view edits and knows; configure.js fills it. */
export const state = {
  /** The project as GET /project gave it, edited in place. */
  project: null,
  /** JSON of the project as last loaded or applied (for "unsaved"). */
  baseline: '',
  /** GET /modules: [{id, name, version, path, manifest}]. */
  modules: [],
  /** The last check's or apply's {errors, warnings}. */
  problems: { errors: [], warnings: [] },
  /** wire index -> {variables, error} from the /variables endpoint. */
  variables: new Map(),
  /** Keys of the cards open now, kept across renders. */
  open: new Set(),
  /** Called after every edit (configure.js sets it). */
  changed: () => {},
  /** Called after an edit that changes the structure (re-render). */
  rerender: () => {},
};

export const SECRET_SET = 'set';

export function isSecretSet(value) {
  return value !== null && typeof value === 'object' && value.secret === SECRET_SET;
}

/** `el('p', {class: 'hint'}, 'text', child…)`: attributes by name; `on*`
 * are listeners; text children are text nodes. */
export function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) {
      node.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      node.className = value;
    } else if (name === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (value === true) {
      node.setAttribute(name, '');
    } else {
      node.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** An id for the element at JSON `path` (stable across renders, so focus
 * and links survive a re-render). */
export function idOf(path) {
  return 'cfg-' + path.map((part) => String(part).replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`)).join('-');
}

export function pathKey(path) {
  return JSON.stringify(path);
}

/** The module an instance of the project uses: the one its `module` path
 * names, or the host's own (the first loaded) when it names none. */
export function moduleOf(instanceName) {
  const decl = state.project.instances.find((i) => i.name === instanceName);
  if (!decl) return null;
  return moduleByPath(decl.module);
}

export function moduleByPath(path) {
  if (!path) return state.modules[0] || null;
  return state.modules.find((m) => m.path === path)
    || state.modules.find((m) => m.path.endsWith('/' + path.replace(/^\.\//, '')))
    || null;
}

export function defaultText(spec) {
  if (spec.default === undefined || spec.default === null) return '';
  if (typeof spec.default === 'boolean') return spec.default ? 'on' : 'off';
  return String(spec.default);
}

function kindOf(spec) {
  const editor = spec.editor || '';
  if (spec.secret || editor === 'password') return 'password';
  if (editor === 'toggle' || spec.type === 'bool') return 'toggle';
  if (editor === 'dropdown' || (spec.options && spec.options.length)) return 'dropdown';
  if (editor === 'spinbox' || spec.type === 'int') return 'spinbox';
  if (editor === 'text') return 'text';
  return 'line_edit';
}

/** The fields for `specs`, editing `owner.properties` (created on first
 * edit), at JSON path `path` + [name]. Grouped in fieldsets by `group`
 * when the manifest groups them, in the manifest's order. `variables`:
 * a wire index whose trigger variables the text fields offer. */
export function propertyFields(specs, owner, path, options = {}) {
  const container = el('div', { class: 'properties', 'data-path': pathKey(path) });
  const groups = new Map();
  for (const spec of specs) {
    const group = spec.group || '';
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(spec);
  }
  for (const [group, members] of groups) {
    const fields = members.map((spec) => field(spec, owner, [...path, spec.name], options));
    if (group && groups.size > 1) {
      container.append(el('fieldset', { class: 'group' }, el('legend', {}, group), fields));
    } else {
      container.append(...fields);
    }
  }
  return container;
}

function field(spec, owner, path, options) {
  const id = idOf(path);
  const kind = kindOf(spec);
  const properties = () => (owner.properties ||= {});
  const current = owner.properties ? owner.properties[spec.name] : undefined;
  const wasSet = isSecretSet(current);
  const set = (value) => {
    if (value === undefined) {
      if (owner.properties) delete owner.properties[spec.name];
    } else {
      properties()[spec.name] = value;
    }
    state.lastEdited = path;
    state.changed(path);
  };
  const described = [];
  const help = [];
  if (spec.description) help.push(spec.description);
  const shownDefault = defaultText(spec);
  // Required, the default and a stored secret stay in sight; the
  // description is cut to two lines (whole on a click, or as the tooltip).
  const facts = [];
  if (spec.required) facts.push(el('strong', { class: 'required' }, 'Required'));
  if (kind !== 'password' && shownDefault !== '') facts.push(`Default: ${shownDefault}`);
  if (wasSet) facts.push('A value is stored; it is kept unless you type a new one');
  if (facts.length) described.push(`${id}-f`);
  if (help.length) described.push(`${id}-d`);
  described.push(`${id}-e`);
  const common = {
    id,
    name: spec.name,
    'aria-describedby': described.join(' '),
    'data-property': spec.name,
    required: spec.required || undefined,
  };
  let control;
  if (kind === 'password') {
    control = el('input', {
      ...common,
      type: 'password',
      autocomplete: 'new-password',
      spellcheck: 'false',
      placeholder: wasSet ? 'set (type to replace)' : '',
      oninput: (event) => set(event.target.value === '' ? (wasSet ? { secret: SECRET_SET } : undefined) : event.target.value),
    });
  } else if (kind === 'toggle') {
    control = el('input', {
      ...common,
      type: 'checkbox',
      checked: (current === undefined ? spec.default === true : current === true) || undefined,
      onchange: (event) => set(event.target.checked),
    });
  } else if (kind === 'dropdown') {
    const value = current === undefined ? shownDefault : String(current);
    const choices = [...(spec.options || [])];
    if (value !== '' && !choices.includes(value)) choices.unshift(value);
    control = el('select', { ...common, onchange: (event) => set(event.target.value) },
      choices.map((option) => el('option', { value: option, selected: option === value || undefined }, option)));
  } else if (kind === 'spinbox') {
    control = el('input', {
      ...common,
      type: 'number',
      step: 1,
      inputmode: 'numeric',
      min: spec.min,
      max: spec.max,
      value: current === undefined ? shownDefault : String(current),
      oninput: (event) => {
        const text = event.target.value.trim();
        set(text === '' ? undefined : /^-?\d+$/.test(text) ? Number(text) : text);
      },
    });
  } else if (kind === 'text') {
    control = el('textarea', {
      ...common,
      rows: 2,
      spellcheck: 'false',
      oninput: (event) => set(event.target.value),
    });
    control.value = current === undefined ? shownDefault : String(current);
  } else {
    control = el('input', {
      ...common,
      type: 'text',
      spellcheck: 'false',
      value: current === undefined ? shownDefault : String(current),
      oninput: (event) => set(event.target.value),
    });
  }
  const label = el('label', { for: id }, spec.name);
  const wrapper = el('div', { class: kind === 'toggle' ? 'field toggle' : 'field', 'data-path': pathKey(path) });
  if (kind === 'toggle') wrapper.append(control, label); else wrapper.append(label, control);
  if (options.variablesOf !== undefined && (kind === 'text' || kind === 'line_edit')) {
    wrapper.append(variablePicker(control, spec.name, options.variablesOf));
  }
  if (facts.length) wrapper.append(el('p', { class: 'facts', id: `${id}-f` }, ...facts.flatMap((f, i) => (i ? [' · ', f] : [f]))));
  if (help.length) {
    wrapper.append(el('p', {
      class: 'hint',
      id: `${id}-d`,
      title: spec.description,
      onclick: (event) => event.currentTarget.classList.toggle('whole'),
    }, ...help));
  }
  wrapper.append(el('p', { class: 'field-error', id: `${id}-e`, role: 'alert', hidden: true }));
  return wrapper;
}

/** "Insert variable…": the trigger's variables for the wire's current
 * trigger properties (filled by configure-wires.js from /variables);
 * choosing one inserts `<n>` where the cursor is. */
function variablePicker(control, name, wire) {
  const select = el('select', {
    class: 'insert-variable',
    'aria-label': `Insert a trigger variable into ${name}`,
    'data-variables-of': wire,
    onchange: (event) => {
      const number = event.target.value;
      event.target.value = '';
      if (!number) return;
      const text = `<${number}>`;
      const start = control.selectionStart ?? control.value.length;
      const end = control.selectionEnd ?? control.value.length;
      control.setRangeText(text, start, end, 'end');
      control.dispatchEvent(new Event('input', { bubbles: true }));
      control.focus();
    },
  });
  fillVariables(select, state.variables.get(wire));
  return select;
}

/** Fills one picker from `{variables, error}` (or nothing known yet). */
export function fillVariables(select, known) {
  const options = [el('option', { value: '' }, 'Insert variable…')];
  for (const variable of (known && known.variables) || []) {
    options.push(el('option', { value: variable.number, title: variable.description || '' }, `<${variable.number}> ${variable.name}`));
  }
  select.replaceChildren(...options);
  select.disabled = !(known && known.variables && known.variables.length);
}
