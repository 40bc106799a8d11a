//! Spend cap periods: a cap that counts per UTC month or UTC day keeps one spend entry per period,
//! named after it (`spend:key:{id}@2026-11`, `spend:acct:{id}@2026-11-30`), so a new period starts
//! from nothing at 00:00 UTC and a request settles into the period it was admitted in (its hold
//! names the entry). A `total` cap keeps today's single entry (`spend:key:{id}`).

use super::spend::SpendScope;
use super::window::DAY_MS;
use crate::config::CapPeriod;

/// The UTC civil date (year, month 1-12, day 1-31) of the day `days` after 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for the proleptic Gregorian calendar).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// The UTC date of unix time `now_ms`.
pub fn utc_date(now_ms: u64) -> (i64, u32, u32) {
    civil_from_days(i64::try_from(now_ms / DAY_MS).unwrap_or(i64::MAX / 2))
}

/// The name of the period containing `now_ms`: `""` for `total`, `@YYYY-MM` for a month,
/// `@YYYY-MM-DD` for a day.
pub fn period_suffix(period: CapPeriod, now_ms: u64) -> String {
    let (y, m, d) = utc_date(now_ms);
    match period {
        CapPeriod::Total => String::new(),
        CapPeriod::Month => format!("@{y:04}-{m:02}"),
        CapPeriod::Day => format!("@{y:04}-{m:02}-{d:02}"),
    }
}

impl SpendScope {
    /// The cap of API key `key_id` over `period`, for a request at `now_ms`.
    pub fn key_in(key_id: &str, cap_micros: u64, period: CapPeriod, now_ms: u64) -> Self {
        let mut scope = Self::key(key_id, cap_micros);
        scope.key.push_str(&period_suffix(period, now_ms));
        scope
    }

    /// The cap of account `account_id` over `period`, for a request at `now_ms`.
    pub fn account_in(account_id: &str, cap_micros: u64, period: CapPeriod, now_ms: u64) -> Self {
        let mut scope = Self::account(account_id, cap_micros);
        scope.key.push_str(&period_suffix(period, now_ms));
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-30T23:59:59.999Z and the next millisecond.
    const NOV_END: u64 = 1_796_083_199_999;

    #[test]
    fn dates_follow_the_gregorian_calendar() {
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(951_782_400_000), (2000, 2, 29));
        assert_eq!(utc_date(NOV_END), (2026, 11, 30));
        assert_eq!(utc_date(NOV_END + 1), (2026, 12, 1));
        assert_eq!(utc_date(1_798_761_599_999), (2026, 12, 31));
        assert_eq!(utc_date(1_798_761_600_000), (2027, 1, 1));
    }

    #[test]
    fn periods_name_their_entries_and_change_at_midnight_utc() {
        assert_eq!(period_suffix(CapPeriod::Total, NOV_END), "");
        assert_eq!(period_suffix(CapPeriod::Month, NOV_END), "@2026-11");
        assert_eq!(period_suffix(CapPeriod::Month, NOV_END + 1), "@2026-12");
        assert_eq!(period_suffix(CapPeriod::Day, NOV_END), "@2026-11-30");
        assert_eq!(period_suffix(CapPeriod::Day, NOV_END + 1), "@2026-12-01");
        assert_eq!(SpendScope::key_in("k", 5, CapPeriod::Month, NOV_END).key, "spend:key:k@2026-11");
        assert_eq!(SpendScope::account_in("a", 5, CapPeriod::Day, NOV_END + 1).key, "spend:acct:a@2026-12-01");
        assert_eq!(SpendScope::key_in("k", 5, CapPeriod::Total, NOV_END).key, "spend:key:k");
    }
}
