//! The plugin configuration: a JSON document (Envoy's `configuration` StringValue), parsed,
//! validated and compiled once in `on_configure`. Any error names what and where.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::dialect::Dialect;
use crate::keys::{self, Hash, KeyTable};
use crate::routing::{AudioTask, Model, ModelType, Price};

mod fallbacks;
mod key_checks;
pub mod key_id;
mod key_record;
pub mod key_table;
mod limits;
pub mod pieces;
mod policy;
mod raw_keys;
mod router;

use key_checks::{check_key_ids, field, key_name, resolve_keys};
pub use key_record::KeyRecord;
use key_table::KeyLines;
use limits::{compile_limits, RawLimits};
pub use limits::{Fallback, LimitsStore, RemoteLimits, DEFAULT_HOLD_TTL_MS, DEFAULT_LIMITS_TIMEOUT_MS};
pub use policy::{AccountPolicy, CapPeriod, Environment, KeyPolicy};
use raw_keys::{key_capacity, RawKey, RawKeys, KEY_CAPACITY};
use router::{compile_routers, model_cluster, RawRouter};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    accounts: Vec<RawAccount>,
    #[serde(default)]
    keys: RawKeys,
    /// The compact key list (`key_table`), one line per key.
    #[serde(default)]
    key_table: KeyLines,
    #[serde(default)]
    models: Vec<RawModel>,
    #[serde(default)]
    clusters: Vec<RawCluster>,
    #[serde(default)]
    defaults: RawDefaults,
    /// The request header that carries the chosen cluster to Envoy's router (`cluster_header`).
    #[serde(default)]
    cluster_header: Option<String>,
    /// Largest JSON body (request or non-streamed response) the filter will buffer.
    #[serde(default)]
    max_body_bytes: Option<usize>,
    /// Largest upload (multipart transcription body), counted as it streams, never buffered.
    #[serde(default)]
    max_upload_bytes: Option<u64>,
    /// Largest image, video or speech JSON body (`max_media_body_bytes`).
    #[serde(default)]
    max_media_body_bytes: Option<usize>,
    /// Client headers forwarded upstream besides the built-in set (`pass_request_headers`).
    #[serde(default)]
    pass_request_headers: Vec<String>,
    /// Store the per-request span attributes as filter state (`span_attributes`).
    #[serde(default)]
    span_attributes: bool,
    /// Stats tagged by account id (`account_metrics`).
    #[serde(default)]
    account_metrics: bool,
    /// Where the limits live (`limits`): this Envoy's shared data, or the shared limits service.
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    rpm: Option<u32>,
    image_rpm: Option<u32>,
    sandbox_daily_quota: Option<u32>,
    owned_by: Option<String>,
    default_max_tokens: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    id: String,
    #[serde(default = "active")]
    status: AccountStatus,
    rpm: Option<u32>,
    image_rpm: Option<u32>,
    spend_cap: Option<policy::RawSpendCap>,
    spend_cap_period: Option<CapPeriod>,
    tpm: Option<u32>,
}

fn active() -> AccountStatus {
    AccountStatus::Active
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Inactive,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    #[serde(rename = "type")]
    model_type: ModelType,
    /// Every model but a router (`router`) names its cluster.
    cluster: Option<String>,
    upstream_model: Option<String>,
    #[serde(default)]
    price: Price,
    #[serde(default)]
    sandbox: bool,
    default_max_tokens: Option<u32>,
    owned_by: Option<String>,
    #[serde(default)]
    sizes: Vec<String>,
    max_seconds: Option<f64>,
    task: Option<AudioTask>,
    context_window: Option<u64>,
    #[serde(default)]
    supports: Vec<crate::router::Capability>,
    router: Option<RawRouter>,
    #[serde(default)]
    fallbacks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    #[serde(default)]
    dialect: Dialect,
    base_path: Option<String>,
    authority: Option<String>,
    api_key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: String,
    pub status: AccountStatus,
    pub rpm: u32,
    /// Image generations per minute (a separate limit from chat's, as documented).
    pub image_rpm: u32,
    pub spend_cap: Option<f64>,
    pub policy: AccountPolicy,
}

/// A key's `allowed_models`: exact model ids, or prefixes ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPolicy(pub Box<[String]>);

impl ModelPolicy {
    /// Whether the model `id` is one of the list's ids or starts with one of its prefixes.
    pub fn allows(&self, id: &str) -> bool {
        self.0.iter().any(|p| pattern_matches(p, id))
    }
}

