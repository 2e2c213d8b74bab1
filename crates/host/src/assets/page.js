// The status page's behaviour: live status and log from the host's
// /events stream (Server-Sent Events), and the action forms, run with fetch
// against POST /io_modules/<instance>/actions/<action>.
//
// The host renders the page from the modules' manifests (src/page.rs);
// this file knows only the shapes of the events (src/event_stream.rs), the
// data-* attributes of the page, and three status variables documented in
// include/iom.h: ConnectionState (the badge, carried as `connection`),
// ConnectionStatus (the detail beside it, shown as is, never parsed) and
// NextRetry (a timestamp, for the reconnect countdown). Values are always
// set as text, never as HTML.
'use strict';

(() => {
  const MAX_LOG = 500;

  // name -> { tbody, rows: Map(key -> <tr>), connection: <p>, badge:
  // {state, text} of ConnectionState or null, detail: ConnectionStatus,
  // nextRetry: {at, hostNow} of NextRetry or null, retryAt }
  const instances = new Map();
  // Reads the instances the host rendered (again after an apply).
  function bindInstances() {
    instances.clear();
    for (const element of document.querySelectorAll('article[data-instance]')) {
      const rows = new Map();
      for (const row of element.querySelectorAll('tr[data-key]')) {
        rows.set(row.dataset.key, row);
      }
      const connection = element.querySelector('.connection');
      const badge = connection && connection.querySelector('.badge');
      instances.set(element.dataset.instance, {
        element,
        tbody: element.querySelector('table.status tbody'),
        rows,
        connection,
        badge: connection && connection.dataset.state !== 'unknown'
          ? { state: connection.dataset.state, text: badge.textContent }
          : null,
        detail: connection ? connection.querySelector('.connection-detail').textContent : '',
        nextRetry: null,
        retryAt: null,
      });
    }
  }
  bindInstances();

  // ------------------------------------------------------------ time

  // "06:34:21.123" of "2026-11-21T06:34:21.123+00:00": the host's clock,
  // as the module stamped it.
  function timeOfDay(timestamp) {
    const match = /T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)/.exec(timestamp || '');
    return match ? match[1] : (timestamp || '');
  }

  function setTime(time, timestamp) {
    time.dateTime = timestamp || '';
    time.title = timestamp || '';
    time.textContent = timeOfDay(timestamp);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ------------------------------------------------------------ status

  function statusRow(instance, status) {
    let row = instance.rows.get(status.key);
    if (!row) {
      // A status variable the page did not have yet.
      row = element('tr');
      row.dataset.key = status.key;
      const label = element('th');
      label.scope = 'row';
      const changed = element('td', 'changed');
      changed.append(element('time'));
      row.append(label, element('td', 'value'), changed);
      instance.tbody.append(row);
      instance.rows.set(status.key, row);
    }
    return row;
  }

  function applyStatus(name, status, hostNow) {
    const instance = instances.get(name);
    if (!instance) return;
    const row = statusRow(instance, status);
    const value = row.querySelector('.value');
    const time = row.querySelector('time');
    const changed = value.textContent !== status.value || time.dateTime !== status.timestamp;
    row.querySelector('th').textContent = status.label;
    value.textContent = status.value;
    setTime(time, status.timestamp);
    if (changed) {
      row.classList.remove('changed-now');
      void row.offsetWidth; // restart the highlight
      row.classList.add('changed-now');
    }
    if (status.connection) {
      instance.badge = status.connection;
    } else if (status.key === 'ConnectionStatus') {
      instance.detail = status.value;
    } else if (status.key === 'NextRetry') {
      instance.nextRetry = { at: status.value, hostNow };
    } else {
      return;
    }
    applyConnection(instance);
  }

  // A snapshot starts over: what it lacks is not known any more.
  function forgetConnection(name) {
    const instance = instances.get(name);
    if (!instance) return;
    instance.badge = null;
    instance.detail = '';
    instance.nextRetry = null;
  }

  // The badge from ConnectionState ("Unknown" for a module without it), the
  // detail from ConnectionStatus, the countdown from NextRetry.
  function applyConnection(instance) {
    if (!instance.connection && !instance.badge && !instance.detail) return;
    let line = instance.connection;
    if (!line) {
      line = element('p', 'connection');
      line.setAttribute('role', 'status');
      line.setAttribute('aria-live', 'polite');
      line.append(element('span', 'badge'), ' ', element('span', 'connection-detail'));
      instance.element.querySelector('.instance-head').append(line);
      instance.connection = line;
    }
    const { state, text } = instance.badge || { state: 'unknown', text: 'Unknown' };
    line.dataset.state = state;
    const badge = line.querySelector('.badge');
    badge.textContent = text;
    // The detail says the reason; the badge already says the state.
    line.querySelector('.connection-detail').textContent = instance.detail === text ? '' : instance.detail;
    instance.retryAt = null;
    const retry = instance.nextRetry;
    const at = retry ? Date.parse(retry.at) : NaN;
    if (state === 'reconnecting' && !Number.isNaN(at)) {
      // The host's clock set both times: only their difference counts here.
      const ahead = at - (Date.parse(retry.hostNow) || Date.now());
      instance.retryAt = Date.now() + ahead;
      // A visual countdown; screen readers have the detail instead of a
      // voice every second.
      const countdown = element('span', 'countdown');
      countdown.setAttribute('aria-hidden', 'true');
      badge.append(countdown);
    }
    tickCountdowns();
  }

  let countdownTimer = null;
  function tickCountdowns() {
    let running = false;
    for (const instance of instances.values()) {
      if (instance.retryAt === null || !instance.connection) continue;
      const countdown = instance.connection.querySelector('.countdown');
      if (!countdown) continue;
      const seconds = Math.ceil((instance.retryAt - Date.now()) / 1000);
      countdown.textContent = seconds > 0 ? ` in ${seconds} s` : ' now';
      running = running || seconds > 0;
    }
    if (running && countdownTimer === null) {
      countdownTimer = setInterval(tickCountdowns, 1000);
    } else if (!running && countdownTimer !== null) {
      clearInterval(countdownTimer);
      countdownTimer = null;
    }
  }

  // ------------------------------------------------------------ log

  const log = document.getElementById('log');
  const TAGS = { trigger: 'Trigger', action: 'Action', error: 'Action failed' };

  function logEntry(event) {
    const entry = element('li', 'entry');
    entry.dataset.kind = event.kind;
    const time = element('time');
    setTime(time, event.time);
    const what = element('span', 'what', `${event.instance} · ${event.name}`);
    if (event.source) what.append(' ', element('span', 'source', `by ${event.source}`));
    entry.append(time, element('span', 'tag', TAGS[event.kind] || event.kind), what);
    const details = [];
    if (event.detail) details.push(event.kind === 'trigger' ? `data: ${JSON.stringify(event.detail)}` : event.detail);
    if (event.variables && event.variables.length) {
      details.push('with ' + event.variables.map((v, i) => `<${i + 1}> = ${JSON.stringify(v)}`).join(', '));
    }
    if (details.length || event.error) {
      const detail = element('p', 'detail', details.join(' '));
      if (event.error) {
        detail.append(details.length ? '\n' : '', element('span', 'error-text', `failed: ${event.error}`));
      }
      entry.append(detail);
    }
    return entry;
  }

  // Log events wait here and go in together, once per frame, so a flood
  // of messages costs one layout per frame, not one per message.
  let pending = [];
  let flushScheduled = false;

  function addLog(event) {
    pending.push(event);
    if (pending.length > MAX_LOG) pending = pending.slice(-MAX_LOG);
    if (!flushScheduled) {
      flushScheduled = true;
      requestAnimationFrame(flushLog);
    }
  }

  function flushLog() {
    flushScheduled = false;
    const fragment = document.createDocumentFragment();
    for (let i = pending.length - 1; i >= 0; i--) fragment.append(logEntry(pending[i]));
    pending = [];
    log.prepend(fragment);
    while (log.children.length > MAX_LOG) log.lastElementChild.remove();
  }

  function replaceLog(events) {
    pending = [];
    const fragment = document.createDocumentFragment();
    for (let i = events.length - 1; i >= 0 && fragment.childNodes.length < MAX_LOG; i--) {
      fragment.append(logEntry(events[i]));
    }
    log.replaceChildren(fragment);
  }

  // ------------------------------------------------------------ live feed

  const feed = document.getElementById('feed');
  function setFeed(state, text) {
    if (feed.dataset.feed === state && feed.textContent === text) return;
    feed.dataset.feed = state;
    feed.textContent = text;
  }

  // A session that ended (signed out elsewhere, expired, user removed)
  // answers 401: the page goes to the login page rather than going stale.
  function signInIfSignedOut(response) {
    if (response) {
      if (response.status === 401) window.location.assign('/login');
      return;
    }
    fetch('/session').then(signInIfSignedOut).catch(() => { /* host away */ });
  }

  // The feed; opened again after the instances are rendered again, so its
  // snapshot covers the status they had in between.
  let source = null;
  function connectFeed() {
    if (typeof EventSource !== 'function') {
      setFeed('lost', 'This browser cannot show live updates');
      return;
    }
    if (source) source.close();
    const stream = new EventSource('/events');
    source = stream;
    stream.addEventListener('snapshot', (message) => {
      const snapshot = JSON.parse(message.data);
      for (const { instance, status } of snapshot.instances) {
        forgetConnection(instance);
        for (const s of status) applyStatus(instance, s, snapshot.now);
      }
      replaceLog(snapshot.events);
      setFeed('live', 'Live');
    });
    stream.addEventListener('status', (message) => {
      const status = JSON.parse(message.data);
      applyStatus(status.instance, status, status.now);
    });
    stream.addEventListener('log', (message) => addLog(JSON.parse(message.data)));
    // An apply (from any page, or a SIGHUP) changed the project: the
    // instances are rendered again, and the Configure view is told.
    stream.addEventListener('project', () => {
      refreshInstances();
      document.dispatchEvent(new CustomEvent('wsio:project-event'));
    });
    stream.addEventListener('error', () => {
      signInIfSignedOut();
      // While the host does not answer, no badge may go on claiming the
      // state it last showed: every instance is Unknown until a snapshot.
      for (const [name, instance] of instances) {
        forgetConnection(name);
        instance.detail = 'not known while the host does not answer';
        applyConnection(instance);
      }
      if (stream.readyState === EventSource.CLOSED) {
        setFeed('lost', 'Live updates stopped: reload the page');
      } else {
        setFeed('lost', 'Host unreachable: retrying…');
      }
    });
  }
  connectFeed();

  // ------------------------------------------------------------ counters

  // What the host received and ran per instance (GET /io_modules), the
  // same line the page was rendered with; refreshed while the page shows.
  function countersText(counters) {
    const fired = Object.entries(counters.triggers || {})
      .filter(([, count]) => count > 0)
      .map(([name, count]) => `${name} ${count}`);
    return `Triggers fired: ${fired.length ? fired.join(', ') : 'none'}` +
      ` · Wire runs: ${counters.wire_runs || 0} · Events lost: ${counters.events_lost || 0}`;
  }

  // A wire the host counts in an instance's `looping_wires` (numbers as
  // in "wire 2") is marked in words; the page rendered the same mark.
  const LOOPING_HINT = 'It ran very often for seconds on end: its action may make its own trigger fire again.';

  function markLooping(wire, looping) {
    let mark = wire.querySelector('.looping');
    if (looping && !mark) {
      mark = element('span', 'looping');
      mark.append(element('strong', undefined, 'possibly looping'), ` ${LOOPING_HINT}`);
      wire.append(' ', mark);
    } else if (!looping && mark) {
      mark.remove();
    }
    wire.toggleAttribute('data-looping', looping);
  }

  async function refreshCounters() {
    if (document.hidden) return;
    try {
      const response = await fetch('/io_modules');
      signInIfSignedOut(response);
      if (!response.ok) return;
      const body = await response.json();
      const looping = new Set();
      for (const instance of body.instances || []) {
        if (!instance.counters) continue;
        for (const number of instance.counters.looping_wires || []) looping.add(String(number));
        const article = [...document.querySelectorAll('article[data-instance]')]
          .find((a) => a.dataset.instance === instance.name);
        const line = article && article.querySelector('[data-counters]');
        if (line) line.textContent = countersText(instance.counters);
      }
      for (const wire of document.querySelectorAll('.wires li[data-wire]')) {
        markLooping(wire, looping.has(wire.dataset.wire));
      }
    } catch (_) {
      // The live feed already says when the host cannot be reached.
    }
  }
  setInterval(refreshCounters, 2000);

  // ------------------------------------------------------------ actions

  function clock() {
    return new Date().toLocaleTimeString([], { hour12: false });
  }

  async function runAction(form) {
    if (form.getAttribute('aria-busy') === 'true') return;
    const instance = form.closest('article[data-instance]').dataset.instance;
    const action = form.dataset.action;
    const properties = {};
    for (const field of form.querySelectorAll('[data-property]')) {
      const name = field.dataset.property;
      if (field.dataset.type === 'bool') {
        properties[name] = field.checked;
      } else if (field.dataset.type === 'int') {
        if (field.value !== '') properties[name] = Number(field.value);
      } else {
        properties[name] = field.value;
      }
      // A secret leaves the page with this request and nowhere else.
      if (field.hasAttribute('data-secret')) field.value = '';
    }
    const output = form.querySelector('output');
    form.setAttribute('aria-busy', 'true');
    output.dataset.result = 'running';
    output.textContent = 'Running…';
    const url = `/io_modules/${encodeURIComponent(instance)}/actions/${encodeURIComponent(action)}`;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(properties),
      });
      signInIfSignedOut(response);
      let answer = {};
      try { answer = await response.json(); } catch (_) { /* not JSON */ }
      if (response.ok) {
        output.dataset.result = 'ok';
        output.textContent = `✓ Done at ${clock()}`;
      } else {
        output.dataset.result = 'error';
        output.textContent = `✕ ${answer.error || `${response.status} ${response.statusText}`}`;
      }
    } catch (error) {
      output.dataset.result = 'error';
      output.textContent = `✕ The host did not answer (${error.message})`;
    } finally {
      form.removeAttribute('aria-busy');
    }
  }

  function bindForms(root) {
    for (const form of root.querySelectorAll('form.action')) {
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        runAction(form);
      });
      // Enter makes a new line in a text area; Ctrl+Enter (⌘+Enter) sends.
      for (const area of form.querySelectorAll('textarea')) {
        area.addEventListener('keydown', (event) => {
          if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
            event.preventDefault();
            form.requestSubmit();
          }
        });
      }
    }
  }
  bindForms(document);

  // ------------------------------------------------------------ re-render

  // The instances as the host renders them now (after an apply added,
  // changed or removed some); the live feed keeps them current from here.
  async function refreshInstances() {
    try {
      const response = await fetch('/');
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
      const section = fresh.querySelector('section.instances');
      const current = document.querySelector('section.instances');
      if (!section || !current) return;
      current.replaceChildren(...[...section.childNodes].map((node) => document.adoptNode(node)));
      const count = fresh.querySelector('.subtitle');
      if (count) document.querySelector('.subtitle').replaceChildren(...[...count.childNodes].map((node) => document.adoptNode(node)));
      bindInstances();
      bindForms(current);
      connectFeed();
      refreshCounters();
    } catch (_) {
      // The live feed already says when the host cannot be reached.
    }
  }
  document.addEventListener('wsio:project-applied', refreshInstances);
})();
