//! The Envoy filter: the only crate that talks to the host (proxy-wasm). It reads headers and bodies, feeds them
//! to the pure `Exchange`, and applies what it decides. Every hostcall that can fail is called
//! through `host`, which returns a `Result`, never through the SDK's panicking wrappers.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};
use tollgate_core::config::{Config, LimitsStore};
use tollgate_core::errors::Code;
use tollgate_core::exchange::{
    BodyAction, ChunkAction, Env, Exchange, HeadAction, HeaderEdit, LocalReply, Outcome, RequestHead, UploadAction,
};
use tollgate_core::metrics::{AccountStat, Stat, ACCOUNT_SLOTS, MODEL_SLOTS};

mod codegen;
mod configure;
mod failover;
mod host;
mod settle;
mod store;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: None, metrics: Rc::new(Metrics::default()), ids: Rc::new(Ids::new()) })
    });
}}

/// The billing record's filter state name; access logs read it as
/// `%FILTER_STATE(wasm.tollgate.billing:PLAIN)%` (Envoy prefixes `wasm.`).
const BILLING_PROPERTY: &str = "tollgate.billing";

/// Hostcalls the host refused and the glue could only count (a response header it could not
/// set, a billing record it could not store); the ones that refuse a request are also counted.
pub const HOSTCALL_FAILURES: &str = "tollgate.hostcall_failures";

/// Logs; a log the host refuses is dropped (there is nowhere else to say it).
fn log(level: LogLevel, msg: &str) {
    let _ = host::log(level, msg);
}

struct Root {
    config: Option<Rc<Config>>,
    metrics: Rc<Metrics>,
    ids: Rc<Ids>,
}

/// The settlement stats of the root context (sent, retried, dropped).
fn settle_stats(c: &settle::Counts) {
    use tollgate_core::metrics::{REMOTE_SETTLEMENTS, REMOTE_SETTLE_DROPPED, REMOTE_SETTLE_RETRIES};
    for (name, n) in
        [(REMOTE_SETTLEMENTS, c.sent), (REMOTE_SETTLE_RETRIES, c.retried), (REMOTE_SETTLE_DROPPED, c.dropped)]
    {
        if n > 0 {
            add(define(name), n);
        }
    }
}

/// Mints the billing records' request ids: 128 bits from two hashers that std seeds from the
/// host's random source (WASI `random_get`) once per VM, over a per-VM counter and the context
/// id (unique within the VM; the random keys make them unique across VMs). The client's own
/// `x-request-id` is never the record's id.
struct Ids {
    a: RandomState,
    b: RandomState,
    n: Cell<u64>,
}

impl Ids {
    fn new() -> Self {
        Ids { a: RandomState::new(), b: RandomState::new(), n: Cell::new(0) }
    }

    fn mint(&self, context_id: u32) -> String {
        let n = self.n.get().wrapping_add(1);
        self.n.set(n);
        let seed = (n, context_id);
        tollgate_core::exchange::format_request_id(self.a.hash_one(seed), self.b.hash_one(seed))
    }
}

/// Envoy stats the filter defines. Ids are per VM, stats are shared by name across VMs. Names
/// and tags come from `tollgate_core::metrics`; each is defined once per VM and its id kept in a slot
/// (per model, per error code), so a request costs lookups, not names built and hashed.
#[derive(Default)]
struct Metrics {
    per_model: RefCell<HashMap<String, [Option<u32>; MODEL_SLOTS]>>,
    errors: RefCell<[Option<u32>; Code::ALL.len()]>,
    store_failures: Option<u32>,
    settle_failures: Option<u32>,
    hostcall_failures: Option<u32>,
    remote_failures: Option<u32>,
    remote_fallbacks: Option<u32>,
    /// Per-account ids by account index (`account_metrics`; empty when off).
    per_account: RefCell<Vec<[Option<u32>; ACCOUNT_SLOTS]>>,
}

/// Up to this many accounts, the per-account stats are defined at configuration (about ten
/// hostcalls an account and VM); beyond, each is defined at its first use.
const EAGER_ACCOUNTS: usize = 1000;

