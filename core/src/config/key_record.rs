//! A key's record in the key table, packed: a million of them are held per VM.

use super::key_id;
use super::{CapPeriod, KeyPolicy};

/// One key's settings. A million of them are held per VM, so the optional fields are packed
/// (`KeyRecord::spend_cap`, `KeyRecord::policy`, `KeyRecord::log_content` read them back): 48
/// bytes a record in wasm32.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: key_id::KeyId,
    /// Index into `Config::accounts`.
    pub account: usize,
    /// The spend cap in credits; NaN for none (a configured cap is finite).
    spend_cap: f64,
    pub sandbox_daily_quota: u32,
    /// The models the key may use: 0 for every model, else `Config::model_policies[n - 1]`.
    pub allowed_models: u32,
    /// The key's own requests per minute when `flags` has `HAS_RPM`.
    rpm: u32,
    /// `LOG_CONTENT`, `DEVELOPMENT`, `HAS_RPM` and the cap period (`PERIOD_SHIFT`).
    flags: u8,
}

const LOG_CONTENT: u8 = 1;
const DEVELOPMENT: u8 = 2;
const HAS_RPM: u8 = 4;
const PERIOD_SHIFT: u8 = 3;

/// A key record's size in the filter (wasm32), checked when the filter builds: it is paid a
/// million times with a million keys.
#[cfg(target_pointer_width = "32")]
const _: () = assert!(std::mem::size_of::<KeyRecord>() == 48);

/// Field by field, as the record read them back (no spend cap equals no spend cap).
impl PartialEq for KeyRecord {
    fn eq(&self, other: &KeyRecord) -> bool {
        (&self.id, self.account, self.spend_cap(), self.sandbox_daily_quota, self.allowed_models, self.rpm, self.flags)
            == (
                &other.id,
                other.account,
                other.spend_cap(),
                other.sandbox_daily_quota,
                other.allowed_models,
                other.rpm,
                other.flags,
            )
    }
}

impl KeyRecord {
    /// A record with no spend cap, content logging, models list or policy of its own.
    pub(crate) fn new(id: key_id::KeyId, account: usize, sandbox_daily_quota: u32) -> KeyRecord {
        KeyRecord { id, account, spend_cap: f64::NAN, sandbox_daily_quota, allowed_models: 0, rpm: 0, flags: 0 }
    }

    /// The key's spend cap in credits, if it has one.
    pub fn spend_cap(&self) -> Option<f64> {
        Some(self.spend_cap).filter(|c| !c.is_nan())
    }

    pub(crate) fn set_spend_cap(&mut self, cap: Option<f64>) {
        self.spend_cap = cap.filter(|c| !c.is_nan()).unwrap_or(f64::NAN);
    }

    /// Whether the key's configuration opts in to content logging (`log_content`).
    pub fn log_content(&self) -> bool {
        self.flags & LOG_CONTENT != 0
    }

    pub(crate) fn set_log_content(&mut self, on: bool) {
        self.flags = (self.flags & !LOG_CONTENT) | if on { LOG_CONTENT } else { 0 };
    }

    /// The key's own rpm, cap period and environment.
    pub fn policy(&self) -> KeyPolicy {
        KeyPolicy {
            rpm: Some(self.rpm).filter(|_| self.flags & HAS_RPM != 0),
            cap_period: match (self.flags >> PERIOD_SHIFT) & 3 {
                1 => CapPeriod::Month,
                2 => CapPeriod::Day,
                _ => CapPeriod::Total,
            },
            development: self.flags & DEVELOPMENT != 0,
        }
    }

    pub(crate) fn set_policy(&mut self, p: KeyPolicy) {
        let period = match p.cap_period {
            CapPeriod::Total => 0,
            CapPeriod::Month => 1,
            CapPeriod::Day => 2,
        };
        self.rpm = p.rpm.unwrap_or(0);
        self.flags = (self.flags & LOG_CONTENT)
            | if p.development { DEVELOPMENT } else { 0 }
            | if p.rpm.is_some() { HAS_RPM } else { 0 }
            | (period << PERIOD_SHIFT);
    }
}
