/*! Accord tag (accord.js). Vanilla ES2017, no dependencies, no build step. Docs: docs/collection.md */
(function () {
  'use strict';
  var w = window, d = document, nav = navigator;
  var A = w.accord || {};
  if (A.track) return;
  var VERSION = '1.0.0';
  var me = d.currentScript || d.querySelector('script[src*="/accord.js"]');
  var ds = (me && me.dataset) || {};
  var conf = Object.assign({}, w.accordConfig || {});
  var writeKey = ds.writeKey || conf.writeKey;
  var base = (ds.endpoint || conf.endpoint || (me && me.src ? new URL(me.src, location.href).origin : location.origin))
    .replace(/\/+$/, '');
  var flushMs = +(ds.flushInterval || conf.flushInterval || 1000);
  var MAX_BATCH = 20, BEACON_BYTES = 60000, ID = 'ajs_anonymous_id', UID = 'ajs_user_id', QK = 'accord_q_';
  var COUNTABLE = /^(track|page|screen)$/;
  // What an anonymous count keeps, as the server's gate does (collect/consent_gate.py).
  var ANON_FIELDS = ['type', 'event', 'name', 'category', 'messageId', 'timestamp'];
  var ANON_TEXT = ['currency', 'category', 'product_id', 'sku', 'order_id_hash', 'plan', 'path', 'title'];
  var ANON_CONTEXT = ['library', 'locale', 'timezone', 'campaign', 'consent'];

  var ls = null;
  try { ls = w.localStorage; ls.getItem(QK); } catch (e) { ls = null; }
  var tab = uuid();
  var queue = [];   // events to send, oldest first (persisted while storage is allowed)
  var held = [];    // events waiting for the visitor's first choice (memory only)
  var cmp = null, expectCmp = !!(A.consent || ds.consent === 'cmp' || conf.consent === 'cmp' ||
    d.querySelector('script[src*="/cmp.js"]'));
  var memId = null, userId = null, traits = {}, timer = null, attempt = 0, sending = null, ctl = null;

  function uuid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-');
  }
  function cookie(name) {
    var m = d.cookie.match(new RegExp('(?:^|;\\s*)' + name + '=([^;]*)'));
    return m ? decodeURIComponent(m[1]).replace(/^"|"$/g, '') : null;
  }
  function setCookie(name, value, age) {
    d.cookie = name + '=' + encodeURIComponent(value) + '; Path=/; SameSite=Lax; Max-Age=' + age +
      (location.protocol === 'https:' ? '; Secure' : '');
  }
  function get(k) { try { return ls && ls.getItem(k); } catch (e) { return null; } }
  function put(k, v) { try { if (ls) { if (v === null) ls.removeItem(k); else ls.setItem(k, v); } } catch (e) { /* full */ } }

  // ---------- consent: the same decision as the server's policy (consent/policy.py) ----------
  function state() { return cmp ? cmp.get() : null; }
  function policy() { var c = state(); return (c && c.collection) || {}; }
  function purposeOf(e) {
    var m = policy().event_purposes || {};
    if (e.type === 'track' && m[e.event]) return m[e.event];
    return m['$' + e.type] || policy().default_purpose || 'statistics';
  }
  // keep | anon | drop | wait (no choice yet where the regime needs one)
  function verdict(e) {
    if (!cmp) return expectCmp ? 'wait' : 'keep';
    var c = state();
    if (!c.ready) return 'wait';
    var p = purposeOf(e);
    if (p === 'necessary' || c.purposes[p] === true) return 'keep';
    if (!c.choiceMade && c.requiresOptIn) return 'wait';
    return policy().anonymous_counting !== false && COUNTABLE.test(e.type) ? 'anon' : 'drop';
  }
  // Identifiers are stored (cookie, localStorage) only when the tag's own purpose is granted.
  function mayStore() {
    if (!cmp) return !expectCmp;
    var c = state();
    return c.ready && c.purposes[policy().default_purpose || 'statistics'] === true;
  }
  function anonymise(e) {
    var o = {anonymousId: uuid()};
    ANON_FIELDS.forEach(function (k) { if (k in e) o[k] = e[k]; });
    var p = e.properties || {}, c = e.context || {}, q = {}, x = {};
    Object.keys(p).forEach(function (k) {
      var v = p[k], t = typeof v;
      if (t === 'number' || t === 'boolean' || (t === 'string' && ANON_TEXT.indexOf(k) >= 0)) q[k] = v;
    });
    ANON_CONTEXT.forEach(function (k) { if (k in c) x[k] = c[k]; });
    if (c.page) x.page = {path: c.page.path};
    o.properties = q; o.context = x;
    return o;
  }

  // ---------- identity ----------
  function anonymousId() {
    if (cmp) return cmp.get().anonymousId;
    if (expectCmp) return memId = memId || uuid();
    var id = cookie(ID) || get(ID) || memId || uuid();
    remember(id);
    return id;
  }
  function remember(id) {
    memId = id;
    if (!mayStore()) return;
    if (cookie(ID) !== id) setCookie(ID, id, 31536000);
    put(ID, id);
    put(UID, userId === null ? null : JSON.stringify(userId));
    put('ajs_user_traits', JSON.stringify(traits));
  }
  function forget() {
    setCookie(ID, '', 0);
    [ID, UID, 'ajs_user_traits'].forEach(function (k) { put(k, null); });
    for (var i = ls ? ls.length - 1 : -1; i >= 0; i--) if (String(ls.key(i)).indexOf(QK) === 0) put(ls.key(i), null);
  }

  // ---------- the queue: persisted per tab, adopted by the next page ----------
  function persist() { if (mayStore()) put(QK + tab, queue.length ? JSON.stringify(queue) : null); }
  function adopt() {
    if (!ls || !mayStore()) return;
    var seen = {};
    queue.forEach(function (e) { seen[e.messageId] = 1; });
    for (var i = ls.length - 1; i >= 0; i--) {
      var k = ls.key(i);
      if (!k || k.indexOf(QK) !== 0 || k === QK + tab) continue;
      try { JSON.parse(get(k)).forEach(function (e) { if (!seen[e.messageId]) { seen[e.messageId] = 1; queue.push(e); } }); } catch (e) { /* torn */ }
      put(k, null);
    }
    persist();
  }
  // An event gets its visitor's id only once it may be sent whole.
  function admit(e) {
    var v = verdict(e);
    if (v === 'wait') return held.push(e);
    if (v === 'drop') return;
    if (v === 'keep' && !e.anonymousId) e.anonymousId = anonymousId();
    queue.push(v === 'anon' ? anonymise(withConsent(e)) : withConsent(e));
  }
  // The visitor's purposes (their choice, else the regime's default) as Segment's
  // context.consent, which the server's gate reads when its ledger has no record yet.
  function withConsent(e) {
    var c = state();
    if (c && c.ready) e.context.consent = {categoryPreferences: c.purposes, gpc: !!c.gpc};
    return e;
  }
  function reconsider() {
    var again = held.concat(queue);
    held = []; queue = [];
    again.forEach(admit);
    if (!mayStore()) forget(); else { remember(anonymousId()); adopt(); }
    persist();
    schedule(0);
  }

  function schedule(ms) {
    if (timer) return;
    timer = setTimeout(function () { timer = null; flush(); }, ms);
  }
  function body(batch) { return JSON.stringify({batch: batch, writeKey: writeKey, sentAt: new Date().toISOString()}); }
  function flush() {
    if (sending) return sending;
    if (!queue.length) return Promise.resolve();
    if (nav.onLine === false) return Promise.resolve();
    var batch = queue.slice(0, MAX_BATCH);
    ctl = w.AbortController ? new AbortController() : null;
    // text/plain: a CORS-safelisted type, so no preflight (the server reads it as JSON).
    sending = fetch(base + '/v1/batch', {method: 'POST', headers: {'Content-Type': 'text/plain'},
      body: body(batch), credentials: 'omit', signal: ctl && ctl.signal}).then(function (r) {
      if (r.ok) { attempt = 0; return done(batch); }
      if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429) {
        // Refused for good: the events a 400 names are dropped, the others sent again; any
        // other refusal (write key, origin, size) drops the batch. Not retried either way.
        attempt = 0;
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (w.console) console.warn('accord: events refused', r.status, j);
          var bad = {};
          (j.problems || []).forEach(function (p) { var m = /^batch\[(\d+)\]/.exec(p.field); if (m) bad[m[1]] = 1; });
          done(r.status === 400 && Object.keys(bad).length ? batch.filter(function (e, i) { return bad[i]; }) : batch);
        });
      }
      throw new Error('status ' + r.status);
    }).catch(function () {
      attempt += 1;
    }).then(function () {
      sending = null;
      if (queue.length) schedule(attempt ? Math.min(30000, 500 * Math.pow(2, attempt - 1)) * (0.75 + Math.random() / 2) : 0);
    });
    return sending;
  }
  function done(batch) {
    var ids = {};
    batch.forEach(function (e) { ids[e.messageId] = 1; });
    queue = queue.filter(function (e) { return !ids[e.messageId]; });
    persist();
  }
  // Leaving the page: what is still queued goes by beacon and stays stored (the next page
  // sends it again; the server keeps one per messageId). Held events go as anonymous counts.
  function leave() {
    if (held.length && state() && state().ready) {
      held.forEach(function (e) { if (policy().anonymous_counting !== false && COUNTABLE.test(e.type)) queue.push(anonymise(withConsent(e))); });
      held = [];
    }
    if (!queue.length || nav.onLine === false || !nav.sendBeacon) return;
    var chunk = [];
    queue.forEach(function (e) {
      chunk.push(e);
      if (body(chunk).length > BEACON_BYTES) { chunk.pop(); beacon(chunk); chunk = [e]; }
    });
    beacon(chunk);
  }
  function beacon(batch) {
    if (batch.length) nav.sendBeacon(base + '/v1/batch', new Blob([body(batch)], {type: 'text/plain'}));
  }

  // ---------- the calls ----------
  function utm() {
    var q = new URLSearchParams(location.search), c = {};
    [['utm_campaign', 'name'], ['utm_source', 'source'], ['utm_medium', 'medium'], ['utm_term', 'term'],
      ['utm_content', 'content']].forEach(function (p) { if (q.get(p[0])) c[p[1]] = q.get(p[0]); });
    return Object.keys(c).length ? c : undefined;
  }
  function pageInfo() {
    var canon = d.querySelector('link[rel=canonical]');
    return {path: location.pathname, referrer: d.referrer, search: location.search, title: d.title,
      url: canon ? canon.href : location.href};
  }
  function enqueue(fields, options, cb) {
    var ctx = Object.assign({library: {name: 'accord.js', version: VERSION}, page: pageInfo(), userAgent: nav.userAgent,
      locale: nav.language, campaign: utm()}, (options && options.context) || {});
    try { ctx.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { /* old browser */ }
    var e = Object.assign({messageId: uuid(), timestamp: new Date().toISOString(), context: ctx}, fields);
    if (userId !== null && !e.userId && e.type !== 'alias') e.userId = userId;
    admit(e);
    persist();
    schedule(queue.length >= MAX_BATCH ? 0 : flushMs);
    if (typeof cb === 'function') setTimeout(cb, 0);
    return e;
  }
  function args(list) {
    var a = Array.prototype.slice.call(list), cb = typeof a[a.length - 1] === 'function' ? a.pop() : null;
    return {a: a, cb: cb};
  }
  var api = {
    VERSION: VERSION,
    page: function () {
      var x = args(arguments), a = x.a, category = null, name = null;
      if (typeof a[0] === 'string' && typeof a[1] === 'string') { category = a.shift(); name = a.shift(); }
      else if (typeof a[0] === 'string' || a[0] === null) name = a.shift();
      var props = Object.assign(pageInfo(), a[0] || {});
      var f = {type: 'page', properties: props};
      if (name) f.name = name;
      if (category) f.category = category;
      return enqueue(f, a[1], x.cb);
    },
    track: function (event, properties, options) {
      var x = args(arguments);
      return enqueue({type: 'track', event: event, properties: (x.a[1]) || {}}, x.a[2], x.cb);
    },
    identify: function () {
      var x = args(arguments), a = x.a;
      if (typeof a[0] === 'string' || typeof a[0] === 'number') userId = String(a.shift());
      else if (a[0] === null) a.shift();
      traits = Object.assign(traits, a[0] || {});
      remember(anonymousId());
      return enqueue({type: 'identify', traits: Object.assign({}, traits)}, a[1], x.cb);
    },
    group: function (groupId, groupTraits, options) {
      var x = args(arguments);
      return enqueue({type: 'group', groupId: String(groupId), traits: x.a[1] || {}}, x.a[2], x.cb);
    },
    alias: function (to, from, options) {
      var x = args(arguments), prev = typeof x.a[1] === 'string' ? x.a[1] : (userId || anonymousId());
      return enqueue({type: 'alias', userId: String(to), previousId: prev}, typeof x.a[1] === 'object' ? x.a[1] : x.a[2], x.cb);
    },
    reset: function () {
      userId = null; traits = {}; memId = uuid();
      if (cmp) memId = cmp.get().anonymousId;
      forget();
      remember(memId);
    },
    user: function () { return {id: function () { return userId; }, anonymousId: anonymousId, traits: function () { return traits; }}; },
    ready: function (cb) { if (typeof cb === 'function') setTimeout(cb, 0); },
    flush: function () { return flush(); },
    // GET /v1/recommendations for this visitor (docs/collection.md); needs consent to identify them.
    recommend: function (o) {
      o = o || {};
      if (!mayStore() && expectCmp) return Promise.reject(new Error('accord: no consent to identify the visitor'));
      var q = new URLSearchParams({writeKey: writeKey});
      if (userId !== null) q.set('userId', userId); else q.set('anonymousId', anonymousId());
      if (o.limit) q.set('limit', o.limit);
      if (o.context) q.set('context', o.context);
      return fetch(base + '/v1/recommendations?' + q, {credentials: 'omit'}).then(function (r) {
        return r.json().then(function (j) { if (!r.ok) throw Object.assign(new Error('accord: ' + r.status), {body: j}); return j; });
      });
    }
  };

  function hook(c) {
    cmp = c;
    c.on('ready', function () { reconsider(); });
    c.on('change', function () {
      if (ctl && !mayStore()) ctl.abort();
      reconsider();
    });
  }
  var existing = A.consent;
  delete A.consent;
  Object.defineProperty(A, 'consent', {configurable: true, enumerable: true,
    get: function () { return cmp; }, set: function (c) { if (c && c !== cmp) hook(c); }});
  Object.keys(api).forEach(function (k) { A[k] = api[k]; });
  w.accord = A;
  if (existing) hook(existing);

  // Calls queued by Segment's snippet (window.analytics as an array) run now, in order.
  var stub = w.analytics;
  w.analytics = A;
  if (Array.isArray(stub)) stub.slice().forEach(function (call) {
    if (Array.isArray(call) && typeof A[call[0]] === 'function') A[call[0]].apply(A, call.slice(1));
  });

  try { userId = JSON.parse(get(UID)); traits = JSON.parse(get('ajs_user_traits')) || {}; } catch (e) { /* none */ }
  if (!mayStore()) { userId = null; traits = {}; }
  adopt();
  schedule(0);
  w.addEventListener('online', function () { attempt = 0; flush(); });
  w.addEventListener('pagehide', leave);
  if (ds.autoPage !== 'false' && conf.autoPage !== false) A.page();
})();
