//! The `limits` section: where the counters live (this Envoy's shared data, or the shared limits
//! service) and how a remote store's failures are handled.

use super::*;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) store: Option<String>,
    pub(super) cluster: Option<String>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) fallback: Option<String>,
    pub(super) replicas: Option<u32>,
    pub(super) hold_ttl_ms: Option<u64>,
}

/// Where the request and spend limits are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LimitsStore {
    /// This Envoy's shared data (exact across its workers; the default).
    #[default]
    Local,
    /// The shared limits service (`tollgate-limits`, on Redis), reached through an Envoy cluster.
    Remote(RemoteLimits),
}

/// What requests-per-minute and sandbox quotas do while the limits service cannot answer (spend
/// caps always fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Refuse with 503 `service_unavailable`.
    Closed,
    /// Count in this Envoy's own shared data, at each limit divided by `replicas` (rounded up).
    Local,
}

/// The `limits` section with `store: "remote"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLimits {
    /// The Envoy cluster of the limits service.
    pub cluster: String,
    /// How long a call to the service may take before it counts as failed, in ms.
    pub timeout_ms: u64,
    pub fallback: Fallback,
    /// How many Envoy replicas share the limits (divides them under `fallback: "local"`).
    pub replicas: u32,
    /// How long a spend hold counts when its settlement never arrives, in ms (at least the longest
    /// route timeout).
    pub hold_ttl_ms: u64,
}

/// A call to the limits service that takes longer counts as failed (ms).
pub const DEFAULT_LIMITS_TIMEOUT_MS: u64 = 50;
/// The longest call timeout accepted: the request waits for the answer.
pub const MAX_LIMITS_TIMEOUT_MS: u64 = 1000;
/// A hold never settled stops counting after this long (ms): longer than any route timeout of
/// the bundled configurations (300 s).
pub const DEFAULT_HOLD_TTL_MS: u64 = 600_000;

pub(super) fn compile_limits(raw: RawLimits) -> Result<LimitsStore, String> {
    let remote_only = [
        ("cluster", raw.cluster.is_some()),
        ("timeout_ms", raw.timeout_ms.is_some()),
        ("fallback", raw.fallback.is_some()),
        ("replicas", raw.replicas.is_some()),
        ("hold_ttl_ms", raw.hold_ttl_ms.is_some()),
    ];
    match raw.store.as_deref().unwrap_or("local") {
        "local" => match remote_only.iter().find(|(_, set)| *set) {
            Some((name, _)) => Err(format!("limits.{name}: only with store \"remote\"")),
            None => Ok(LimitsStore::Local),
        },
        "remote" => {
            let cluster = raw.cluster.unwrap_or_default();
            if cluster.is_empty() || cluster.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                return Err("limits.cluster: the Envoy cluster of the limits service is required".to_string());
            }
            let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_LIMITS_TIMEOUT_MS);
            if !(1..=MAX_LIMITS_TIMEOUT_MS).contains(&timeout_ms) {
                return Err(format!("limits.timeout_ms: must be 1 to {MAX_LIMITS_TIMEOUT_MS}"));
            }
            let fallback = match raw.fallback.as_deref().unwrap_or("closed") {
                "closed" => Fallback::Closed,
                "local" => Fallback::Local,
                other => return Err(format!("limits.fallback: \"{other}\" is not \"closed\" or \"local\"")),
            };
            let replicas = raw.replicas.unwrap_or(1);
            if replicas == 0 {
                return Err("limits.replicas: must be at least 1".to_string());
            }
            let hold_ttl_ms = raw.hold_ttl_ms.unwrap_or(DEFAULT_HOLD_TTL_MS);
            if hold_ttl_ms < 1000 {
                return Err(
                    "limits.hold_ttl_ms: must be at least 1000 (and at least the longest route timeout)".to_string()
                );
            }
            Ok(LimitsStore::Remote(RemoteLimits { cluster, timeout_ms, fallback, replicas, hold_ttl_ms }))
        }
        other => Err(format!("limits.store: \"{other}\" is not \"local\" or \"remote\"")),
    }
}