/// A stat the host would not define is not counted (its increments are skipped).
fn define(name: &str) -> Option<u32> {
    host::define_counter(name).ok()
}

/// Harmless if refused: a stat misses an increment; nothing else depends on it.
fn add(id: Option<u32>, n: u64) {
    if let (Some(id), true) = (id, n > 0) {
        let _ = host::increment(id, i64::try_from(n).unwrap_or(i64::MAX));
    }
}

impl Metrics {
    /// Defines every stat of the configuration, so they show (at zero) before the first request.
    fn new(cfg: &Config) -> Self {
        for name in tollgate_core::metrics::all_names(cfg) {
            let _ = define(&name);
        }
        let mut per_account = Vec::new();
        if cfg.account_metrics {
            per_account = vec![[None; ACCOUNT_SLOTS]; cfg.accounts.len()];
            if cfg.accounts.len() <= EAGER_ACCOUNTS {
                for (ids, account) in per_account.iter_mut().zip(&cfg.accounts) {
                    for stat in AccountStat::defined() {
                        if let Some(s) = ids.get_mut(stat.slot()) {
                            *s = define(&stat.name(&account.id));
                        }
                    }
                }
            }
        }
        Metrics {
            store_failures: define(tollgate_core::metrics::STORE_FAILURES),
            settle_failures: define(tollgate_core::metrics::SETTLE_FAILURES),
            hostcall_failures: define(HOSTCALL_FAILURES),
            remote_failures: define(tollgate_core::metrics::REMOTE_FAILURES),
            remote_fallbacks: define(tollgate_core::metrics::REMOTE_FALLBACKS),
            per_account: RefCell::new(per_account),
            ..Metrics::default()
        }
    }

    /// The id of an account's stat (`None` when `account_metrics` is off).
    fn account_stat(&self, cfg: &Config, account: usize, stat: AccountStat) -> Option<u32> {
        let slot = stat.slot();
        if let Some(id) = self.per_account.borrow().get(account)?.get(slot).copied().flatten() {
            return Some(id);
        }
        let id = define(&stat.name(&cfg.account(account)?.id))?;
        if let Some(s) = self.per_account.borrow_mut().get_mut(account).and_then(|ids| ids.get_mut(slot)) {
            *s = Some(id);
        }
        Some(id)
    }

    fn model_stat(&self, model: &str, stat: Stat) -> Option<u32> {
        let slot = stat.slot();
        if let Some(id) = self.per_model.borrow().get(model).and_then(|ids| ids.get(slot).copied().flatten()) {
            return Some(id);
        }
        let id = define(&stat.name(model))?;
        let mut map = self.per_model.borrow_mut();
        if let Some(s) = map.entry(model.to_string()).or_insert([None; MODEL_SLOTS]).get_mut(slot) {
            *s = Some(id);
        }
        Some(id)
    }

    fn error_stat(&self, code: Code) -> Option<u32> {
        let slot = tollgate_core::metrics::error_slot(code);
        if let Some(id) = self.errors.borrow().get(slot).copied().flatten() {
            return Some(id);
        }
        let id = define(&tollgate_core::metrics::errors(code))?;
        if let Some(s) = self.errors.borrow_mut().get_mut(slot) {
            *s = Some(id);
        }
        Some(id)
    }

    fn record(&self, cfg: &Config, o: &Outcome, hostcall_failures: u32, account: Option<usize>) {
        if let (Some(a), true) = (account, cfg.account_metrics) {
            for (stat, n) in tollgate_core::metrics::account_increments(o) {
                add(self.account_stat(cfg, a, stat), n);
            }
        }
        let inc = tollgate_core::metrics::increments(o);
        for (stat, n) in &inc.per_model {
            add(self.model_stat(inc.model, *stat), *n);
        }
        if let Some(code) = inc.error {
            add(self.error_stat(code), 1);
        }
        add(self.store_failures, u64::from(o.store_failures));
        add(self.settle_failures, u64::from(o.settle_failures));
        add(self.hostcall_failures, u64::from(hostcall_failures));
        add(self.remote_failures, u64::from(o.remote_failures));
        add(self.remote_fallbacks, u64::from(o.remote_fallbacks));
    }
}

