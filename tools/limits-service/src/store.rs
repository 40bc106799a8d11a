//! The limits in Redis: one atomic Lua script per operation, so every decision reads, decides
//! and writes with no other command in between, whichever service instance runs it.
//!
//! Redis keys (all under `tg:`):
//!
//! | key                          | type    | holds                                              |
//! |------------------------------|---------|----------------------------------------------------|
//! | `tg:w:{window key}:{start_ms}` | string | a calendar window's count; expires one period after the window ends |
//! | `tg:s:{scope key}`           | hash    | `spent`, `reserved` (sum of live holds), `h:{reservation}` per hold |
//! | `tg:h:{scope key}`           | zset    | live holds by expiry (ms, Redis clock)              |
//! | `tg:settled:{reservation}`   | string  | the settled cost; expires after `settled_ttl`      |
//!
//! Spend state has no expiry: spent credits are kept for good (and by Redis persistence, across
//! restarts). A hold's expiry is by the Redis server's clock (`TIME`), the same for every
//! service instance; windows are picked by the `now_ms` the filter sends, as in the local store.

use std::time::Duration;

use tollgate_core::limits::remote::{
    AdmitRequest, AdmitResponse, PeekRequest, Refusal, SettleRequest, SettleResponse, UndoRequest, UndoResponse,
    WindowState, MAX_EXACT_MICROS,
};

use crate::resp::{Conn, Error, Pool, Value};

/// Longest key, reservation id or scope key accepted, in bytes.
const MAX_NAME: usize = 512;
/// Most windows or caps in one admit.
const MAX_ITEMS: usize = 8;
/// Shortest and longest window accepted (a second, a day).
const PERIODS_MS: std::ops::RangeInclusive<u64> = 1_000..=86_400_000;

/// Removes a scope's expired holds (at most 256 per call: any left over still count, which can
/// only refuse more, never admit more). Shared by the scripts below.
const PURGE: &str = r#"
local function int(x) return string.format('%d', x) end
local function purge(spend, holds, now)
  local dead = redis.call('ZRANGEBYSCORE', holds, '-inf', int(now), 'LIMIT', 0, 256)
  for _, id in ipairs(dead) do
    local amount = redis.call('HGET', spend, 'h:' .. id)
    if amount then
      redis.call('HDEL', spend, 'h:' .. id)
      if redis.call('HINCRBY', spend, 'reserved', int(-tonumber(amount))) < 0 then
        redis.call('HSET', spend, 'reserved', '0')
      end
    end
    redis.call('ZREM', holds, id)
  end
end
"#;

