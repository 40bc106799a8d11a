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

    fn config(accounts: &str, keys: &str, table: &str) -> Result<crate::config::Config, String> {
        let j = format!(
            r#"{{"clusters":[{{"name":"c"}}],"models":[{{"id":"m","type":"text","cluster":"c"}}],
            "accounts":[{accounts}],"keys":[{keys}],"key_table":"{table}"}}"#
        );
        crate::config::Config::parse(j.as_bytes())
    }

    const H1: &str = "0000000000000000000000000000000000000000000000000000000000000001";
    const H2: &str = "0000000000000000000000000000000000000000000000000000000000000002";

    #[test]
    fn keys_and_accounts_carry_their_policies_in_both_key_lists() {
        let keys = format!(
            r#"{{"id":"k1","sha256":"{H1}","account":"a","rpm":7,"environment":"development",
                "spend_cap":{{"credits":3,"period":"month"}}}},
               {{"id":"k2","sha256":"{H2}","account":"b","spend_cap":2,"spend_cap_period":"day"}}"#
        );
        let table = format!("{} a id=t1 cap=4 period=day rpm=9 dev\\n{} b id=t2", "3".repeat(64), "4".repeat(64));
        let c = config(r#"{"id":"a","tpm":5000,"spend_cap":9,"spend_cap_period":"month"},{"id":"b"}"#, &keys, &table)
            .unwrap();
        let policy = |id: &str| c.keys.iter().find(|k| k.id == id).map(|k| (k.spend_cap(), k.policy()));
        let p = |rpm, cap_period, development| KeyPolicy { rpm, cap_period, development };
        assert_eq!(policy("k1"), Some((Some(3.0), p(Some(7), CapPeriod::Month, true))));
        assert_eq!(policy("k2"), Some((Some(2.0), p(None, CapPeriod::Day, false))));
        assert_eq!(policy("t1"), Some((Some(4.0), p(Some(9), CapPeriod::Day, true))));
        assert_eq!(policy("t2"), Some((None, KeyPolicy::default())));
        let a = c.accounts.first().unwrap();
        assert_eq!(
            (a.spend_cap, a.policy),
            (Some(9.0), AccountPolicy { tpm: Some(5000), cap_period: CapPeriod::Month })
        );
        assert_eq!(c.accounts.get(1).unwrap().policy, AccountPolicy::default());
    }

    #[test]
    fn invalid_policies_are_named() {
        let key = |extra: &str| format!(r#"{{"id":"k","sha256":"{H1}","account":"a"{extra}}}"#);
        let err = |accounts: &str, keys: &str, table: &str| config(accounts, keys, table).unwrap_err();
        let a = r#"{"id":"a"}"#;
        assert!(err(a, &key(r#","environment":"staging""#), "").contains("keys[0]: unknown variant `staging`"));
        assert!(
            err(a, &key(r#","spend_cap_period":"day""#), "").contains("keys[0].spend_cap_period: needs a spend_cap")
        );
        assert!(err(r#"{"id":"a","spend_cap":{"credits":1,"period":"week"}}"#, "", "").contains("accounts[0]"));
        assert!(err(r#"{"id":"a","tpm":-1}"#, "", "").contains("accounts[0]"));
        let line = |extra: &str| format!("{} a{extra}", "3".repeat(64));
        assert!(err(a, "", &line(" period=day")).contains("key_table line 1: period: needs cap="));
        assert!(err(a, "", &line(" cap=1 period=week")).contains("period: must be total, month or day"));
        assert!(err(a, "", &line(" rpm=x")).contains("rpm: must be a whole number"));
        assert!(err(a, "", &line(" dev dev")).contains("'dev' is given twice"));
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