impl Context for Root {
    /// A settlement's answer: done, or back in the queue for the next tick.
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let (status, body) = host::http_call_answer(body_size);
        if settle::answered(token, status, &body) == Some(false) {
            settle_stats(&settle::Counts { retried: 1, ..settle::Counts::default() });
            log(LogLevel::Warn, &format!("tollgate: a settlement was not accepted (status {status}); retried"));
        }
    }
}

impl RootContext for Root {
    /// Sends the queued settlements of this VM (see `settle`).
    fn on_tick(&mut self) {
        let Some(LimitsStore::Remote(remote)) = self.config.as_ref().map(|c| &c.limits) else { return };
        if settle::len() == 0 {
            return;
        }
        let counts = settle::drain(host::now_ms(), remote.hold_ttl_ms, |call| {
            host::dispatch_post(&remote.cluster, call.path, &call.body, remote.timeout_ms.max(1000)).ok()
        });
        if counts.dropped > 0 {
            log(LogLevel::Warn, &format!("tollgate: {} settlements given up; their holds expire", counts.dropped));
        }
        settle_stats(&counts);
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let Some(cfg) = configure::load(size) else { return false };
        if matches!(cfg.limits, LimitsStore::Remote(_)) {
            if let Err(status) = host::set_tick_period(settle::TICK_MS) {
                log(LogLevel::Error, &format!("tollgate: cannot set the tick period (status {status})"));
                return false;
            }
        }
        let metrics = Metrics::new(&cfg);
        self.config = Some(Rc::new(cfg));
        self.metrics = Rc::new(metrics);
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let config = self.config.clone()?;
        let mut ex = Exchange::new();
        ex.request_id = self.ids.mint(context_id);
        Some(Box::new(Http {
            id: context_id,
            config,
            metrics: Rc::clone(&self.metrics),
            ex,
            body_size: 0,
            body_done: false,
            traced: Cell::new(false),
            traced_request: Cell::new(false),
            present: Vec::new(),
            hostcall_failures: 0,
            asking: false,
            failing: failover::Failing::No,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    id: u32,
    config: Rc<Config>,
    metrics: Rc<Metrics>,
    ex: Exchange,
    /// Size of the request body the host holds so far (for request trailers, which end it).
    body_size: usize,
    /// The request body phase has ended (end of stream or trailers seen).
    body_done: bool,
    /// The span attributes are stored (`store_trace_attributes`).
    traced: Cell<bool>,
    /// The request's span attributes are stored (`store_request_trace_attributes`).
    traced_request: Cell<bool>,
    /// The request headers the upstream request has now (read once at the request headers,
    /// then kept up to date by the edits): removing one it does not have, or setting one to the
    /// value it has, is skipped (no hostcall; nothing else edits them while they are held).
    present: Vec<(String, Vec<u8>)>,
    /// Hostcalls the host refused during this request (`HOSTCALL_FAILURES`).
    hostcall_failures: u32,
    /// The request waits for the limits service's answer (paused).
    asking: bool,
    /// A failover to the next tier (`failover`).
    failing: failover::Failing,
}

/// The header an edit touches.
trait EditName {
    fn name(&self) -> &str;
}

impl EditName for HeaderEdit {
    fn name(&self) -> &str {
        match self {
            HeaderEdit::Set(k, _) | HeaderEdit::Remove(k) => k,
        }
    }
}

fn env(store: &store::SharedData) -> Env<'_> {
    Env { now_ms: host::now_ms(), store }
}

impl Http {
    fn reply(&self, r: &LocalReply) -> Action {
        self.store_trace_attributes();
        if let Err(e) = host::send_local_response(r.status, &r.headers, &r.body) {
            // Nothing else can answer: Envoy resets the stream it cannot continue.
            log(LogLevel::Error, &format!("tollgate[{}]: local reply failed: status {e}", self.id));
        }
        Action::Pause
    }

    /// A hostcall the request depends on failed: counted, logged, and the request refused with a
    /// 500 in the caller's dialect before anything of it goes upstream.
    fn fail_closed(&mut self, what: &str, status: host::Status) -> Action {
        self.hostcall_failures = self.hostcall_failures.saturating_add(1);
        log(LogLevel::Error, &format!("tollgate[{}]: {what} (status {status}): the request is refused", self.id));
        let r = self.ex.host_failed();
        self.reply(&r)
    }

    /// A hostcall that only degrades the response failed: counted and logged.
    fn count_failure(&mut self, what: &str, status: host::Status) {
        self.hostcall_failures = self.hostcall_failures.saturating_add(1);
        log(LogLevel::Warn, &format!("tollgate[{}]: {what} (status {status})", self.id));
    }

    /// Applies edits to the request headers, all or nothing as far as the upstream is concerned:
    /// the first one the host refuses fails the request closed (a credential left in place, a
    /// route or a cluster credential not set). Removing a header the request does not have, or
    /// setting one to the single value it has, is skipped (no hostcall).
    fn edit_request(&mut self, edits: &[HeaderEdit]) -> Result<(), Action> {
        let m = MapType::HttpRequestHeaders;
        for e in edits {
            let mut same = self.present.iter().filter(|(p, _)| p.eq_ignore_ascii_case(e.name()));
            let result = match e {
                // Skipped only when the header has exactly this one value (`replace` would also
                // drop any repeated one).
                HeaderEdit::Set(k, v)
                    if same.next().is_some_and(|(_, old)| old == v.as_bytes()) && same.next().is_none() =>
                {
                    Ok(())
                }
                HeaderEdit::Set(k, v) => host::set_header(m, k, v).map(|()| {
                    // `replace` leaves one value: the new one.
                    self.present.retain(|(p, _)| !p.eq_ignore_ascii_case(k));
                    self.present.push((k.to_string(), v.as_bytes().to_vec()));
                }),
                HeaderEdit::Remove(k) if same.next().is_some() => {
                    host::remove_header(m, k).map(|()| self.present.retain(|(p, _)| !p.eq_ignore_ascii_case(k)))
                }
                HeaderEdit::Remove(_) => Ok(()),
            };
            if let Err(status) = result {
                return Err(self.fail_closed(&format!("cannot edit the request header '{}'", e.name()), status));
            }
        }
        Ok(())
    }

    /// Applies edits to the response headers. A refused one is counted, not fatal: none of them
    /// guards a secret or what is billed (usage is read from the body).
    fn edit_response(&mut self, edits: &[HeaderEdit]) {
        let m = MapType::HttpResponseHeaders;
        for e in edits {
            let (name, result) = match e {
                HeaderEdit::Set(k, v) => (k, host::set_header(m, k, v)),
                HeaderEdit::Remove(k) => (k, host::remove_header(m, k)),
            };
            if let Err(status) = result {
                self.count_failure(&format!("cannot edit the response header '{name}'"), status);
            }
        }
    }

    /// Span attributes (`tollgate_core::trace`) as filter state, once, where the outcome is known (a
    /// local reply, the end of the response): Envoy's tracer reads them when it ends the span,
    /// which it does before the log phase.
    fn store_trace_attributes(&self) {
        if !self.config.span_attributes || self.traced.replace(true) {
            return;
        }
        self.store_request_trace_attributes();
        for (name, value) in tollgate_core::trace::outcome_attributes(&self.ex, &self.ex.bill(&self.config)) {
            store_trace_attribute(name, &value);
        }
    }

    /// The request's span attributes, once: when the response starts (so that a response cut
    /// off before its end still has them on its span), or with the outcome's.
    fn store_request_trace_attributes(&self) {
        if !self.config.span_attributes || self.traced_request.replace(true) {
            return;
        }
        let account = self.ex.account.and_then(|a| self.config.account(a)).map(|a| a.id.as_str());
        for (name, value) in tollgate_core::trace::request_attributes(&self.ex, account) {
            store_trace_attribute(name, &value);
        }
    }
}

/// Harmless if refused: a span misses an attribute (the billing record is stored separately).
fn store_trace_attribute(name: &str, value: &str) {
    let _ = host::set_property(&[format!("{}{name}", tollgate_core::trace::PREFIX).as_str()], value.as_bytes());
}

impl Http {
    /// A streamed upload: the buffered start is read until the `model` field is found; after
    /// routing, pieces are only counted (their bytes are never copied into the VM).
    fn upload_body(&mut self, cfg: &Config, size: usize, end_of_stream: bool) -> Action {
        let buffered = if self.ex.local_reply {
            return Action::Pause;
        } else if self.ex.upload_routed() {
            Vec::new()
        } else {
            match host::get_buffer(BufferType::HttpRequestBody, 0, size) {
                Ok(b) => b,
                Err(status) => return self.fail_closed("cannot read the upload", status),
            }
        };
        match self.ex.on_upload_body(cfg, &buffered, size, end_of_stream, &env(&store::SharedData)) {
            UploadAction::AskLimits => self.ask_limits(cfg),
            UploadAction::NeedMore => Action::Pause,
            UploadAction::Continue => Action::Continue,
            UploadAction::Reply(r) => self.reply(&r),
            UploadAction::Forward { edits, body } => self.forward(&edits, body.as_deref(), size),
        }
    }

    /// Lets the request go upstream with these header edits and, if given, this body in place of
    /// the `size` bytes buffered; any refused edit refuses the request instead (the upstream would
    /// get the client's body: another dialect, or the model name before its alias).
    fn forward(&mut self, edits: &[HeaderEdit], body: Option<&[u8]>, size: usize) -> Action {
        if let Err(action) = self.edit_request(edits) {
            return action;
        }
        if let Some(b) = body {
            if let Err(status) = host::set_buffer(BufferType::HttpRequestBody, 0, size, b) {
                return self.fail_closed("cannot rewrite the request body", status);
            }
        }
        Action::Continue
    }

    /// The buffered request body so far (`size` bytes); at its end, validate, route, rewrite.
    fn request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let cfg = Rc::clone(&self.config);
        if self.ex.is_upload() {
            return self.upload_body(&cfg, size, end_of_stream);
        }
        if let Some(r) = self.ex.request_too_large(&cfg, size) {
            return self.reply(&r);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = match host::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(b) => b,
            Err(status) => return self.fail_closed("cannot read the request body", status),
        };
        match self.ex.on_request_body(&cfg, &body, &env(&store::SharedData)) {
            BodyAction::Reply(r) => self.reply(&r),
            BodyAction::Forward { edits, body: new_body } => self.forward(&edits, new_body.as_deref(), size),
            BodyAction::AskLimits => self.ask_limits(&cfg),
        }
    }

    /// Sends the exchange's admit to the limits service and pauses the request until
    /// `on_http_call_response`. A call the host refuses is a failed call, answered now.
    fn ask_limits(&mut self, cfg: &Config) -> Action {
        let (Some(call), LimitsStore::Remote(remote)) = (self.ex.take_limits_call(), &cfg.limits) else {
            let r = self.ex.host_failed();
            return self.reply(&r);
        };
        match host::dispatch_post(&remote.cluster, call.path, &call.body, remote.timeout_ms) {
            Ok(_) => {
                self.asking = true;
                Action::Pause
            }
            Err(status) => {
                log(
                    LogLevel::Warn,
                    &format!("tollgate[{}]: cannot call the limits service (status {status})", self.id),
                );
                self.ex.on_limits_answer(None, host::now_ms());
                self.request_body(self.body_size, self.body_done)
            }
        }
    }
}

impl Context for Http {
    /// The limits service's answer (or the call's failure: no `:status`): the paused request is
    /// decided again with it, and goes on, or gets its local reply.
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if self.failover_answered(token, body_size) {
            return;
        }
        if !self.asking {
            return;
        }
        self.asking = false;
        let (status, body) = host::http_call_answer(body_size);
        let answer = (status != 0).then_some((status, body.as_slice()));
        self.ex.on_limits_answer(answer, host::now_ms());
        if let Action::Continue = self.request_body(self.body_size, self.body_done) {
            if let Err(status) = host::continue_request() {
                self.count_failure("cannot resume the request", status);
            }
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let m = MapType::HttpRequestHeaders;
        // One hostcall for all of them; bytes, never the SDK's unwrapping UTF-8 conversion.
        // Harmless if refused: no headers means no key, and the request gets its 401.
        let pairs = host::header_pairs(m).unwrap_or_default();
        let h = tollgate_core::headers::collect(&pairs);
        let head = RequestHead {
            method: &h.method,
            path: &h.path,
            authorization: h.authorization.as_deref(),
            x_api_key: h.x_api_key.as_deref(),
            x_goog_api_key: h.x_goog_api_key.as_deref(),
            request_id: h.request_id.as_deref(),
            content_type: h.content_type.as_deref(),
            content_length: h.content_length.as_deref().and_then(|v| v.trim().parse::<u64>().ok()),
            end_of_stream,
            anthropic_version: h.anthropic_version,
        };
        let cfg = Rc::clone(&self.config);
        let action = self.ex.on_request_headers(&cfg, &head, &env(&store::SharedData));
        // The `?key=` leaves the path before anything else (reply, log or forward); if the host
        // refuses the edit, fail closed: a 500, nothing upstream.
        let stripped = self.ex.take_path_without_key();
        if let Some(p) = &stripped {
            if let Err(status) = host::set_header(m, ":path", p) {
                self.hostcall_failures = self.hostcall_failures.saturating_add(1);
                log(
                    LogLevel::Error,
                    &format!("tollgate[{}]: cannot remove the key from the path (status {status})", self.id),
                );
                let r = self.ex.path_strip_failed();
                return self.reply(&r);
            }
        }
        // The record's id, never the client's: the client gets it back in `x-request-id`
        // (Envoy's `always_set_request_id_in_response` reads the request's header). Counted if
        // refused: the record keeps its own id, the client and upstream see the client's.
        if let Err(status) = host::set_header(m, "x-request-id", &self.ex.request_id) {
            self.count_failure("cannot set x-request-id", status);
        }
        match action {
            HeadAction::Reply(r) => self.reply(&r),
            HeadAction::ReadBody(mut edits) => {
                // Only the allowlisted client headers go upstream (tollgate_core::headers::forwarded).
                for name in tollgate_core::headers::not_forwarded(&pairs, &cfg.pass_request_headers) {
                    edits.push(HeaderEdit::Remove(name.to_string().into()));
                }
                self.present = pairs;
                let written = [
                    (":path", stripped.map(String::into_bytes)),
                    ("x-request-id", Some(self.ex.request_id.as_bytes().to_vec())),
                ];
                for (name, value) in written {
                    if let Some(v) = value {
                        self.present.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                        self.present.push((name.to_string(), v));
                    }
                }
                match self.edit_request(&edits) {
                    Ok(()) => Action::Pause,
                    Err(action) => action,
                }
            }
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.ex.local_reply {
            return Action::Pause;
        }
        if self.asking {
            // More of an upload while the limits service is asked: buffered, read at the answer.
            self.body_size = size;
            self.body_done = end_of_stream;
            return Action::Pause;
        }
        if self.body_done {
            return Action::Continue;
        }
        self.body_size = size;
        self.body_done = end_of_stream;
        self.request_body(size, end_of_stream)
    }

    /// Request trailers (HTTP/2, chunked HTTP/1.1) end the body: without this, a body followed
    /// by trailers would never be read, so never validated, routed, limited or rewritten. The
    /// trailers themselves are removed (they could carry a credential): one the host will not
    /// remove fails the request closed.
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let m = MapType::HttpRequestTrailers;
        let removed =
            host::header_pairs(m).and_then(|pairs| pairs.iter().try_for_each(|(name, _)| host::remove_header(m, name)));
        if self.ex.local_reply {
            return Action::Pause;
        }
        if let Err(status) = removed {
            return self.fail_closed("cannot remove the request trailers", status);
        }
        if self.asking {
            // The body ends while the limits service is asked: the answer reads all of it.
            self.body_done = true;
            return Action::Pause;
        }
        if self.body_done {
            return Action::Continue;
        }
        self.body_done = true;
        // An upload already routed only counts new pieces: none here.
        let size = if self.ex.upload_routed() { 0 } else { self.body_size };
        self.request_body(size, true)
    }

    fn on_http_response_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        if self.ex.local_reply {
            // Our own reply coming back through the encoder path: nothing in it to read or edit
            // (its time and trace attributes were taken when it was sent).
            self.ex.on_response_headers(0, None);
            return Action::Continue;
        }
        self.ex.response_started(host::now_ms());
        let m = MapType::HttpResponseHeaders;
        // Harmless if refused: no status reads as 0 (an upstream failure: 502), no content type
        // as a body passed through unread.
        // One hostcall for both, read in place (no copy of every response header).
        let [status, content_type] = host::header_values(m, [":status", "content-type"]);
        let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned());
        let status = text(status).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        let content_type = text(content_type);
        if let Some(action) = self.try_failover(status) {
            return action;
        }
        let edits = self.ex.on_response_headers(status, content_type.as_deref());
        if end_of_stream {
            // An error without a body (no body phase follows to write ours in): answer now.
            // Harmless if refused: the reply only loses the name of a missing cluster.
            let details = host::get_property(&["response", "code_details"]).ok().flatten();
            let details = details.as_deref().map(String::from_utf8_lossy);
            if let Some(r) = self.ex.bodyless_error_reply(&self.config, details.as_deref()) {
                return self.reply(&r);
            }
        }
        self.edit_response(&edits);
        if end_of_stream {
            self.store_trace_attributes();
        } else {
            self.store_request_trace_attributes();
        }
        if self.ex.hold_response_headers() {
            // Sent with the body, so that an invalid body can still become a 502.
            return Action::Pause;
        }
        Action::Continue
    }