/// An `allowed_models` entry against a model id: equal, or a prefix of it when ending in `*`.
fn pattern_matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// The Envoy cluster name.
    pub name: String,
    pub dialect: Dialect,
    /// Prefix of upstream paths, e.g. `/v1` for OpenAI-compatible servers.
    pub base_path: String,
    /// `:authority` to send upstream (a hosted API's host name), if any.
    pub authority: Option<String>,
    /// The cluster's own credential, injected in the dialect's header.
    pub api_key: Option<String>,
    /// Extra static headers to set upstream.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub accounts: Vec<Account>,
    pub keys: Vec<KeyRecord>,
    pub key_table: KeyTable,
    pub models: Vec<Model>,
    pub model_index: HashMap<String, usize>,
    pub clusters: Vec<Cluster>,
    pub cluster_header: String,
    pub max_body_bytes: usize,
    pub max_upload_bytes: u64,
    /// The largest image, video or speech JSON body (capped by `max_body_bytes`).
    pub max_media_body_bytes: usize,
    /// Client headers forwarded upstream besides the built-in set (lowercase; a trailing `*`
    /// makes a prefix). See `crate::headers::forwarded`.
    pub pass_request_headers: Vec<String>,
    /// Store the span attributes (`crate::trace`) as filter state for Envoy's tracer: about a
    /// dozen hostcalls a request, so only where spans read them (off by default).
    pub span_attributes: bool,
    /// Keep stats tagged by account id too (`crate::metrics::AccountStat`): one series set per
    /// configured account, so opt-in (off by default).
    pub account_metrics: bool,
    /// Where the limits live (`limits.store`).
    pub limits: LimitsStore,
    /// The distinct `allowed_models` lists of the keys (see `KeyRecord::allowed_models`).
    pub model_policies: Vec<ModelPolicy>,
}

pub const DEFAULT_RPM: u32 = 100;
pub const DEFAULT_SANDBOX_DAILY: u32 = 100;
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;
/// Image, video and speech bodies: a prompt of at most 4000 characters or a speech text of a few
/// thousand, even written entirely as `\uXXXX\uXXXX` escapes, fits in 128 KiB.
pub const DEFAULT_MAX_MEDIA_BODY: usize = 128 * 1024;
pub const DEFAULT_CLUSTER_HEADER: &str = "x-tollgate-cluster";
/// Image generations per minute per account, unless configured (the documented Standard plan's).
pub const DEFAULT_IMAGE_RPM: u32 = 20;
/// The largest upload (25 MB, the documented limit of transcription uploads).
pub const DEFAULT_MAX_UPLOAD: u64 = 25 * 1024 * 1024;

/// A size `WxH` (a model's `sizes`, an image or video request's `size`) -> (W, H), each
/// 1..=8192.
pub fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    let w: u32 = w.parse().ok()?;
    let h: u32 = h.parse().ok()?;
    ((1..=8192).contains(&w) && (1..=8192).contains(&h)).then_some((w, h))
}

