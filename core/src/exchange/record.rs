//! The end of the exchange: the billed usage (reported or estimated), the settlement of the spend
//! reservation at that cost, and the billing record with its ids and date.

use serde_json::Value;

use super::response::ResponseMode;
use super::{Env, Exchange, Outcome};
use crate::config::Config;
use crate::pricing;
use crate::routing::ModelType;
use crate::sse::{write_json_str, write_u64};
use crate::usage::{self, Usage};

/// A JSON object being written (the billing record): `{` before the first field, `,` between.
pub(super) struct Record(pub(super) Vec<u8>);

impl Record {
    pub(super) fn field<T: RecordValue + ?Sized>(&mut self, key: &str, value: &T) {
        self.0.push(if self.0.is_empty() { b'{' } else { b',' });
        self.0.push(b'"');
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
        value.write(&mut self.0);
    }
}

/// A record field's value, written as serde_json writes it: strings, integers and booleans
/// directly (no serializer per field), anything else through serde_json.
pub(super) trait RecordValue {
    fn write(&self, out: &mut Vec<u8>);
}

impl RecordValue for str {
    fn write(&self, out: &mut Vec<u8>) {
        write_json_str(out, self);
    }
}

impl RecordValue for String {
    fn write(&self, out: &mut Vec<u8>) {
        write_json_str(out, self);
    }
}

impl RecordValue for u64 {
    fn write(&self, out: &mut Vec<u8>) {
        write_u64(out, *self);
    }
}

impl RecordValue for u16 {
    fn write(&self, out: &mut Vec<u8>) {
        write_u64(out, u64::from(*self));
    }
}

impl RecordValue for bool {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

impl RecordValue for Value {
    fn write(&self, out: &mut Vec<u8>) {
        let start = out.len();
        // Writing a JSON value to a Vec cannot fail.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.truncate(start);
            out.extend_from_slice(b"null");
        }
    }
}

impl<T: RecordValue + ?Sized> RecordValue for &T {
    fn write(&self, out: &mut Vec<u8>) {
        (**self).write(out);
    }
}