    /// Trailers of a failed response a failover holds stay held (never let through alone).
    fn on_http_response_trailers(&mut self, _n: usize) -> Action {
        match self.failing {
            failover::Failing::No => Action::Continue,
            _ => Action::Pause,
        }
    }

    /// The log phase: Envoy runs it for every request, also after a client disconnect or an
    /// upstream reset, and before its access loggers (so the record is there for them).
    fn on_log(&mut self) {
        let cfg = Rc::clone(&self.config);
        if self.ex.start_ms == 0 && self.ex.status == 0 {
            // Envoy answered before the filter saw any headers (431, 400 bad HTTP): record the
            // status it sent (a property: a little-endian u64). Harmless if refused: status 0.
            let code = host::get_property(&["response", "code"]).ok().flatten();
            if let Some(b) = code.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()) {
                self.ex.status = u16::try_from(u64::from_le_bytes(b)).unwrap_or(0);
            }
        }
        let outcome = self.ex.on_done(&cfg, &env(&store::SharedData));
        // Counted if refused (the access log then has no record; the stats still count the
        // request, its tokens and credits).
        if let Err(status) = host::set_property(&[BILLING_PROPERTY], &outcome.record) {
            self.hostcall_failures = self.hostcall_failures.saturating_add(1);
            log(LogLevel::Error, &format!("tollgate[{}]: cannot store the billing record (status {status})", self.id));
        }
        if let Some(f) = &outcome.settle_failure {
            log(LogLevel::Warn, &format!("tollgate[{}]: request {}: {f}", self.id, self.ex.request_id));
        }
        if let Some(call) = outcome.remote_settlement.clone() {
            if !settle::push(call, host::now_ms()) {
                settle_stats(&settle::Counts { dropped: 1, ..settle::Counts::default() });
                log(LogLevel::Warn, &format!("tollgate[{}]: settlement queue full; the hold expires", self.id));
            }
        }
        self.metrics.record(&cfg, &outcome, self.hostcall_failures, self.ex.account);
        // Too late for the span, but access logs can still read them (a stream cut off, a
        // client gone: no end of response was seen).
        self.store_trace_attributes();
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if let Some(action) = self.failover_holds(size) {
            return action;
        }
        let max = self.config.max_body_bytes;
        if !end_of_stream && self.ex.buffers_response() {
            // Envoy keeps the body buffered and hands over all of it each time: count it, copy it
            // only at the end.
            let action = self.ex.on_response_buffered(size, max);
            if let Some(r) = self.ex.take_response_reply() {
                return self.reply(&r);
            }
            return match action {
                ChunkAction::Pass => Action::Continue,
                _ => Action::Pause,
            };
        }
        // Our own local reply is read only for a key that logs content (the record keeps it).
        let logs_content = || self.ex.logs_content(&self.config);
        let chunk = if size == 0 || (self.ex.local_reply && !logs_content()) {
            Vec::new()
        } else {
            match host::get_buffer(BufferType::HttpResponseBody, 0, size) {
                Ok(b) => b,
                Err(status) => return self.drop_response("cannot read the response body", status),
            }
        };
        let (action, head) = self.ex.on_response_chunk_head(&chunk, end_of_stream, max, KEEP_HEAD_MIN);
        if end_of_stream {
            self.store_trace_attributes();
        }
        if let Some(status) = self.ex.take_status_override() {
            // The override is our 502 `upstream_error`: retryable when the upstream's body was
            // invalid, not when its response was larger than the gateway buffers.
            let retry = if self.ex.refused_oversized() { "false" } else { "true" };
            self.edit_response(&[
                HeaderEdit::Set(":status".into(), status.to_string().into()),
                HeaderEdit::Set("content-type".into(), "application/json".into()),
                HeaderEdit::Set("x-should-retry".into(), retry.into()),
            ]);
        }
        match action {
            ChunkAction::Pass => Action::Continue,
            ChunkAction::Buffer => Action::Pause,
            ChunkAction::Replace(out) => {
                let set = match chunk.get(..head).filter(|h| !h.is_empty()) {
                    // The chunk's unchanged first bytes go back from the chunk read (Envoy drops
                    // the whole buffer and prepends them), then the rest is appended: they are
                    // not copied into `out` first.
                    Some(h) => host::set_buffer(BufferType::HttpResponseBody, 0, size, h)
                        .and_then(|()| host::set_buffer(BufferType::HttpResponseBody, h.len(), 0, &out)),
                    None => host::set_buffer(BufferType::HttpResponseBody, 0, size, &out),
                };
                // The host has copied the bytes: the next chunk is written into the same memory.
                self.ex.recycle_output(out);
                match set {
                    Ok(()) => Action::Continue,
                    // The upstream's bytes must not reach the client in their place (another
                    // dialect, unredacted error text).
                    Err(status) => self.drop_response("cannot rewrite the response body", status),
                }
            }
        }
    }
}

/// The fewest unchanged bytes at the start of a rewritten stream chunk that are written back
/// from the chunk read, with a second host call appending the rest, rather than copied in front
/// of the rest (see `on_response_chunk_head`): below this, one more crossing costs more than
/// the copy.
const KEEP_HEAD_MIN: usize = 4096;

impl Http {
    /// The response body cannot be read or rewritten: the client must not get the upstream's
    /// bytes unread or untranslated, so the stream is reset (counted, logged). It is billed as
    /// a response cut short: on an estimate unless usage was already read.
    fn drop_response(&mut self, what: &str, status: host::Status) -> Action {
        self.hostcall_failures = self.hostcall_failures.saturating_add(1);
        log(LogLevel::Error, &format!("tollgate[{}]: {what} (status {status}): the response is reset", self.id));
        if let Err(s) = host::reset_response() {
            log(LogLevel::Error, &format!("tollgate[{}]: cannot reset the response (status {s})", self.id));
        }
        Action::Pause
    }
}
