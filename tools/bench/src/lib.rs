//! Shared pieces of the bench tools, kept here so they are unit-tested: latency percentiles,
//! SSE event counting across arbitrary chunk boundaries, and /proc CPU time.

/// The filter configuration the benches use: one OpenAI-dialect text cluster and model, a bench
/// account with no limit that matters, a 1-rpm account, and `extra_keys` synthetic keys
/// (`sk-synthetic-{i}`, hashed) on the bench account.
pub fn bench_config_json(extra_keys: usize) -> String {
    use std::fmt::Write;
    let h = |k: &str| tollgate_core::keys::to_hex(&tollgate_core::keys::sha256(k.as_bytes()));
    let mut s = String::with_capacity(200 + extra_keys * 120);
    s.push_str(r#"{"clusters":[{"name":"demo_text","dialect":"openai"}],"#);
    s.push_str(r#""models":[{"id":"qai-flash","type":"text","cluster":"demo_text","price":{"prompt_per_1k":0.1,"completion_per_1k":0.2}}],"#);
    s.push_str(r#""accounts":[{"id":"acct-bench","rpm":1000000000},{"id":"acct-bench-limited","rpm":1}],"keys":["#);
    let _ = write!(s, r#"{{"id":"key-bench","account":"acct-bench","sha256":"{}"}},"#, h("sk-bench-unlimited"));
    let _ = write!(
        s,
        r#"{{"id":"key-bench-limited","account":"acct-bench-limited","sha256":"{}"}}"#,
        h("sk-bench-limited")
    );
    for i in 0..extra_keys {
        let _ =
            write!(s, r#",{{"id":"key-{i}","account":"acct-bench","sha256":"{}"}}"#, h(&format!("sk-synthetic-{i}")));
    }
    s.push_str("]}");
    s
}

/// Counts SSE events (a blank line ends an event: `\n\n`) in a byte stream fed in arbitrary pieces.
#[derive(Debug, Default, Clone)]
pub struct SseCounter {
    last_was_newline: bool,
    pub events: u64,
}

impl SseCounter {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => {
                    if self.last_was_newline {
                        self.events += 1;
                        self.last_was_newline = false;
                    } else {
                        self.last_was_newline = true;
                    }
                }
                b'\r' => {}
                _ => self.last_was_newline = false,
            }
        }
    }
}

/// The value at quantile `q` (0..=1) of sorted samples (nearest rank), 0 when empty.
pub fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).copied().unwrap_or(0)
}

/// utime + stime of a process in clock ticks, from `/proc/<pid>/stat`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&s)
}

/// Fields 14 and 15 (utime, stime) of a `/proc/<pid>/stat` line; the command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its closing parenthesis.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': field 3 (state) is the first; utime is field 14, i.e. the 12th after it.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_counted_at_every_split() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\nevent: x\ndata: y\r\n\r\ndata: [DONE]\n\n";
        for split in 0..=stream.len() {
            let mut c = SseCounter::default();
            c.feed(&stream[..split]);
            c.feed(&stream[split..]);
            assert_eq!(c.events, 4, "split at {split}");
        }
        let mut c = SseCounter::default();
        for b in stream.iter() {
            c.feed(std::slice::from_ref(b));
        }
        assert_eq!(c.events, 4);
    }

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.99), 7);
    }

    #[test]
    fn stat_line_with_odd_command_name() {
        let line = "1234 (envoy (main) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 42 0 0";
        assert_eq!(parse_stat_ticks(line), Some(287));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn own_process_has_cpu_time() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