/// A parse error of the configuration. Syntax errors keep serde's line and column; a wrong
/// field (unknown, or of the wrong type) is named by its path (`models[2].price: unknown field
/// ...`), found by deserializing each section and entry alone (only on this error path).
fn describe_error(json: &[u8], e: &serde_json::Error) -> String {
    if !e.is_data() {
        return format!("configuration: {e}");
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else { return format!("configuration: {e}") };
    locate_error(&v).unwrap_or_else(|| format!("configuration: {e}"))
}

/// The first wrong field of a configuration that is valid JSON, named by its path; None when
/// every section deserializes (the error, if any, is one of `compile`'s). Each section is
/// deserialized again from its own JSON text, through the same byte reader as the whole
/// configuration, so the filter carries one deserializer per type rather than a second one from
/// `Value`.
fn locate_error(v: &serde_json::Value) -> Option<String> {
    /// Whether `text` deserializes as the section's type: its error if not.
    type Check = fn(&[u8]) -> Option<serde_json::Error>;
    fn first_bad(path: &str, v: Option<&serde_json::Value>, check: Check) -> Option<(String, String)> {
        match v? {
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, it)| section_error(it, check).map(|e| (format!("{path}[{i}]"), e))),
            other => section_error(other, check).map(|e| (path.to_string(), e)),
        }
    }
    let obj = v.as_object();
    let field = |name: &str| obj.and_then(|o| o.get(name));
    let models = field("models").and_then(serde_json::Value::as_array);
    let located = first_bad("defaults", field("defaults"), |t| serde_json::from_slice::<RawDefaults>(t).err())
        .or_else(|| first_bad("clusters", field("clusters"), |t| serde_json::from_slice::<RawCluster>(t).err()))
        .or_else(|| {
            // A model's price is a nested object: name it when that is where the error is.
            models.and_then(|ms| {
                ms.iter().enumerate().find_map(|(i, m)| {
                    first_bad(&format!("models[{i}].price"), m.get("price"), |t| {
                        serde_json::from_slice::<Price>(t).err()
                    })
                    .or_else(|| {
                        first_bad(&format!("models[{i}]"), Some(m), |t| serde_json::from_slice::<RawModel>(t).err())
                    })
                })
            })
        })
        .or_else(|| first_bad("accounts", field("accounts"), |t| serde_json::from_slice::<RawAccount>(t).err()))
        .or_else(|| first_bad("keys", field("keys"), |t| serde_json::from_slice::<RawKey>(t).err()))
        .or_else(|| first_bad("limits", field("limits"), |t| serde_json::from_slice::<RawLimits>(t).err()));
    match located {
        Some((path, msg)) => Some(format!("configuration: {path}: {msg}")),
        // A top-level field: serde's message names it; the position adds nothing.
        None => {
            section_error(v, |t| serde_json::from_slice::<RawConfig>(t).err()).map(|e| format!("configuration: {e}"))
        }
    }
}

/// The message of `check`'s error on `v`'s JSON text, without serde's position (a position in
/// that re-serialized text would point nowhere in the operator's file).
fn section_error(v: &serde_json::Value, check: fn(&[u8]) -> Option<serde_json::Error>) -> Option<String> {
    let text = v.to_string();
    let e = check(text.as_bytes())?;
    let msg = e.to_string();
    let at = format!(" at line {} column {}", e.line(), e.column());
    Some(msg.strip_suffix(at.as_str()).map_or_else(|| msg.clone(), str::to_string))
}

impl Config {
    /// Parses and validates the JSON plugin configuration.
    pub fn parse(json: &[u8]) -> Result<Config, String> {
        KEY_CAPACITY.with(|c| c.set(key_capacity(json.len())));
        key_table::LINE_CAPACITY.with(|c| c.set(key_table::line_capacity(json.len())));
        let raw = serde_json::from_slice::<RawConfig>(json);
        KEY_CAPACITY.with(|c| c.set(0));
        key_table::LINE_CAPACITY.with(|c| c.set(0));
        compile(raw.map_err(|e| describe_error(json, &e))?)
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.model_index.get(name).and_then(|&i| self.models.get(i))
    }

    pub fn cluster_of(&self, model: &Model) -> Option<&Cluster> {
        self.clusters.get(model.cluster)
    }

    pub fn key(&self, idx: u32) -> Option<&KeyRecord> {
        self.keys.get(usize::try_from(idx).ok()?)
    }

    pub fn account(&self, idx: usize) -> Option<&Account> {
        self.accounts.get(idx)
    }

    /// Whether the key may use the model `id` (its `allowed_models`; every model without one).
    pub fn key_allows(&self, key: &KeyRecord, id: &str) -> bool {
        match key.allowed_models.checked_sub(1) {
            None => true,
            Some(n) => usize::try_from(n).ok().and_then(|n| self.model_policies.get(n)).is_some_and(|p| p.allows(id)),
        }
    }
}