/// Admit, all or nothing.
/// KEYS: the window counters (nw), then per cap its spend hash and holds zset, then the
/// reservation's settled marker.
/// ARGV: nw, reservation, hold total, hold ttl ms, then per window its limit, expire-at ms and
/// cost (what the request counts: 1, or a token estimate), then per cap its cap.
/// Returns {admitted 1|0, refused-by 0 none|1 window|2 cap|3 settled, index (0-based),
/// cap left (after the hold when admitted; of the refusing cap when refused), window counts
/// before this request...}.
const ADMIT: &str = r#"
local nw = tonumber(ARGV[1])
local id = ARGV[2]
local hold = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local ncap = (#KEYS - nw - 1) / 2
local counts = {}
for i = 1, nw do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  counts[i] = c
  if c + tonumber(ARGV[4 + 3 * i]) > tonumber(ARGV[2 + 3 * i]) then
    local out = {0, 1, i - 1, 0}
    for k = 1, i do out[4 + k] = counts[k] end
    return out
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = 4 + 3 * nw
local deltas = {}
local left_min = -1
if ncap > 0 and redis.call('EXISTS', KEYS[#KEYS]) == 1 then
  return {0, 3, 0, 0}
end
for j = 1, ncap do
  local spend, holds = KEYS[nw + 2 * j - 1], KEYS[nw + 2 * j]
  purge(spend, holds, now)
  local cap = tonumber(ARGV[base + j])
  local state = redis.call('HMGET', spend, 'spent', 'reserved', 'h:' .. id)
  local spent, reserved, mine = tonumber(state[1] or '0'), tonumber(state[2] or '0'), tonumber(state[3] or '0')
  local delta = math.max(hold - mine, 0)
  local committed = spent + reserved
  local left = math.max(cap - committed, 0)
  if spent >= cap or committed + delta > cap then
    local out = {0, 2, j - 1, left}
    for k = 1, nw do out[4 + k] = counts[k] end
    return out
  end
  deltas[j] = delta
  if left_min < 0 or left - delta < left_min then left_min = left - delta end
end
for i = 1, nw do
  redis.call('INCRBY', KEYS[i], ARGV[4 + 3 * i])
  redis.call('PEXPIREAT', KEYS[i], ARGV[3 + 3 * i])
end
if hold > 0 then
  for j = 1, ncap do
    local spend, holds = KEYS[nw + 2 * j - 1], KEYS[nw + 2 * j]
    if deltas[j] > 0 then
      redis.call('HINCRBY', spend, 'reserved', int(deltas[j]))
      redis.call('HSET', spend, 'h:' .. id, int(hold))
    end
    redis.call('ZADD', holds, int(now + ttl), id)
  end
end
local out = {1, 0, 0, math.max(left_min, 0)}
for k = 1, nw do out[4 + k] = counts[k] end
return out
"#;

/// Settle once. KEYS: the settled marker, then per cap its spend hash and holds zset, then the
/// token windows' counters.
/// ARGV: reservation, actual cost, marker ttl ms, number of caps, then per token window the
/// tokens reserved and used. Returns 1 if charged now, 0 if already settled.
const SETTLE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local id = ARGV[1]
local ncap = tonumber(ARGV[4])
for w = 1, #KEYS - 1 - 2 * ncap do
  local key = KEYS[1 + 2 * ncap + w]
  local c = tonumber(redis.call('GET', key) or 'x')
  if c then
    local delta = math.max(tonumber(ARGV[4 + 2 * w]) - tonumber(ARGV[3 + 2 * w]), -c)
    if delta ~= 0 then redis.call('INCRBY', key, int(delta)) end
  end
end
for j = 2, 2 * ncap, 2 do
  local spend, holds = KEYS[j], KEYS[j + 1]
  local mine = redis.call('HGET', spend, 'h:' .. id)
  if mine then
    redis.call('HDEL', spend, 'h:' .. id)
    redis.call('ZREM', holds, id)
    if redis.call('HINCRBY', spend, 'reserved', int(-tonumber(mine))) < 0 then
      redis.call('HSET', spend, 'reserved', '0')
    end
  end
  redis.call('HINCRBY', spend, 'spent', ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"#;

/// Give one slot back. KEYS: the window counter. Returns 1 if given back.
const UNDO: &str = r#"
local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if c > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"#;

/// Why a call was not answered.
#[derive(Debug)]
pub enum Failure {
    /// The request is malformed or out of range (400).
    Bad(String),
    /// The reservation was already settled (409).
    Settled,
    /// Redis failed or timed out (503).
    Redis(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Redis(e)
    }
}

/// The limits over one Redis.
pub struct Store {
    pool: Pool,
    settled_ttl: Duration,
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::Bad(msg.into())
}

fn check_name(what: &str, name: &str) -> Result<(), Failure> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad(format!("{what} must be 1 to {MAX_NAME} bytes")));
    }
    Ok(())
}

/// A window's bounds: (start, end) in unix ms.
fn window(now_ms: u64, period_ms: u64) -> Result<(u64, u64), Failure> {
    if !PERIODS_MS.contains(&period_ms) {
        return Err(bad("period_ms must be 1000 to 86400000"));
    }
    if now_ms > MAX_EXACT_MICROS {
        return Err(bad("now_ms out of range"));
    }
    let start = now_ms - now_ms % period_ms;
    let end = start.checked_add(period_ms).ok_or_else(|| bad("now_ms out of range"))?;
    Ok((start, end))
}

fn window_key(key: &str, start_ms: u64) -> String {
    format!("tg:w:{key}:{start_ms}")
}

fn ints(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Array(Some(items)) => {
            items.iter().map(|i| if let Value::Int(n) = i { Some(*n) } else { None }).collect()
        }
        _ => None,
    }
}

fn unexpected() -> Failure {
    Failure::Redis(Error::Io("unexpected script reply".into()))
}

/// Runs `script` by its hash, loading it first when Redis does not know it (a new or restarted
/// Redis, or a flushed script cache).
async fn eval(conn: &mut Conn, script: &str, keys: &[String], args: &[String]) -> Result<Value, Error> {
    let source = format!("{PURGE}{script}");
    let numkeys = keys.len().to_string();
    let sha = script_sha(&source);
    let mut argv: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes(), numkeys.as_bytes()];
    argv.extend(keys.iter().map(|k| k.as_bytes()));
    argv.extend(args.iter().map(|a| a.as_bytes()));
    match conn.call(&argv).await {
        Err(Error::Reply(e)) if e.starts_with("NOSCRIPT") => {
            if let Some(cmd) = argv.first_mut() {
                *cmd = b"EVAL";
            }
            if let Some(body) = argv.get_mut(1) {
                *body = source.as_bytes();
            }
            conn.call(&argv).await
        }
        other => other,
    }
}

