/*! Accord consent banner (cmp.js). Vanilla ES2017, no dependencies. Docs: docs/cmp.md */
(function () {
  'use strict';
  var w = window, d = document;
  if (w.accord && w.accord.consent) return;

  var SIGNALS = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage',
    'functionality_storage', 'personalization_storage', 'security_storage'];
  var DEFAULT_SIGNALS = {
    necessary: ['security_storage'],
    preferences: ['functionality_storage', 'personalization_storage'],
    statistics: ['analytics_storage'],
    marketing: ['ad_storage', 'ad_user_data', 'ad_personalization']
  };
  var AD_SIGNALS = ['ad_storage', 'ad_user_data', 'ad_personalization'];
  var BLOCKED = 'script[type="text/plain"][data-accord-purpose],iframe[data-accord-purpose][data-src]';
  // Replaced by the server with the contents of cmp.css (see accord/web/cmp.py).
  var CSS = '/*@accord-css*/';

  var me = d.currentScript || d.querySelector('script[data-write-key]');
  var ds = (me && me.dataset) || {};
  var nonce = (me && (me.nonce || me.getAttribute('nonce'))) || '';
  var base = (ds.endpoint || (me && me.src ? new URL(me.src, location.href).origin : location.origin))
    .replace(/\/+$/, '');
  // The admin UI's banner preview gives its configuration in data-preview: nothing is then
  // fetched, read from or written to cookies, or recorded. Sites never set it.
  var preview = null;
  if (ds.preview) { try { preview = JSON.parse(ds.preview); } catch (e) { preview = null; } }

  var cfg = null;          // GET /v1/consent/config answer
  var texts = {};
  var choice = null;       // the visitor's explicit choice: {v, p: [], d: [], ven: [], t, id, h}
  var gpc = navigator.globalPrivacyControl === true;
  var handlers = {change: [], ready: []};
  var ui = null;           // {root, dialog, view, returnTo}
  var reopen = null;
  var uid = 0;

  // ---------- Google Consent Mode v2: the default as early as possible ----------
  w.dataLayer = w.dataLayer || [];
  if (typeof w.gtag !== 'function') w.gtag = function () { w.dataLayer.push(arguments); };
  var early = readCookie('accord_consent');
  w.gtag('consent', 'default', Object.assign(signalsFor(early ? grantedFromChoice(early) : {}, null),
    {wait_for_update: 500}));

  // ---------- small helpers ----------
  function el(tag, attrs, kids) {
    var e = d.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') e.textContent = v;
      else if (k === 'on') Object.keys(v).forEach(function (t) { e.addEventListener(t, v[t]); });
      else e.setAttribute(k, v === true ? '' : v);
    });
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function id(p) { uid += 1; return 'accord-' + p + '-' + uid; }
  function b64url(s) {
    return btoa(unescape(encodeURIComponent(s))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function unb64url(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    return decodeURIComponent(escape(atob(s + '==='.slice((s.length + 3) % 4))));
  }
  function cookies() {
    return d.cookie ? d.cookie.split(/;\s*/).map(function (c) { return c.split('=')[0]; }) : [];
  }
  function readCookie(name) {
    var m = d.cookie.match(new RegExp('(?:^|;\\s*)' + name + '=([^;]*)'));
    if (!m) return null;
    try { return JSON.parse(unb64url(m[1])); } catch (e) { return null; }
  }
  function randomId() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }
  function anonymousId() {
    if (choice && choice.id) return choice.id;
    var m = d.cookie.match(/(?:^|;\s*)ajs_anonymous_id=([^;]*)/);
    if (m) return decodeURIComponent(m[1]).replace(/^"|"$/g, '');
    anonymousId.value = anonymousId.value || randomId();
    return anonymousId.value;
  }
  // Links and images from the configuration: http(s) or same-site paths only, never javascript:.
  function safeUrl(u) { return typeof u === 'string' && /^(https?:\/\/|\/(?!\/))/i.test(u) ? u : null; }
  function purposes() { return (cfg && cfg.purposes) || []; }
  function isRequired(p) { return p.required || p.key === 'necessary'; }
  function grantedFromChoice(c) {
    var g = {};
    (c.p || []).forEach(function (k) { g[k] = true; });
    (c.d || []).forEach(function (k) { g[k] = false; });
    return g;
  }
  function saleSignals(p) {
    var cm = p.consent_mode || DEFAULT_SIGNALS[p.key] || [];
    return p.key === 'marketing' || cm.some(function (s) { return AD_SIGNALS.indexOf(s) >= 0; });
  }

  // The effective state: explicit choice > GPC (sale/sharing only) > regime default.
  // Under the CCPA, GPC sent after an opt-in to sale/sharing overrides it unless the
  // choice was itself made while GPC was sent (choice.g), as the server decides.
  function state() {
    var explicit = choice ? grantedFromChoice(choice) : {};
    var optIn = !cfg || cfg.requires_opt_in;
    var gpcNow = gpc || !!(cfg && cfg.gpc);
    var out = {};
    purposes().forEach(function (p) {
      var k = p.key;
      if (isRequired(p)) out[k] = true;
      else if (k in explicit && explicit[k] && gpcNow && cfg && cfg.regime === 'ccpa' &&
               !(choice && choice.g) && saleSignals(p)) out[k] = false;
      else if (k in explicit) out[k] = explicit[k];
      else if (optIn) out[k] = false;
      else out[k] = !((gpc || (cfg && cfg.gpc)) && saleSignals(p));
    });
    return out;
  }
  // GPC with a purpose that sells or shares: the visitor is told that opting in overrides
  // the signal (CCPA regulations §7025(c)(3)), before they choose.
  function gpcNotice() {
    if (!(gpc || (cfg && cfg.gpc)) || !texts.gpc_notice || !purposes().some(saleSignals)) return null;
    return el('p', {class: 'acc-p acc-gpc', 'data-accord': 'gpc-notice', text: texts.gpc_notice});
  }
  // An opt-in to sale or sharing made without GPC, now overridden by GPC (see state()):
  // the banner opens again so the visitor can see it and consent again if they wish.
  function gpcOverridesChoice() {
    if (!choice || choice.g || !(gpc || (cfg && cfg.gpc)) || !cfg || cfg.regime !== 'ccpa') return false;
    var explicit = grantedFromChoice(choice);
    return purposes().some(function (p) { return explicit[p.key] === true && saleSignals(p); });
  }
  function vendorState(granted) {
    var out = {};
    ((cfg && cfg.vendors) || []).forEach(function (v) {
      out[String(v.id)] = (v.purposes || []).every(function (k) { return granted[k] === true; });
    });
    return out;
  }
  function signalsFor(granted, list) {
    var out = {};
    SIGNALS.forEach(function (s) { out[s] = 'denied'; });
    out.security_storage = 'granted';
    (list || Object.keys(DEFAULT_SIGNALS).map(function (k) { return {key: k}; })).forEach(function (p) {
      var on = p.key === 'necessary' || isRequired(p) || granted[p.key] === true;
      (p.consent_mode || DEFAULT_SIGNALS[p.key] || []).forEach(function (s) { if (on) out[s] = 'granted'; });
    });
    return out;
  }

  // ---------- Bit writer shared by the TCF and GPP encoders ----------
  function Bits() { this.s = ''; }
  Bits.prototype.int = function (v, n) {
    for (var i = n - 1; i >= 0; i--) this.s += Math.floor(v / Math.pow(2, i)) % 2 ? '1' : '0';
    return this;
  };
  Bits.prototype.flag = function (b) { this.s += b ? '1' : '0'; return this; };
  Bits.prototype.field = function (set, n) { for (var i = 1; i <= n; i++) this.flag(set[i]); return this; };
  Bits.prototype.chars = function (str) {
    str = (str || 'AA').toUpperCase();
    return this.int(str.charCodeAt(0) - 65, 6).int(str.charCodeAt(1) - 65, 6);
  };
  Bits.prototype.b64 = function (pad) {
    var A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', s = this.s, o = '';
    while (s.length % pad) s += '0';
    while (s.length % 6) s += '0';
    for (var i = 0; i < s.length; i += 6) o += A[parseInt(s.slice(i, i + 6), 2)];
    return o;
  };
  // A vendor section: MaxVendorId, then a bit field or ranges, whichever is shorter.
  function vendorBits(b, set) {
    var ids = Object.keys(set).filter(function (k) { return set[k]; }).map(Number).sort(function (x, y) { return x - y; });
    var max = ids.length ? ids[ids.length - 1] : 0, runs = [];
    ids.forEach(function (v) {
      var last = runs[runs.length - 1];
      if (last && last[1] === v - 1) last[1] = v; else runs.push([v, v]);
    });
    var rangeBits = 12 + runs.reduce(function (n, r) { return n + (r[0] === r[1] ? 17 : 33); }, 0);
    b.int(max, 16);
    if (rangeBits >= max) return b.flag(0).field(set, max);
    b.flag(1).int(runs.length, 12);
    runs.forEach(function (r) {
      b.flag(r[0] !== r[1]).int(r[0], 16);
      if (r[0] !== r[1]) b.int(r[1], 16);
    });
    return b;
  }

  // ---------- IAB TCF v2.2 TC string (only with a registered CMP id) ----------
  function tcfChoices() {
    var granted = state(), p = {}, li = {}, ven = {};
    var any = false;
    purposes().forEach(function (x) {
      if (isRequired(x) || !granted[x.key]) return;
      any = true;
      (x.tcf_purposes || []).forEach(function (n) {
        if (x.legal_basis === 'legitimate_interest' && n !== 1) li[n] = true; else p[n] = true;
      });
    });
    if (any) p[1] = true;
    var vs = vendorState(granted);
    ((cfg && cfg.vendors) || []).forEach(function (v) { if (v.tcf_id && vs[String(v.id)]) ven[v.tcf_id] = true; });
    return {purposes: p, li: li, vendors: ven};
  }
  function tcString() {
    if (!cfg || !cfg.cmp || typeof cfg.cmp.cmp_id !== 'number' || !choice) return null;
    var c = cfg.cmp, ch = tcfChoices(), disclosed = {};
    var day = Math.floor(choice.t / 86400) * 864000;  // deciseconds, rounded to the day (TCF policy)
    var b = new Bits().int(2, 6).int(day, 36).int(day, 36).int(c.cmp_id, 12).int(c.cmp_version || 1, 12)
      .int(1, 6).chars(cfg.notice.language).int(c.gvl_version || 0, 12).int(c.tcf_policy_version || 5, 6)
      .flag(1).flag(0).int(0, 12).field(ch.purposes, 24).field(ch.li, 24).flag(0).chars(c.publisher_cc);
    vendorBits(b, ch.vendors);
    vendorBits(b, {});
    b.int(0, 12);
    ((cfg && cfg.vendors) || []).forEach(function (v) { if (v.tcf_id) disclosed[v.tcf_id] = true; });
    var seg = vendorBits(new Bits().int(1, 3), disclosed);
    return b.b64(24) + '.' + seg.b64(24);
  }
  function tcData(listenerId, status) {
    var ch = tcfChoices(), c = cfg.cmp;
    var ids = function (set, n) { var o = {}; for (var i = 1; i <= n; i++) o[i] = !!set[i]; return o; };
    var vc = {};
    ((cfg && cfg.vendors) || []).forEach(function (v) { if (v.tcf_id) vc[v.tcf_id] = !!ch.vendors[v.tcf_id]; });
    return {
      tcString: tcString() || '', tcfPolicyVersion: c.tcf_policy_version || 5, cmpId: c.cmp_id,
      cmpVersion: c.cmp_version || 1, gdprApplies: cfg.regime === 'gdpr' || cfg.regime === 'uk_gdpr',
      eventStatus: status || (choice ? 'tcloaded' : 'cmpuishown'), cmpStatus: 'loaded',
      listenerId: listenerId, isServiceSpecific: true, useNonStandardTexts: false,
      publisherCC: c.publisher_cc || 'AA', purposeOneTreatment: false,
      purpose: {consents: ids(ch.purposes, 11), legitimateInterests: ids(ch.li, 11)},
      vendor: {consents: vc, legitimateInterests: {}},
      specialFeatureOptins: {1: false, 2: false},
      publisher: {consents: {}, legitimateInterests: {}, customPurpose: {consents: {}, legitimateInterests: {}}, restrictions: {}}
    };
  }

  // ---------- GPP with the US-national section (id 7) ----------
  function usnat() {
    var granted = state(), out = purposes().some(function (p) { return saleSignals(p) && !granted[p.key]; });
    var v = out ? 1 : 2;
    return {Version: 2, SharingNotice: 1, SaleOptOutNotice: 1, SharingOptOutNotice: 1,
      TargetedAdvertisingOptOutNotice: 1, SensitiveDataProcessingOptOutNotice: 0,
      SensitiveDataLimitUseNotice: 0, SaleOptOut: v, SharingOptOut: v, TargetedAdvertisingOptOut: v,
      SensitiveDataProcessing: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], KnownChildSensitiveDataConsents: [0, 0, 0],
      PersonalDataConsents: 0, MspaCoveredTransaction: 2, MspaOptOutOptionMode: 0,
      MspaServiceProviderMode: 0, GpcSegmentType: 1, Gpc: gpc || !!(cfg && cfg.gpc)};
  }
  function gppString() {
    var u = usnat(), b = new Bits().int(u.Version, 6);
    ['SharingNotice', 'SaleOptOutNotice', 'SharingOptOutNotice', 'TargetedAdvertisingOptOutNotice',
      'SensitiveDataProcessingOptOutNotice', 'SensitiveDataLimitUseNotice', 'SaleOptOut', 'SharingOptOut',
      'TargetedAdvertisingOptOut'].forEach(function (k) { b.int(u[k], 2); });
    u.SensitiveDataProcessing.concat(u.KnownChildSensitiveDataConsents).forEach(function (x) { b.int(x, 2); });
    b.int(u.PersonalDataConsents, 2).int(u.MspaCoveredTransaction, 2).int(u.MspaOptOutOptionMode, 2)
      .int(u.MspaServiceProviderMode, 2);
    // Header: type 3, version 1, one section id (7) as a Fibonacci-coded integer (5 + 2 -> 01011).
    var head = new Bits().int(3, 6).int(1, 6).int(1, 12).flag(0);
    head.s += '01011';
    return head.b64(8) + '~' + b.b64(8) + '.' + new Bits().int(1, 2).flag(u.Gpc).b64(8);
  }
  function gppPing() {
    var applies = cfg && cfg.regime === 'ccpa';
    return {gppVersion: '1.1', cmpStatus: 'loaded', cmpDisplayStatus: ui ? 'visible' : 'hidden',
      signalStatus: cfg ? 'ready' : 'not ready', supportedAPIs: ['7:usnat'],
      cmpId: (cfg && cfg.cmp && cfg.cmp.cmp_id) || 0, sectionList: [7],
      applicableSections: applies ? [7] : [-1], gppString: gppString(), parsedSections: {usnat: usnat()}};
  }

  // ---------- __tcfapi and __gpp ----------
  var tcfListeners = [], gppListeners = [], nextListener = 1;
  function tcfapi(cmd, version, cb, param) {
    if (typeof cb !== 'function') return;
    if (cmd === 'ping') {
      cb({gdprApplies: cfg.regime === 'gdpr' || cfg.regime === 'uk_gdpr', cmpLoaded: true,
        cmpStatus: 'loaded', displayStatus: ui ? 'visible' : 'hidden', apiVersion: '2.2',
        cmpVersion: cfg.cmp.cmp_version || 1, cmpId: cfg.cmp.cmp_id, gvlVersion: cfg.cmp.gvl_version || 0,
        tcfPolicyVersion: cfg.cmp.tcf_policy_version || 5}, true);
    } else if (cmd === 'addEventListener') {
      var l = {id: nextListener++, cb: cb};
      tcfListeners.push(l);
      cb(tcData(l.id), true);
    } else if (cmd === 'removeEventListener') {
      var n = tcfListeners.length;
      tcfListeners = tcfListeners.filter(function (x) { return x.id !== param; });
      cb(tcfListeners.length < n);
    } else if (cmd === 'getTCData') {
      var t = tcData(undefined);
      if (Array.isArray(param)) {
        var vc = {};
        param.forEach(function (v) { vc[v] = !!t.vendor.consents[v]; });
        t.vendor.consents = vc;
      }
      cb(t, true);
    } else cb(null, false);
  }
  function gppapi(cmd, cb, param) {
    if (typeof cb !== 'function') return null;
    var ping = gppPing(), u = ping.parsedSections.usnat;
    if (cmd === 'ping') cb(ping, true);
    else if (cmd === 'addEventListener') {
      var l = {id: nextListener++, cb: cb};
      gppListeners.push(l);
      cb({eventName: 'listenerRegistered', listenerId: l.id, data: true, pingData: ping}, true);
    } else if (cmd === 'removeEventListener') {
      var n = gppListeners.length;
      gppListeners = gppListeners.filter(function (x) { return x.id !== param; });
      cb(gppListeners.length < n, true);
    } else if (cmd === 'hasSection') cb(param === 'usnat' || param === 'usnatv1' || param === 7, true);
    else if (cmd === 'getSection') cb(param === 'usnat' || param === 'usnatv1' ? u : null, true);
    else if (cmd === 'getField') {
      var f = String(param).split('.');
      cb((f[0] === 'usnat' || f[0] === 'usnatv1') && f[1] in u ? u[f[1]] : null, true);
    } else cb(null, false);
    return null;
  }
  function locator(name) {
    if (w.frames[name]) return;
    var add = function () {
      if (d.body) d.body.appendChild(el('iframe', {name: name, title: name, hidden: true, 'aria-hidden': 'true', tabindex: '-1'}));
      else setTimeout(add, 5);
    };
    add();
  }
  function onMessage(ev) {
    var data = ev.data, json = typeof data === 'string';
    if (json) { try { data = JSON.parse(data); } catch (e) { return; } }
    if (!data || typeof data !== 'object') return;
    var reply = function (key, callId) {
      return function (value, success) {
        var msg = {};
        msg[key] = {returnValue: value, success: success, callId: callId};
        if (ev.source) ev.source.postMessage(json ? JSON.stringify(msg) : msg, '*');
      };
    };
    var t = data.__tcfapiCall, g = data.__gppCall;
    if (t && w.__tcfapi === tcfapi) tcfapi(t.command, t.version, reply('__tcfapiReturn', t.callId), t.parameter);
    if (g && w.__gpp === gppapi) gppapi(g.command, reply('__gppReturn', g.callId), g.parameter);
  }
  function installStandards() {
    var queued = [];
    if (cfg.cmp && typeof cfg.cmp.cmp_id === 'number') {
      if (typeof w.__tcfapi === 'function') { try { queued = w.__tcfapi() || []; } catch (e) { queued = []; } }
      w.__tcfapi = tcfapi;
      locator('__tcfapiLocator');
      (Array.isArray(queued) ? queued : []).forEach(function (a) { tcfapi.apply(null, a); });
    }
    queued = [];
    if (typeof w.__gpp === 'function') { try { queued = w.__gpp('queue') || []; } catch (e) { queued = []; } }
    w.__gpp = gppapi;
    locator('__gppLocator');
    (Array.isArray(queued) ? queued : []).forEach(function (a) { gppapi(a[0], a[1], a[2]); });
    w.addEventListener('message', onMessage);
  }
  function notifyStandards(status) {
    if (w.__tcfapi === tcfapi) tcfListeners.forEach(function (l) { l.cb(tcData(l.id, status), true); });
    var ping = gppPing();
    gppListeners.forEach(function (l) {
      l.cb({eventName: 'signalStatus', listenerId: l.id, data: 'ready', pingData: ping}, true);
      l.cb({eventName: 'sectionChange', listenerId: l.id, data: 'usnat', pingData: ping}, true);
    });
  }

  // ---------- Blocking and releasing scripts and iframes ----------
  function allowed(e) {
    var granted = state();
    return e.getAttribute('data-accord-purpose').split(/[\s,]+/).every(function (k) { return !k || granted[k] === true; });
  }
  function release(e) {
    if (!e.parentNode || e.__accordDone) return;
    if (e.tagName === 'SCRIPT') {
      var s = d.createElement('script');
      Array.prototype.forEach.call(e.attributes, function (a) {
        if (a.name !== 'type' && a.name !== 'data-accord-purpose' && a.name !== 'nonce') s.setAttribute(a.name, a.value);
      });
      if (e.getAttribute('data-type')) s.type = e.getAttribute('data-type');
      if (nonce) s.nonce = nonce;
      if (e.src || e.getAttribute('src')) s.async = false;
      else s.text = e.text;
      s.__accordDone = true;
      e.__accordDone = true;
      e.parentNode.replaceChild(s, e);
    } else {
      e.__accordDone = true;
      if (e.__accordHolder) { e.__accordHolder.remove(); e.__accordHolder = null; }
      e.removeAttribute('hidden');
      e.src = e.getAttribute('data-src');
    }
  }
  function placeholder(f) {
    if (f.__accordHolder || !cfg) return;
    var keys = f.getAttribute('data-accord-purpose').split(/[\s,]+/);
    var names = purposes().filter(function (p) { return keys.indexOf(p.key) >= 0; }).map(function (p) { return p.name; });
    var msg = (texts.placeholder || '').replace('{purpose}', names.join(', '));
    var box = el('div', {class: 'acc-ph', role: 'region', 'aria-label': f.title || texts.placeholder || 'embed'}, [
      el('p', {text: msg}),
      el('button', {type: 'button', class: 'acc-b', text: texts.placeholder_button, on: {click: function () {
        var g = {};
        keys.forEach(function (k) { if (k) g[k] = true; });
        decide(g, 'banner', true);
      }}})
    ]);
    f.setAttribute('hidden', '');
    f.parentNode.insertBefore(box, f);
    f.__accordHolder = box;
  }
  function scan(root) {
    if (!cfg) return;
    var list = root.matches && root.matches(BLOCKED) ? [root] : [];
    list = list.concat(Array.prototype.slice.call(root.querySelectorAll ? root.querySelectorAll(BLOCKED) : []));
    list.forEach(function (e) {
      if (e.__accordDone) return;
      if (allowed(e)) release(e);
      else if (e.tagName === 'IFRAME') placeholder(e);
    });
  }
  new MutationObserver(function (records) {
    records.forEach(function (r) { Array.prototype.forEach.call(r.addedNodes, function (n) { if (n.nodeType === 1) scan(n); }); });
  }).observe(d.documentElement, {childList: true, subtree: true});

  // ---------- Cookies: the choice, and deleting cookies of refused purposes ----------
  function writeChoice() {
    if (preview) return;
    var c = cfg.cookie || {}, name = c.name || 'accord_consent';
    var parts = [name + '=' + b64url(JSON.stringify(choice)), 'Path=/', 'SameSite=Lax',
      'Max-Age=' + Math.round((c.max_age_days || 180) * 86400)];
    if (c.domain) parts.push('Domain=' + c.domain);
    if (location.protocol === 'https:') parts.push('Secure');
    d.cookie = parts.join('; ');
  }
  function deleteCookies(patterns) {
    var host = location.hostname.split('.'), domains = [''];
    for (var i = 0; i < host.length - 1; i++) domains.push('; Domain=.' + host.slice(i).join('.'));
    var expire = '=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT';
    cookies().forEach(function (name) {
      var hit = patterns.some(function (p) {
        if (p.charAt(0) !== '^') return p === name;
        try { return new RegExp(p).test(name); } catch (e) { return false; }
      });
      if (hit) domains.forEach(function (dm) { d.cookie = name + expire + dm; });
    });
  }

  // ---------- Recording a choice ----------
  function decide(granted, source, merge) {
    var now = state(), p = [], dn = [];
    purposes().forEach(function (x) {
      var on = isRequired(x) || (x.key in granted ? !!granted[x.key] : (merge ? now[x.key] : false));
      (on ? p : dn).push(x.key);
    });
    choice = {v: cfg.notice.version, p: p, d: dn, ven: [], t: Math.floor(Date.now() / 1000),
      id: anonymousId(), h: cfg.notice.text_hash, g: (gpc || !!cfg.gpc) ? 1 : 0};
    var after = state(), vendors = vendorState(after);
    choice.ven = Object.keys(vendors).filter(function (k) { return vendors[k]; });
    writeChoice();
    var refused = [];
    purposes().forEach(function (x) { if (!after[x.key]) refused = refused.concat(x.cookies || []); });
    if (refused.length && !preview) deleteCookies(refused);
    apply('useractioncomplete', true);
    var body = {writeKey: ds.writeKey, anonymousId: choice.id, userId: ds.userId || null, property: ds.property,
      notice: {id: cfg.notice.id, version: cfg.notice.version, variant: cfg.notice.variant || null,
        text_hash: cfg.notice.text_hash},
      language: cfg.notice.language, regime: cfg.regime, source: source, purposes: {}, vendors: vendors,
      gpc: gpc || !!cfg.gpc, tcString: tcString()};  // no timestamp: the server's clock, not the visitor's
    purposes().forEach(function (x) { body.purposes[x.key] = after[x.key]; });
    var url = cfg.endpoint ? new URL(cfg.endpoint, base + '/').href : base + '/v1/consent';
    api.lastPost = preview ? Promise.resolve(null) : fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(body), keepalive: true, credentials: 'omit'}).then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .catch(function (e) { if (w.console) console.warn('accord: consent not recorded', e); return null; });
    close();
  }
  function all(on) {
    var g = {};
    purposes().forEach(function (x) { g[x.key] = on; });
    return g;
  }
  function apply(status, changed) {
    var granted = state();
    w.gtag('consent', 'update', signalsFor(granted, purposes()));
    scan(d.documentElement);
    notifyStandards(status);
    showReopen();
    if (!changed) return;
    var snapshot = api.get();
    handlers.change.forEach(function (fn) { try { fn(snapshot); } catch (e) { setTimeout(function () { throw e; }); } });
  }

  // ---------- The banner and the preference centre ----------
  function button(label, cls, fn, extra) {
    return el('button', Object.assign({type: 'button', class: 'acc-b ' + cls, text: label, on: {click: fn}}, extra || {}));
  }
  function choiceButtons(source) {
    return [
      button(texts.reject_all, 'acc-main', function () { decide(all(false), source); }, {'data-accord': 'reject'}),
      button(texts.accept_all, 'acc-main', function () { decide(all(true), source); }, {'data-accord': 'accept'})
    ];
  }
  // CCPA: one click opts out of every purpose that feeds advertising (sale and sharing).
  function doNotSell(source) {
    if (!cfg.show_do_not_sell) return null;
    return button(texts.do_not_sell_label, 'acc-alt', function () {
      var g = {};
      purposes().forEach(function (p) { if (saleSignals(p)) g[p.key] = false; });
      decide(g, source, true);
    }, {'data-accord': 'do-not-sell'});
  }
  function policyLink() {
    var url = safeUrl(texts.privacy_policy_url);
    return url ? el('a', {href: url, class: 'acc-l', text: texts.privacy_policy_label || url}) : null;
  }
  function bannerView() {
    var t = id('t'), ds2 = id('d');
    return {labelledby: t, describedby: ds2, body: [
      safeUrl(cfg.notice.logo_url) ? el('img', {src: safeUrl(cfg.notice.logo_url), alt: '', class: 'acc-logo'}) : null,
      el('h2', {id: t, class: 'acc-h', text: texts.title}),
      el('p', {id: ds2, class: 'acc-p'}, [d.createTextNode(texts.description + ' '), policyLink()]),
      gpcNotice(),
      el('div', {class: 'acc-row'}, choiceButtons('banner').concat([
        button(texts.customise, 'acc-alt', function () { render('prefs'); }, {'data-accord': 'customise'}),
        doNotSell('banner')
      ]))
    ]};
  }
  function prefsView() {
    var t = id('t'), granted = choice ? state() : {};
    var rows = purposes().map(function (p) {
      var inputId = id('p'), descId = id('pd'), req = isRequired(p);
      var vendors = ((cfg && cfg.vendors) || []).filter(function (v) { return (v.purposes || []).indexOf(p.key) >= 0; });
      return el('li', {class: 'acc-pur'}, [
        el('div', {class: 'acc-row'}, [
          el('input', {type: 'checkbox', role: 'switch', id: inputId, 'data-purpose': p.key, 'aria-describedby': descId,
            checked: req || granted[p.key] === true, disabled: req, class: 'acc-sw'}),
          el('label', {for: inputId, class: 'acc-n', text: p.name + (req && texts.always_on ? ' (' + texts.always_on + ')' : '')})
        ]),
        el('p', {id: descId, class: 'acc-p', text: p.description}),
        vendors.length ? el('details', {class: 'acc-v'}, [
          el('summary', {text: (texts.vendors_label || 'Vendors') + ' (' + vendors.length + ')'}),
          el('ul', {}, vendors.map(function (v) {
            var url = safeUrl(v.policy_url);
            return el('li', {}, [url ? el('a', {href: url, class: 'acc-l', text: v.name}) : d.createTextNode(v.name)]);
          }))
        ]) : null
      ]);
    });
    return {labelledby: t, describedby: null, body: [
      el('h2', {id: t, class: 'acc-h', text: texts.customise}),
      el('p', {class: 'acc-p'}, [d.createTextNode(texts.description + ' '), policyLink()]),
      gpcNotice(),
      el('ul', {class: 'acc-list'}, rows),
      el('div', {class: 'acc-row'}, choiceButtons('preference_centre').concat([
        button(texts.save, 'acc-alt', function () {
          var g = {};
          Array.prototype.forEach.call(ui.dialog.querySelectorAll('input[data-purpose]'), function (i) { g[i.getAttribute('data-purpose')] = i.checked; });
          decide(g, 'preference_centre');
        }, {'data-accord': 'save'})
      ]))
    ]};
  }
  function focusables() {
    return Array.prototype.filter.call(ui.dialog.querySelectorAll('button,a[href],input:not([disabled]),summary'),
      function (e) { return e.offsetParent !== null || e === d.activeElement; });
  }
  function onKey(ev) {
    if (ev.key === 'Escape') {
      if (ui.view === 'prefs' && !ui.direct) render('banner');
      else if (choice) close();
      ev.preventDefault();
    } else if (ev.key === 'Tab') {
      var f = focusables(), first = f[0], last = f[f.length - 1];
      if (!f.length) return;
      if (ev.shiftKey && (d.activeElement === first || d.activeElement === ui.dialog)) { last.focus(); ev.preventDefault(); }
      else if (!ev.shiftKey && d.activeElement === last) { first.focus(); ev.preventDefault(); }
    }
  }
  function styleOnce() {
    if (d.getElementById('accord-cmp-style')) return;
    var s = el('style', {id: 'accord-cmp-style'});
    if (nonce) s.nonce = nonce;
    s.textContent = CSS;
    d.head.appendChild(s);
  }
  function render(view, direct) {
    styleOnce();
    if (!ui) {
      var dialog = el('div', {role: 'dialog', 'aria-modal': 'true', tabindex: '-1', class: 'acc-d'});
      dialog.addEventListener('keydown', onKey);
      var root = el('div', {class: 'acc acc-' + (cfg.notice.layout === 'box' ? 'box' : 'bar'), lang: cfg.notice.language}, [dialog]);
      var c = cfg.notice.colours || {};
      [['--acc-bg', c.background], ['--acc-fg', c.text], ['--acc-a', c.accent]].forEach(function (x) {
        if (x[1]) root.style.setProperty(x[0], x[1]);
      });
      ui = {root: root, dialog: dialog, returnTo: d.activeElement, direct: !!direct};
      d.body.appendChild(root);
    }
    var v = view === 'prefs' ? prefsView() : bannerView();
    ui.view = view;
    ui.root.classList.toggle('acc-prefs', view === 'prefs');
    ui.dialog.setAttribute('aria-labelledby', v.labelledby);
    if (v.describedby) ui.dialog.setAttribute('aria-describedby', v.describedby); else ui.dialog.removeAttribute('aria-describedby');
    ui.dialog.textContent = '';
    v.body.forEach(function (n) { if (n) ui.dialog.appendChild(n); });
    ui.dialog.focus();
    if (reopen) reopen.hidden = true;
  }
  function close() {
    if (!ui) return;
    var back = ui.returnTo;
    ui.root.remove();
    ui = null;
    showReopen();
    if (back && back.focus && d.contains(back) && back !== d.body) back.focus();
  }
  function showReopen() {
    if (!cfg || !choice || ui) return;
    if (!reopen) {
      styleOnce();
      var kids = [button(texts.reopen_label, 'acc-alt', function () { api.open(); }, {'data-accord': 'reopen'}),
        doNotSell('preference_centre')];
      reopen = el('div', {class: 'acc acc-re', role: 'region', 'aria-label': texts.reopen_label}, kids);
      d.body.appendChild(reopen);
    }
    reopen.hidden = false;
  }

  // ---------- Loading ----------
  function pickLanguage(available) {
    var wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || 'en']);
    for (var i = 0; i < wanted.length; i++) {
      var l = String(wanted[i]).toLowerCase();
      if (available.indexOf(l) >= 0) return l;
      if (available.indexOf(l.split('-')[0]) >= 0) return l.split('-')[0];
    }
    return null;
  }
  function fetchConfig(lang) {
    var q = new URLSearchParams({writeKey: ds.writeKey || '', property: ds.property || '', anonymousId: anonymousId()});
    if (lang) q.set('lang', lang);
    return fetch(base + '/v1/consent/config?' + q, {credentials: 'omit'}).then(function (r) {
      if (!r.ok) throw new Error('config ' + r.status);
      return r.json();
    });
  }
  function start(config) {
    cfg = config;
    texts = Object.assign({}, cfg.notice.texts);
    // Labels a notice may not define (always_on, vendors_label) come from Accord's default
    // texts of the same language, fetched in the background: only the preference centre uses them.
    if (!texts.always_on || !texts.vendors_label) {
      fetch(base + '/cmp/i18n/' + encodeURIComponent(cfg.notice.language) + '.json', {credentials: 'omit'})
        .then(function (r) { return r.ok ? r.json() : {}; })
        .then(function (t) { Object.keys(t).forEach(function (k) { if (!texts[k]) texts[k] = t[k]; }); })
        .catch(function () {});
    }
    var stored = preview ? null : readCookie((cfg.cookie && cfg.cookie.name) || 'accord_consent');
    if (stored && Array.isArray(stored.p)) choice = stored;
    installStandards();
    apply(choice ? 'tcloaded' : 'cmpuishown');
    if (!choice || choice.v !== cfg.notice.version || gpcOverridesChoice()) {
      var go = function () { render('banner'); notifyStandards('cmpuishown'); };
      if (d.body) go(); else d.addEventListener('DOMContentLoaded', go);
    }
    handlers.ready.forEach(function (fn) { fn(api.get()); });
  }
  function whenBody(fn) { if (d.body) fn(); else d.addEventListener('DOMContentLoaded', fn); }

  var api = {
    get: function () {
      var granted = state();
      return {ready: !!cfg, choiceMade: !!choice, purposes: granted, vendors: vendorState(granted),
        regime: cfg && cfg.regime, gpc: gpc || !!(cfg && cfg.gpc), language: cfg && cfg.notice.language,
        anonymousId: anonymousId(), tcString: tcString(), gppString: cfg ? gppString() : null,
        requiresOptIn: !cfg || !!cfg.requires_opt_in, collection: (cfg && cfg.collection) || null};
    },
    on: function (name, fn) {
      (handlers[name] = handlers[name] || []).push(fn);
      if (name === 'ready' && cfg) fn(api.get());
      return function () { handlers[name] = handlers[name].filter(function (f) { return f !== fn; }); };
    },
    open: function () { if (cfg) whenBody(function () { render('prefs', true); }); },
    acceptAll: function () { if (cfg) decide(all(true), 'api'); },
    rejectAll: function () { if (cfg) decide(all(false), 'api'); },
    set: function (granted) { if (cfg) decide(granted, 'api', true); },
    withdraw: function () { if (cfg) decide(all(false), 'api'); }
  };
  api.ready = new Promise(function (resolve) { handlers.ready.push(resolve); });
  w.accord = w.accord || {};
  w.accord.consent = api;

  d.addEventListener('click', function (ev) {
    var t = ev.target && ev.target.closest && ev.target.closest('[data-accord-open]');
    if (t) { ev.preventDefault(); api.open(); }
  });

  (preview ? Promise.resolve(preview) : fetchConfig(null).then(function (c) {
    var best = pickLanguage(c.notice.languages || []);
    return best && best !== c.notice.language ? fetchConfig(best) : c;
  })).then(function (c) { whenBody(function () { start(c); }); })
    .catch(function (e) { if (w.console) console.warn('accord: consent banner unavailable', e); });
})();