fn compile(mut raw: RawConfig) -> Result<Config, String> {
    let defaults = raw.defaults;
    let default_rpm = defaults.rpm.unwrap_or(DEFAULT_RPM);
    let default_image_rpm = defaults.image_rpm.unwrap_or(DEFAULT_IMAGE_RPM);
    let default_quota = defaults.sandbox_daily_quota.unwrap_or(DEFAULT_SANDBOX_DAILY);
    let default_owner = defaults.owned_by.unwrap_or_else(|| "tollgate".to_string());
    let default_max_tokens = defaults.default_max_tokens.unwrap_or(1024);

    let mut clusters = Vec::with_capacity(raw.clusters.len());
    let mut cluster_index: HashMap<String, usize> = HashMap::new();
    for (i, c) in raw.clusters.into_iter().enumerate() {
        let here = format!("clusters[{i}]");
        if c.name.is_empty() {
            return Err(format!("{here}.name: must not be empty"));
        }
        if cluster_index.insert(c.name.clone(), i).is_some() {
            return Err(format!("{here}.name: duplicate name '{}'", c.name));
        }
        let base_path = c.base_path.unwrap_or_else(|| match c.dialect {
            Dialect::Gemini => "/v1beta".to_string(),
            _ => "/v1".to_string(),
        });
        if !base_path.is_empty() && !base_path.starts_with('/') {
            return Err(format!("{here}.base_path: must start with '/'"));
        }
        let base_path = base_path.trim_end_matches('/').to_string();
        for (k, v) in &c.headers {
            if !valid_header_name(k) || v.contains(['\r', '\n']) {
                return Err(format!("{here}.headers.{k}: invalid header name or value"));
            }
        }
        if let Some(k) = &c.api_key {
            if k.contains(['\r', '\n']) {
                return Err(format!("{here}.api_key: must not contain line breaks"));
            }
        }
        clusters.push(Cluster {
            name: c.name,
            dialect: c.dialect,
            base_path,
            authority: c.authority,
            api_key: c.api_key,
            headers: c.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect(),
        });
    }

    let mut models = Vec::with_capacity(raw.models.len());
    let mut model_index = HashMap::new();
    let mut routers = Vec::new();
    let mut raw_fallbacks = Vec::with_capacity(raw.models.len());
    for (i, m) in raw.models.into_iter().enumerate() {
        let here = format!("models[{i}]");
        if m.id.is_empty() {
            return Err(format!("{here}.id: must not be empty"));
        }
        let cluster = model_cluster(&here, m.cluster.as_deref(), m.router.is_some(), &cluster_index)?;
        let p = m.price;
        for (name, v) in [
            ("prompt_per_1k", p.prompt_per_1k),
            ("completion_per_1k", p.completion_per_1k),
            ("per_image", p.per_image),
            ("per_second", p.per_second),
            ("per_1k_chars", p.per_1k_chars),
            ("cached_prompt_per_1k", p.cached_per_1k()),
            ("reasoning_per_1k", p.reasoning_per_1k()),
            ("cache_write_per_1k", p.cache_write_per_1k()),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{here}.price.{name}: must be a non-negative number"));
            }
        }
        for (j, size) in m.sizes.iter().enumerate() {
            if parse_size(size).is_none() {
                return Err(format!("{here}.sizes[{j}]: must be WIDTHxHEIGHT, like 1024x1024"));
            }
        }
        if let Some(s) = m.max_seconds {
            if !(s.is_finite() && s > 0.0) {
                return Err(format!("{here}.max_seconds: must be a positive number"));
            }
        }
        if m.task.is_some() && m.model_type != ModelType::Audio {
            return Err(format!("{here}.task: only audio models have a task"));
        }
        if model_index.insert(m.id.clone(), i).is_some() {
            return Err(format!("{here}.id: duplicate id '{}'", m.id));
        }
        models.push(Model {
            upstream_model: m.upstream_model.unwrap_or_else(|| m.id.clone()),
            id: m.id,
            model_type: m.model_type,
            cluster,
            price: p,
            sandbox: m.sandbox,
            default_max_tokens: m.default_max_tokens.unwrap_or(default_max_tokens),
            owned_by: m.owned_by.unwrap_or_else(|| default_owner.clone()),
            sizes: m.sizes,
            max_seconds: m.max_seconds.unwrap_or(crate::media::DEFAULT_MAX_VIDEO_SECONDS),
            task: m.task,
            context_window: m.context_window,
            supports: crate::router::Supports::from_list(&m.supports),
            router: None,
            fallbacks: Vec::new(),
        });
        routers.extend(m.router.map(|r| (i, r)));
        raw_fallbacks.push(m.fallbacks);
    }
    compile_routers(&mut models, routers)?;
    fallbacks::resolve(&mut models, &model_index, raw_fallbacks)?;

    let mut accounts = Vec::with_capacity(raw.accounts.len());
    let mut account_index: HashMap<String, usize> = HashMap::new();
    for (i, a) in raw.accounts.into_iter().enumerate() {
        let here = format!("accounts[{i}]");
        let (spend_cap, cap_period) = policy::spend_cap(a.spend_cap, a.spend_cap_period, &here)?;
        if account_index.insert(a.id.clone(), i).is_some() {
            return Err(format!("{here}.id: duplicate id '{}'", a.id));
        }
        accounts.push(Account {
            id: a.id,
            status: a.status,
            rpm: a.rpm.unwrap_or(default_rpm),
            image_rpm: a.image_rpm.unwrap_or(default_image_rpm),
            spend_cap,
            policy: AccountPolicy { tpm: a.tpm, cap_period },
        });
    }

    // The keys of `key_table` come first (key indices 0..), then those of `keys`: the long list
    // is never copied to make room for the short one.
    let compact = raw.key_table.into_keys();
    let n_table = compact.records.len();
    let name = |i: usize| key_name(n_table, i);
    let (mut keys_out, mut table, table_err) = resolve_keys(compact, 0, &account_index, default_quota, &name);
    let mut model_policies = Vec::with_capacity(raw.keys.model_policies.len());
    for (policy, first) in std::mem::take(&mut raw.keys.model_policies) {
        let here = field(&name(first + n_table), "allowed_models");
        if policy.0.is_empty() {
            return Err(format!("{here}: must name at least one model (leave it out for every model)"));
        }
        for p in policy.0.iter() {
            if p.is_empty() || p == "*" {
                return Err(format!("{here}: '{p}' is not a model id or a prefix ending in '*'"));
            }
            if !models.iter().any(|m: &Model| pattern_matches(p, &m.id)) {
                return Err(format!("{here}: '{p}' names no model in 'models'"));
            }
        }
        model_policies.push(policy);
    }
    let (verbose, verbose_table, verbose_err) = resolve_keys(raw.keys, n_table, &account_index, default_quota, &name);
    // The first invalid key, as a key-by-key check would find it: the lowest index, and at one
    // index its sha256 or spend cap before its account.
    let first_err = match (table_err, verbose_err) {
        (Some(a), Some(b)) => Some(if (b.0, b.1) < (a.0, a.1) { b } else { a }),
        (a, b) => a.or(b),
    };
    if let Some((_, _, e)) = first_err {
        return Err(e);
    }
    if keys_out.is_empty() {
        (keys_out, table) = (verbose, verbose_table);
    } else if !verbose.is_empty() {
        keys_out.reserve_exact(verbose.len());
        keys_out.extend(verbose);
        table.reserve_exact(verbose_table.len());
        table.extend(verbose_table);
    }
    keys_out.shrink_to_fit();
    table.shrink_to_fit();
    let key_table = KeyTable::build(table).map_err(|(h, first, again)| {
        let (first, again) = (usize::try_from(first).unwrap_or(0), usize::try_from(again).unwrap_or(0));
        format!(
            "{}: duplicate sha256 {} (the same as {})",
            field(&name(again), "sha256"),
            keys::to_hex(&h),
            name(first)
        )
    })?;
    // Key ids name keys in records and logs: two keys with one id would be billed as one.
    check_key_ids(&keys_out, &name)?;

    let mut pass_request_headers = Vec::with_capacity(raw.pass_request_headers.len());
    for (i, h) in raw.pass_request_headers.iter().enumerate() {
        let h = h.to_ascii_lowercase();
        let name = h.strip_suffix('*').unwrap_or(&h);
        if !valid_header_name(name) || crate::headers::never_forwarded(name) {
            return Err(format!(
                "pass_request_headers[{i}]: '{h}' is not a header name (or prefix ending in '*') that may be forwarded"
            ));
        }
        pass_request_headers.push(h);
    }
    let cluster_header = raw.cluster_header.unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_string()).to_ascii_lowercase();
    if !valid_header_name(&cluster_header) {
        return Err("cluster_header: not a valid header name".to_string());
    }
    let limits = compile_limits(raw.limits)?;
    Ok(Config {
        limits,
        accounts,
        keys: keys_out,
        key_table,
        models,
        model_index,
        clusters,
        cluster_header,
        max_body_bytes: raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        max_upload_bytes: raw.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD),
        max_media_body_bytes: raw.max_media_body_bytes.unwrap_or(DEFAULT_MAX_MEDIA_BODY),
        span_attributes: raw.span_attributes,
        account_metrics: raw.account_metrics,
        pass_request_headers,
        model_policies,
    })
}

fn valid_header_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
#[path = "tests/config_tests.rs"]
pub(crate) mod tests;
