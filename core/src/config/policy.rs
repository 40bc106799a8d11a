//! Per-key and per-account policies beyond the base limits: a key's own requests per minute and
//! environment, an account's tokens per minute, and the period a spend cap counts over.
//!
//! A spend cap is written as before (`"spend_cap": 50`, counted over the key's or account's whole
//! life) or with a period, either as an object (`"spend_cap": {"credits": 50, "period": "month"}`)
//! or with `"spend_cap_period": "month"` next to the number. Periods are UTC calendar periods:
//! `total` (the default), `month` (resets at 00:00 UTC on the 1st) or `day` (at 00:00 UTC).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// What a spend cap counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapPeriod {
    /// Every credit ever spent (the cap never resets).
    #[default]
    Total,
    /// The UTC calendar month.
    Month,
    /// The UTC day.
    Day,
}

/// A key's environment: a development key is not held to the daily sandbox quota of free models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Production,
    Development,
}

/// A `spend_cap` as written: a number of credits, or credits with a period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum RawSpendCap {
    Credits(f64),
    Periodic(PeriodicCap),
}

impl<'de> Deserialize<'de> for RawSpendCap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SpendCapVisitor)
    }
}

struct SpendCapVisitor;

impl<'de> Visitor<'de> for SpendCapVisitor {
    type Value = RawSpendCap;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("f64 (credits) or an object {\"credits\": f64, \"period\": \"total\"|\"month\"|\"day\"}")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawSpendCap, E> {
        Ok(RawSpendCap::Credits(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSpendCap, E> {
        Ok(RawSpendCap::Credits(v as f64))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSpendCap, E> {
        Ok(RawSpendCap::Credits(v as f64))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSpendCap, A::Error> {
        PeriodicCap::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawSpendCap::Periodic)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeriodicCap {
    credits: f64,
    #[serde(default)]
    period: Option<CapPeriod>,
}

/// The policy fields of a key, beside its record's base fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPolicy {
    /// The key's own requests per minute (beside its account's; the tighter one holds).
    pub rpm: Option<u32>,
    /// What the key's spend cap counts over.
    pub cap_period: CapPeriod,
    /// A development key (`environment: "development"`): no daily sandbox quota.
    pub development: bool,
}

/// The policy fields of an account, beside its base fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountPolicy {
    /// Prompt plus completion tokens per minute, over all the account's keys.
    pub tpm: Option<u32>,
    /// What the account's spend cap counts over.
    pub cap_period: CapPeriod,
}

/// A `spend_cap` and a `spend_cap_period` as configured, as credits and a period. The period may
/// be given in one place or the other, not both (unless they agree); a period without a cap is an
/// error, as is a negative or non-finite cap.
pub(crate) fn spend_cap(
    cap: Option<RawSpendCap>,
    period: Option<CapPeriod>,
    where_: &str,
) -> Result<(Option<f64>, CapPeriod), String> {
    let (credits, inner) = match cap {
        None if period.is_some() => {
            return Err(format!("{where_}.spend_cap_period: needs a spend_cap"));
        }
        None => return Ok((None, CapPeriod::Total)),
        Some(RawSpendCap::Credits(c)) => (c, None),
        Some(RawSpendCap::Periodic(p)) => (p.credits, p.period),
    };
    if !(credits.is_finite() && credits >= 0.0) {
        return Err(format!("{where_}.spend_cap: must be a non-negative number"));
    }
    let period = match (inner, period) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!("{where_}.spend_cap_period: disagrees with spend_cap.period"));
        }
        (a, b) => a.or(b).unwrap_or_default(),
    };
    Ok((Some(credits), period))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cap: &str, period: Option<&str>) -> Result<(Option<f64>, CapPeriod), String> {
        let cap: Option<RawSpendCap> = serde_json::from_str(cap).map_err(|e| e.to_string())?;
        let period = period.map(|p| serde_json::from_str::<CapPeriod>(p).map_err(|e| e.to_string())).transpose()?;
        spend_cap(cap, period, "keys[0]")
    }

    #[test]
    fn spend_caps_take_a_period_in_either_place() {
        assert_eq!(parse("50", None), Ok((Some(50.0), CapPeriod::Total)));
        assert_eq!(parse("50", Some("\"month\"")), Ok((Some(50.0), CapPeriod::Month)));
        assert_eq!(parse(r#"{"credits":5,"period":"day"}"#, None), Ok((Some(5.0), CapPeriod::Day)));
        assert_eq!(parse(r#"{"credits":5}"#, None), Ok((Some(5.0), CapPeriod::Total)));
        assert_eq!(parse(r#"{"credits":5,"period":"day"}"#, Some("\"day\"")), Ok((Some(5.0), CapPeriod::Day)));
        assert_eq!(parse("null", None), Ok((None, CapPeriod::Total)));
        assert_eq!(
            parse(r#"{"credits":5,"period":"day"}"#, Some("\"month\"")),
            Err("keys[0].spend_cap_period: disagrees with spend_cap.period".to_string())
        );
        assert_eq!(parse("null", Some("\"day\"")), Err("keys[0].spend_cap_period: needs a spend_cap".to_string()));
        assert_eq!(parse("-1", None), Err("keys[0].spend_cap: must be a non-negative number".to_string()));
        assert!(parse(r#"{"credits":5,"period":"year"}"#, None).is_err());
        assert!(parse(r#"{"credits":5,"every":"day"}"#, None).is_err());
    }
}