impl<T: RecordValue> RecordValue for Option<T> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.write(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl Exchange {
    /// The exchange is over (Envoy's log phase, also after a client disconnect): decide the billed
    /// usage (the upstream's, or an estimate marked as such when it reported none or the response
    /// was cut short), settle the spend reserved at admission with its cost, and write the record.
    pub fn on_done(&mut self, cfg: &Config, env: &Env) -> Outcome {
        self.now_ms = env.now_ms;
        if self.start_ms == 0 {
            // No request headers were seen (Envoy refused the request itself: headers too large,
            // bad HTTP): the request is dated now and lasted no time, never 1970.
            self.start_ms = env.now_ms;
        }
        // An attempt still out (the client left before its answer) ends here, with no response;
        // a request the gateway answered itself before forwarding had none out.
        if !self.local_reply {
            self.end_attempt(0, env.now_ms);
        }
        let (billed, estimated, micros) = self.bill(cfg);
        // The reservation settles at the billed cost (0 when nothing is billed: a release). A
        // failure is not the client's: the record still bills the request, and the glue counts
        // and logs the reservation left held.
        let settle_failure = self.reserved.take().and_then(|hold| hold.settle(env.store, micros).err());
        // A hold on the limits service settles from the glue's root context (it outlives this
        // request), idempotently by the request id.
        let used = self.tokens_used(&billed);
        self.settle_local_tokens(env, used);
        let remote_settlement = self.take_remote_settlement(micros, used);
        let record = self.record(cfg, &billed, estimated, micros);
        let complete = self.local_reply || self.response_done;
        Outcome {
            status: self.status,
            error: self.error,
            model: self.model.clone(),
            usage: billed,
            estimated,
            micros,
            complete,
            record,
            store_failures: self.store_failures,
            settle_failures: u32::from(settle_failure.is_some()),
            settle_failure,
            remote_failures: self.remote.failures,
            remote_fallbacks: self.remote.fallbacks,
            remote_settlement,
        }
    }

    /// What the exchange bills as it stands: the usage, whether it is an estimate, micro-credits.
    /// `on_done` bills this; the glue also reads it at the end of the response (span attributes,
    /// which Envoy's tracer reads before the log phase).
    pub fn bill(&self, cfg: &Config) -> (Usage, bool, u64) {
        let model = self.priced_model(cfg);
        let (billed, estimated) = self.billed_usage();
        let forwarded = model.is_some() && !self.local_reply;
        // A response refused as oversized was still generated at the client's request: billed.
        let upstream_ok = forwarded && ((200..300).contains(&self.status) || self.cut_bytes.is_some());
        let micros = match model {
            Some(m) if upstream_ok => pricing::cost_micros(m, &self.endpoint, &billed, self.units.unwrap_or(0.0)),
            _ => 0,
        };
        let estimated = estimated || (upstream_ok && self.units_estimated);
        (billed, estimated, micros)
    }

    /// The usage to bill and whether it is an estimate.
    fn billed_usage(&self) -> (Usage, bool) {
        let forwarded = self.model.is_some() && !self.local_reply;
        // Token counts bill nothing: no usage, no estimate.
        let text = matches!(self.endpoint.model_type(), Some(ModelType::Text | ModelType::Embedding))
            && !self.endpoint.is_count();
        if let (true, true, Some(read)) = (forwarded, text, self.cut_bytes) {
            // Refused as oversized: its usage (at the end of the body) was never seen. Bill the
            // prompt estimate and the bytes read, within the completion budget it authorised.
            let completion = pricing::cut_completion_tokens(read, self.completion_budget);
            let u = Usage { prompt_tokens: self.prompt_estimate, completion_tokens: completion, ..Usage::default() };
            return (u, true);
        }
        if !forwarded || !text || !(200..300).contains(&self.status) {
            return (self.usage.unwrap_or_default(), false);
        }
        let complete = match &self.mode {
            ResponseMode::Stream { pipe, .. } => pipe.complete(),
            _ => self.response_done && self.usage.is_some(),
        };
        if let (true, Some(u)) = (complete, self.usage) {
            return (u, false);
        }
        let text_bytes = match &self.mode {
            ResponseMode::Stream { pipe, .. } => pipe.text_bytes(),
            _ => self.text_bytes,
        };
        let partial = self.usage.unwrap_or_default();
        let prompt = if partial.prompt_tokens > 0 { partial.prompt_tokens } else { self.prompt_estimate };
        let completion = partial.completion_tokens.max(usage::tokens_from_bytes(text_bytes));
        (Usage { prompt_tokens: prompt, completion_tokens: completion, ..partial }, true)
    }

    /// The billing record: who, what, how much, how long. Never the key, never content unless
    /// the key opts in.
    pub(super) fn record(&mut self, cfg: &Config, u: &Usage, estimated: bool, micros: u64) -> Vec<u8> {
        let key = self.key.and_then(|k| cfg.key(k));
        let account = self.account.and_then(|a| cfg.account(a));
        let cluster = self.cluster.and_then(|c| cfg.clusters.get(c));
        let forwarded = self.model.is_some() && !self.local_reply;
        let end = self.now_ms.max(self.start_ms);
        let content = self.content.take();
        let content = content.as_ref().map(|(req, resp)| (String::from_utf8_lossy(req), String::from_utf8_lossy(resp)));
        // Written field by field, in the sorted key order a parsed-and-written object has.
        let mut r = Record(Vec::with_capacity(640));
        r.field("account_id", &account.map(|a| a.id.as_str()));
        if let Some(attempts) = self.attempts() {
            // Only for a model with `fallbacks`: every upstream attempt, in order.
            r.field("attempts", &attempts_json(attempts));
        }
        r.field("cache_creation_tokens", &u.cache_creation_tokens);
        r.field("cached_tokens", &u.cached_tokens);
        r.field("client_request_id", &self.client_request_id);
        r.field("cluster", &cluster.filter(|_| forwarded).map(|c| c.name.as_str()));
        r.field("complete", &(self.local_reply || self.response_done));
        r.field("completion_tokens", &u.completion_tokens);
        r.field("credits", &Value::from(micros as f64 / 1e6));
        r.field("duration_ms", &end.saturating_sub(self.start_ms));
        r.field("endpoint", self.endpoint.name());
        r.field("error", &self.error.map(|c| c.as_str()));
        r.field("estimated", &estimated);
        r.field("front", self.front.as_str());
        r.field("key_id", &key.map(|k| k.id.as_str()));
        if let Some(how) = self.remote.decided {
            // Only with the limits service: how this request's limits were decided.
            r.field("limits", how);
        }
        r.field("model", &self.model);
        r.field("prompt_tokens", &u.prompt_tokens);
        r.field("reasoning_tokens", &u.reasoning_tokens);
        if let Some((req, _)) = &content {
            r.field("request_body", req.as_ref());
        }
        r.field("request_id", self.request_id.as_str());
        if let Some((_, resp)) = &content {
            r.field("response_body", resp.as_ref());
        }
        let served = forwarded && ((200..300).contains(&self.status) || self.cut_bytes.is_some());
        r.field("served_model", &self.served_model(served));
        r.field("status", &self.status);
        r.field("stream", &self.stream);
        r.field("time", rfc3339(self.start_ms).as_str());
        r.field("ttfb_ms", &self.first_byte_ms.map(|t| t.saturating_sub(self.start_ms)));
        r.field("units", &self.units.filter(|_| forwarded).map(Value::from).unwrap_or(Value::Null));
        r.field("upstream", &forwarded.then(|| self.upstream.as_str()));
        r.field("upstream_model", &self.upstream_model.as_deref().filter(|_| forwarded));
        r.0.push(b'}');
        r.0
    }
}

/// The record's `attempts`: `[{cluster, latency_ms, model, status}]`.
fn attempts_json(attempts: &[super::Attempt]) -> Value {
    attempts
        .iter()
        .map(|a| {
            serde_json::json!({
                "cluster": a.cluster, "latency_ms": a.latency_ms, "model": a.model, "status": a.status,
            })
        })
        .collect()
}

/// A request id in the UUID shape Envoy's own have (version 4, variant 1), from 128 bits the
/// glue draws: the record's `request_id`, which the client cannot choose.
pub fn format_request_id(hi: u64, lo: u64) -> String {
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0xc000 << 48)) | (0x8000 << 48);
    // 8-4-4-4-12 lowercase hex digits, written directly (no formatting machinery per request).
    let mut out = String::with_capacity(36);
    for (value, digits) in [(hi >> 32, 8), ((hi >> 16) & 0xffff, 4), (hi & 0xffff, 4), (lo >> 48, 4)] {
        push_hex(&mut out, value, digits);
        out.push('-');
    }
    push_hex(&mut out, lo & 0xffff_ffff_ffff, 12);
    out
}