/// The SHA-1 of a script, as Redis names it in its cache (computed here, no dependency: the
/// scripts are fixed, so the cost is paid once per call on a few hundred bytes).
fn script_sha(source: &str) -> String {
    sha1_hex(source.as_bytes())
}

impl Store {
    /// The limits over the Redis at `addr` (`host:port`), each operation bounded by `timeout`;
    /// settled reservation ids are remembered for `settled_ttl`.
    pub fn new(addr: String, timeout: Duration, settled_ttl: Duration) -> Self {
        Self { pool: Pool::new(addr, timeout), settled_ttl }
    }

    /// Whether Redis answers `PING` in time.
    pub async fn ping(&self) -> Result<(), Error> {
        self.pool.run(|c| Box::pin(async move { c.call(&[b"PING"]).await.map(|_| ()) })).await
    }

    /// Checks and applies every limit of one request, all or nothing.
    pub async fn admit(&self, r: &AdmitRequest) -> Result<AdmitResponse, Failure> {
        if r.windows.len() > MAX_ITEMS || r.caps.len() > MAX_ITEMS {
            return Err(bad(format!("at most {MAX_ITEMS} windows and {MAX_ITEMS} caps")));
        }
        let mut keys = Vec::with_capacity(r.windows.len() + 2 * r.caps.len() + 1);
        let mut args = vec![
            r.windows.len().to_string(),
            r.reservation.clone(),
            r.hold_micros.to_string(),
            r.hold_ttl_ms.to_string(),
        ];
        let mut resets = Vec::with_capacity(r.windows.len());
        for w in &r.windows {
            check_name("window key", &w.key)?;
            let (start, end) = window(r.now_ms, w.period_ms)?;
            keys.push(window_key(&w.key, start));
            if w.cost > MAX_EXACT_MICROS {
                return Err(bad("cost too large"));
            }
            args.push(w.limit.to_string());
            // Kept one period past its end: a request stamped just before the boundary by a
            // replica whose clock is behind still finds it.
            args.push(end.saturating_add(w.period_ms).to_string());
            args.push(w.cost.to_string());
            resets.push(end.saturating_sub(r.now_ms));
        }
        if !r.caps.is_empty() {
            check_name("reservation", &r.reservation)?;
            if r.hold_micros > MAX_EXACT_MICROS {
                return Err(bad("hold_micros too large"));
            }
            if r.hold_ttl_ms == 0 || r.hold_ttl_ms > self.settled_ttl.as_millis() as u64 {
                return Err(bad("hold_ttl_ms must be above 0 and at most the service's --settled-ttl"));
            }
        }
        for c in &r.caps {
            check_name("cap key", &c.key)?;
            if c.cap_micros > MAX_EXACT_MICROS {
                return Err(bad("cap_micros too large"));
            }
            keys.push(format!("tg:s:{}", c.key));
            keys.push(format!("tg:h:{}", c.key));
            args.push(c.cap_micros.to_string());
        }
        keys.push(format!("tg:settled:{}", r.reservation));
        let reply = self.pool.run(|c| Box::pin(async move { eval(c, ADMIT, &keys, &args).await })).await?;
        let out = ints(&reply).ok_or_else(unexpected)?;
        admit_answer(r, &resets, &out)
    }

