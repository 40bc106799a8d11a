//! The Envoy filter: the only crate that talks to the host (proxy-wasm). It reads headers and bodies, feeds them
//! to the pure `Exchange`, and applies what it decides. Every hostcall that can fail is called
//! through `hostcalls`, which returns a `Result`, never through the SDK's unwrapping helpers.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use std::cell::Cell;
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;
use tollgate_core::config::Config;
use tollgate_core::errors::Code;
use tollgate_core::exchange::{
    BodyAction, ChunkAction, Env, Exchange, HeadAction, HeaderEdit, LocalReply, Outcome, RequestHead, UploadAction,
};
use tollgate_core::metrics::{AccountStat, Stat, ACCOUNT_SLOTS, MODEL_SLOTS};

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

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

struct Root {
    config: Option<Rc<Config>>,
    metrics: Rc<Metrics>,
    ids: Rc<Ids>,
}

/// Mints the billing records' request ids: 128 bits from two hashers that std seeds from the
/// host's random source (WASI `random_get`) once per VM, over a per-VM counter, the context id
/// and the time. The client's own `x-request-id` is never the record's id.
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
        let seed = (n, context_id, now_ms());
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
    /// Per-account ids by account index (`account_metrics`; empty when off).
    per_account: RefCell<Vec<[Option<u32>; ACCOUNT_SLOTS]>>,
}

/// Up to this many accounts, the per-account stats are defined at configuration (about ten
/// hostcalls an account and VM); beyond, each is defined at its first use.
const EAGER_ACCOUNTS: usize = 1000;

fn define(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

fn add(id: Option<u32>, n: u64) {
    if let (Some(id), true) = (id, n > 0) {
        let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
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

    fn record(&self, cfg: &Config, o: &Outcome, store_failures: u32, account: Option<usize>) {
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
        add(self.store_failures, u64::from(store_failures));
    }
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        // Read in pieces, never whole: the VM's memory never shrinks, and a million keys are
        // 120 MB of text (`Config::parse_pieces`).
        let parsed = if size == 0 {
            Config::parse(b"{}")
        } else {
            Config::parse_pieces(
                &mut |offset, max| match hostcalls::get_buffer(BufferType::PluginConfiguration, offset, max) {
                    Ok(piece) => Ok(piece.unwrap_or_default()),
                    Err(e) => Err(format!("cannot read the plugin configuration: {e:?}")),
                },
                size,
            )
        };
        match parsed {
            Ok(cfg) => {
                log(
                    LogLevel::Info,
                    &format!(
                        "tollgate: configured {} keys, {} accounts, {} models, {} clusters",
                        cfg.keys.len(),
                        cfg.accounts.len(),
                        cfg.models.len(),
                        cfg.clusters.len()
                    ),
                );
                let metrics = Metrics::new(&cfg);
                self.config = Some(Rc::new(cfg));
                self.metrics = Rc::new(metrics);
                true
            }
            Err(e) => {
                log(LogLevel::Critical, &format!("tollgate: invalid configuration: {e}"));
                false
            }
        }
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
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn env(store: &store::SharedData) -> Env<'_> {
    Env { now_ms: now_ms(), store }
}

/// A header's value, decoded lossily (the SDK's `get_map_value` panics on non-UTF-8 bytes).
fn header(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(map, name).ok().flatten().map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn apply(map: MapType, edits: &[HeaderEdit]) {
    for e in edits {
        let _ = match e {
            HeaderEdit::Set(k, v) => hostcalls::set_map_value(map, k, Some(v)),
            HeaderEdit::Remove(k) => hostcalls::remove_map_value(map, k),
        };
    }
}

impl Http {
    fn reply(&self, r: &LocalReply) -> Action {
        self.store_trace_attributes();
        let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Err(e) = hostcalls::send_http_response(u32::from(r.status), headers, Some(&r.body)) {
            log(LogLevel::Error, &format!("tollgate[{}]: local reply failed: {e:?}", self.id));
        }
        Action::Pause
    }
}

impl Http {
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

fn store_trace_attribute(name: &str, value: &str) {
    let _ = hostcalls::set_property(
        vec![format!("{}{name}", tollgate_core::trace::PREFIX).as_str()],
        Some(value.as_bytes()),
    );
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
            hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size).ok().flatten().unwrap_or_default()
        };
        match self.ex.on_upload_body(cfg, &buffered, size, end_of_stream, &env(&store::SharedData)) {
            UploadAction::NeedMore => Action::Pause,
            UploadAction::Continue => Action::Continue,
            UploadAction::Reply(r) => self.reply(&r),
            UploadAction::Forward { edits, body } => {
                apply(MapType::HttpRequestHeaders, &edits);
                if let Some(b) = body {
                    if let Err(e) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, &b) {
                        log(LogLevel::Error, &format!("tollgate[{}]: cannot rewrite the upload: {e:?}", self.id));
                    }
                }
                Action::Continue
            }
        }
    }
}