/// The low `digits` hex digits of `value`, lowercase, most significant first.
fn push_hex(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let d = (value >> (4 * i)) & 0xf;
        out.push(char::from_digit(u32::try_from(d).unwrap_or(0), 16).unwrap_or('0'));
    }
}

/// The client's `x-request-id`, kept in the record as `client_request_id`: at most 128
/// characters of `[A-Za-z0-9._:/+=@-]`, others replaced by `_`; empty or blank: none.
pub fn client_request_id(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let keep = |c: char| c.is_ascii_alphanumeric() || "._:/+=@-".contains(c);
    Some(raw.chars().take(128).map(|c| if keep(c) { c } else { '_' }).collect())
}

/// `2026-11-23T10:00:00.123Z` for milliseconds since the Unix epoch (UTC).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    // Written digit by digit (no formatting machinery on every record).
    let mut out = String::with_capacity(24);
    push_decimal(&mut out, y, 4);
    for (sep, value, width) in [
        ('-', m, 2),
        ('-', d, 2),
        ('T', rem / 3600, 2),
        (':', rem % 3600 / 60, 2),
        (':', rem % 60, 2),
        ('.', ms % 1000, 3),
    ] {
        out.push(sep);
        push_decimal(&mut out, value, width);
    }
    out.push('Z');
    out
}

/// `value` in decimal, zero-padded to at least `width` digits (as `{value:0width$}` writes it).
fn push_decimal(out: &mut String, value: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut n = value;
    let mut len = 0;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    let len = len.max(width.min(buf.len()));
    for &b in buf.get(buf.len() - len..).unwrap_or_default() {
        out.push(char::from(b));
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}