    /// Charges a reservation's actual cost once, releasing its hold.
    pub async fn settle(&self, r: &SettleRequest) -> Result<SettleResponse, Failure> {
        check_name("reservation", &r.reservation)?;
        if r.caps.len() > MAX_ITEMS {
            return Err(bad(format!("at most {MAX_ITEMS} caps")));
        }
        if r.actual_micros > MAX_EXACT_MICROS {
            return Err(bad("actual_micros too large"));
        }
        if r.windows.len() > MAX_ITEMS {
            return Err(bad(format!("at most {MAX_ITEMS} windows")));
        }
        let mut keys = vec![format!("tg:settled:{}", r.reservation)];
        for c in &r.caps {
            check_name("cap key", c)?;
            keys.push(format!("tg:s:{c}"));
            keys.push(format!("tg:h:{c}"));
        }
        let mut args = vec![
            r.reservation.clone(),
            r.actual_micros.to_string(),
            self.settled_ttl.as_millis().to_string(),
            r.caps.len().to_string(),
        ];
        for w in &r.windows {
            check_name("window key", &w.key)?;
            if w.reserved > MAX_EXACT_MICROS || w.actual > MAX_EXACT_MICROS {
                return Err(bad("window amounts too large"));
            }
            let (start, _) = window(w.now_ms, w.period_ms)?;
            keys.push(window_key(&w.key, start));
            args.push(w.reserved.to_string());
            args.push(w.actual.to_string());
        }
        let reply = self.pool.run(|c| Box::pin(async move { eval(c, SETTLE, &keys, &args).await })).await?;
        match reply {
            Value::Int(n) => Ok(SettleResponse { settled: n == 1 }),
            _ => Err(unexpected()),
        }
    }

    /// Gives back one slot of the window containing `now_ms`.
    pub async fn undo(&self, r: &UndoRequest) -> Result<UndoResponse, Failure> {
        check_name("window key", &r.key)?;
        let (start, _) = window(r.now_ms, r.period_ms)?;
        let keys = vec![window_key(&r.key, start)];
        let reply = self.pool.run(|c| Box::pin(async move { eval(c, UNDO, &keys, &[]).await })).await?;
        match reply {
            Value::Int(n) => Ok(UndoResponse { undone: n == 1 }),
            _ => Err(unexpected()),
        }
    }

    /// Reads a window without counting.
    pub async fn peek(&self, r: &PeekRequest) -> Result<WindowState, Failure> {
        let w = &r.window;
        check_name("window key", &w.key)?;
        let (start, end) = window(r.now_ms, w.period_ms)?;
        let key = window_key(&w.key, start);
        let reply = self.pool.run(|c| Box::pin(async move { c.call(&[b"GET", key.as_bytes()]).await })).await?;
        let count = match reply {
            Value::Bulk(None) => 0,
            Value::Bulk(Some(v)) => std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
            _ => return Err(unexpected()),
        };
        let allowed = count < u64::from(w.limit);
        let remaining = if allowed { u64::from(w.limit).saturating_sub(count) } else { 0 };
        Ok(WindowState {
            allowed,
            limit: w.limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after_ms: end.saturating_sub(r.now_ms),
        })
    }
}

/// The admit script's reply (see [`ADMIT`]) as the answer to `r`; `resets` are the windows'
/// times to their ends.
fn admit_answer(r: &AdmitRequest, resets: &[u64], out: &[i64]) -> Result<AdmitResponse, Failure> {
    let [admitted, refused, index, left, counts @ ..] = out else {
        return Err(unexpected());
    };
    let index = usize::try_from(*index).map_err(|_| unexpected())?;
    let mut windows = Vec::with_capacity(counts.len());
    for (i, count) in counts.iter().enumerate() {
        let (Some(w), Some(reset)) = (r.windows.get(i), resets.get(i)) else {
            return Err(unexpected());
        };
        let count = u64::try_from(*count).unwrap_or(0);
        let allowed = !(*refused == 1 && i == index);
        let remaining = if allowed { u64::from(w.limit).saturating_sub(count.saturating_add(w.cost)) } else { 0 };
        windows.push(WindowState {
            allowed,
            limit: w.limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after_ms: *reset,
        });
    }
    let left = u64::try_from(*left).unwrap_or(0);
    let caps_checked = !r.caps.is_empty() && *refused != 1;
    Ok(match (*admitted, *refused) {
        (1, _) => AdmitResponse {
            admitted: true,
            refused: None,
            index: None,
            windows,
            remaining_micros: caps_checked.then_some(left),
            reserved_micros: if r.caps.is_empty() { 0 } else { r.hold_micros },
        },
        (_, 1) => AdmitResponse {
            admitted: false,
            refused: Some(Refusal::Window),
            index: Some(index),
            windows,
            remaining_micros: None,
            reserved_micros: 0,
        },
        (_, 2) => AdmitResponse {
            admitted: false,
            refused: Some(Refusal::Cap),
            index: Some(index),
            windows,
            remaining_micros: Some(left),
            reserved_micros: 0,
        },
        (_, 3) => return Err(Failure::Settled),
        _ => return Err(unexpected()),
    })
}