impl Http {
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
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                log(LogLevel::Error, &format!("tollgate[{}]: cannot read the request body: {e:?}", self.id));
                Vec::new()
            }
        };
        match self.ex.on_request_body(&cfg, &body, &env(&store::SharedData)) {
            BodyAction::Reply(r) => self.reply(&r),
            BodyAction::Forward { edits, body: new_body } => {
                apply(MapType::HttpRequestHeaders, &edits);
                if let Some(b) = new_body {
                    if let Err(e) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, &b) {
                        log(LogLevel::Error, &format!("tollgate[{}]: cannot rewrite the request body: {e:?}", self.id));
                    }
                }
                Action::Continue
            }
        }
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let m = MapType::HttpRequestHeaders;
        // One hostcall for all of them; bytes, never the SDK's unwrapping UTF-8 conversion.
        let pairs = hostcalls::get_map_bytes(m).unwrap_or_default();
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
        };
        let cfg = Rc::clone(&self.config);
        let action = self.ex.on_request_headers(&cfg, &head, &env(&store::SharedData));
        // The `?key=` leaves the path before anything else (reply, log or forward); if the host
        // refuses the edit, fail closed: a 500, nothing upstream.
        if let Some(p) = self.ex.take_path_without_key() {
            if hostcalls::set_map_value(m, ":path", Some(&p)).is_err() {
                log(LogLevel::Error, &format!("tollgate[{}]: cannot remove the key from the path", self.id));
                let r = self.ex.path_strip_failed();
                return self.reply(&r);
            }
        }
        // The record's id, never the client's: the client gets it back in `x-request-id`
        // (Envoy's `always_set_request_id_in_response` reads the request's header).
        let _ = hostcalls::set_map_value(m, "x-request-id", Some(&self.ex.request_id));
        match action {
            HeadAction::Reply(r) => self.reply(&r),
            HeadAction::ReadBody(mut edits) => {
                // Only the allowlisted client headers go upstream (tollgate_core::headers::forwarded).
                for name in tollgate_core::headers::not_forwarded(&pairs, &cfg.pass_request_headers) {
                    edits.push(HeaderEdit::Remove(name.to_string()));
                }
                apply(m, &edits);
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.ex.local_reply {
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
    /// trailers themselves are removed (they could carry a credential).
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let m = MapType::HttpRequestTrailers;
        for (name, _) in hostcalls::get_map_bytes(m).unwrap_or_default() {
            let _ = hostcalls::remove_map_value(m, &name);
        }
        if self.ex.local_reply {
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
        self.ex.response_started(now_ms());
        let m = MapType::HttpResponseHeaders;
        let status = header(m, ":status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        let content_type = header(m, "content-type");
        let edits = self.ex.on_response_headers(status, content_type.as_deref());
        if end_of_stream {
            // An error without a body (no body phase follows to write ours in): answer now.
            let details = hostcalls::get_property(vec!["response", "code_details"]).ok().flatten();
            let details = details.as_deref().map(String::from_utf8_lossy);
            if let Some(r) = self.ex.bodyless_error_reply(&self.config, details.as_deref()) {
                return self.reply(&r);
            }
        }
        apply(m, &edits);
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

    /// The log phase: Envoy runs it for every request, also after a client disconnect or an
    /// upstream reset, and before its access loggers (so the record is there for them).
    fn on_log(&mut self) {
        let cfg = Rc::clone(&self.config);
        if self.ex.start_ms == 0 && self.ex.status == 0 {
            // Envoy answered before the filter saw any headers (431, 400 bad HTTP): record the
            // status it sent (a property: a little-endian u64).
            let code = hostcalls::get_property(vec!["response", "code"]).ok().flatten();
            if let Some(b) = code.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok()) {
                self.ex.status = u16::try_from(u64::from_le_bytes(b)).unwrap_or(0);
            }
        }
        let outcome = self.ex.on_done(&cfg, &env(&store::SharedData));
        if let Err(e) = hostcalls::set_property(vec![BILLING_PROPERTY], Some(&outcome.record)) {
            log(LogLevel::Error, &format!("tollgate[{}]: cannot store the billing record: {e:?}", self.id));
        }
        self.metrics.record(&cfg, &outcome, self.ex.store_failures, self.ex.account);
        // Too late for the span, but access logs can still read them (a stream cut off, a
        // client gone: no end of response was seen).
        self.store_trace_attributes();
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
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
        let chunk = if size == 0 {
            Vec::new()
        } else {
            match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size) {
                Ok(b) => b.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        };
        let action = self.ex.on_response_chunk(&chunk, end_of_stream, max);
        if end_of_stream {
            self.store_trace_attributes();
        }
        if let Some(status) = self.ex.take_status_override() {
            let m = MapType::HttpResponseHeaders;
            let _ = hostcalls::set_map_value(m, ":status", Some(&status.to_string()));
            let _ = hostcalls::set_map_value(m, "content-type", Some("application/json"));
            // The override is our 502 `upstream_error`: retryable when the upstream's body was
            // invalid, not when its response was larger than the gateway buffers.
            let retry = if self.ex.refused_oversized() { "false" } else { "true" };
            let _ = hostcalls::set_map_value(m, "x-should-retry", Some(retry));
        }
        match action {
            ChunkAction::Pass => Action::Continue,
            ChunkAction::Buffer => Action::Pause,
            ChunkAction::Replace(out) => {
                if let Err(e) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &out) {
                    log(LogLevel::Error, &format!("tollgate[{}]: cannot rewrite the response body: {e:?}", self.id));
                }
                Action::Continue
            }
        }
    }
}