/// SHA-1 (FIPS 180-4) in lowercase hex: what `EVALSHA` names a script by.
fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            if let (Some(slot), [a, b, c, d]) = (w.get_mut(i), word) {
                *slot = u32::from_be_bytes([*a, *b, *c, *d]);
            }
        }
        for i in 16..80 {
            let x = w.get(i - 3).copied().unwrap_or(0)
                ^ w.get(i - 8).copied().unwrap_or(0)
                ^ w.get(i - 14).copied().unwrap_or(0)
                ^ w.get(i - 16).copied().unwrap_or(0);
            if let Some(slot) = w.get_mut(i) {
                *slot = x.rotate_left(1);
            }
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (slot, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *slot = slot.wrapping_add(v);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::limits::remote::parse_admit;
    use tollgate_core::limits::{RateDecision, SpendDecision, SpendScope};

    /// What the filter gets from an admit script reply: the answer as sent, parsed by the core.
    fn through_the_wire(
        r: &AdmitRequest,
        resets: &[u64],
        out: &[i64],
    ) -> Option<tollgate_core::limits::remote::Admission> {
        let answer = admit_answer(r, resets, out).ok()?;
        let body = serde_json::to_vec(&answer).ok()?;
        parse_admit(r, 200, &body).ok()
    }

    fn request() -> AdmitRequest {
        AdmitRequest::new(1_000).rpm("acct", 20).daily("key", 100).hold(
            "req-1",
            &[SpendScope::key("key", 5_000), SpendScope::account("acct", 9_000)],
            700,
            60_000,
        )
    }

    fn rate(allowed: bool, limit: u32, remaining: u32, reset_after_ms: u64) -> RateDecision {
        RateDecision {
            allowed,
            limit,
            remaining,
            reset_after_ms,
            retry_after_secs: reset_after_ms.div_ceil(1000).max(1),
        }
    }

    #[test]
    fn script_replies_parse_into_the_local_decisions() {
        let r = request();
        let resets = [59_000, 86_399_000];
        // Admitted: counts before this request were 4 and 99.
        let a = through_the_wire(&r, &resets, &[1, 0, 0, 3_300, 4, 99]);
        assert_eq!(a.as_ref().map(|a| a.admitted()), Some(true));
        assert_eq!(
            a.as_ref().map(|a| a.windows.clone()),
            Some(vec![rate(true, 20, 15, 59_000), rate(true, 100, 0, 86_399_000)])
        );
        assert_eq!(
            a.and_then(|a| a.spend),
            Some(SpendDecision { allowed: true, reserved_micros: 700, rejected_scope: None, remaining_micros: 3_300 })
        );
        // Refused by the sandbox window (index 1, already at 100): no spend decision.
        let w = through_the_wire(&r, &resets, &[0, 1, 1, 0, 4, 100]);
        assert_eq!(w.as_ref().map(|a| a.refused_window()), Some(Some((1, rate(false, 100, 0, 86_399_000)))));
        assert_eq!(w.map(|a| a.spend), Some(None));
        // Refused by the account cap (index 1) with 200 left.
        let c = through_the_wire(&r, &resets, &[0, 2, 1, 200, 4, 99]);
        assert_eq!(
            c.and_then(|a| a.spend),
            Some(SpendDecision { allowed: false, reserved_micros: 0, rejected_scope: Some(1), remaining_micros: 200 })
        );
        // Replies that do not fit the request are errors, never an admission.
        assert!(through_the_wire(&r, &resets, &[1, 0, 0, 3_300, 4]).is_none());
        assert!(through_the_wire(&r, &resets, &[1, 0, 0]).is_none());
        assert!(matches!(admit_answer(&r, &resets, &[0, 3, 0, 0]), Err(Failure::Settled)));
        assert!(matches!(admit_answer(&r, &resets, &[0, 7, 0, 0, 1, 1]), Err(Failure::Redis(_))));
    }

    #[test]
    fn sha1_matches_known_digests() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha1_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn windows_are_calendar_aligned() {
        assert_eq!(window(1_700_000_059_999, 60_000).ok(), Some((1_700_000_040_000, 1_700_000_100_000)));
        assert_eq!(window(1_700_000_100_000, 60_000).ok(), Some((1_700_000_100_000, 1_700_000_160_000)));
        assert_eq!(window(1_700_000_000_000, 86_400_000).ok(), Some((1_699_920_000_000, 1_700_006_400_000)));
        assert!(window(5, 0).is_err());
        assert!(window(5, 86_400_001).is_err());
        assert!(window(u64::MAX, 60_000).is_err());
    }
}
