//! Usage reports from Tollgate billing records (issue 19).
//!
//! Reads billing logs (one JSON record a line, as the filter writes them: `core/src/exchange/record.rs`
//! `fn record`), streams them line by line and adds each record into totals per group (any
//! combination of account, key, model, UTC day or hour). Memory is bounded by the number of
//! distinct groups (and of hours x models for the chart), never by the size of the logs; a line
//! longer than [`MAX_LINE`] is skipped without being held. Lines that are not billing records are
//! skipped and counted by reason.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, BufRead, Write};

use serde::Deserialize;
use serde_json::{json, Map, Value};

pub mod svg;

/// The longest line read. A record with `log_content` carries two bodies of at most 64 KiB each,
/// which JSON escaping can grow up to six times: 4 MiB leaves room for that and then some.
pub const MAX_LINE: usize = 4 << 20;

/// What rows are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Account,
    Key,
    Model,
    Day,
    Hour,
}

impl Dim {
    pub fn parse(s: &str) -> Option<Dim> {
        match s {
            "account" => Some(Dim::Account),
            "key" => Some(Dim::Key),
            "model" => Some(Dim::Model),
            "day" => Some(Dim::Day),
            "hour" => Some(Dim::Hour),
            _ => None,
        }
    }

    /// The column's name (CSV header, JSON field).
    pub fn column(self) -> &'static str {
        match self {
            Dim::Account => "account_id",
            Dim::Key => "key_id",
            Dim::Model => "model",
            Dim::Day => "day",
            Dim::Hour => "hour",
        }
    }
}

/// `--by account,key,model` (also repeated): the dimensions in the order given, each once.
pub fn parse_dims(spec: &str, into: &mut Vec<Dim>) -> Result<(), String> {
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d = Dim::parse(part)
            .ok_or_else(|| format!("--by: unknown dimension '{part}' (account, key, model, day, hour)"))?;
        if !into.contains(&d) {
            into.push(d);
        }
    }
    Ok(())
}

/// A UTC date `YYYY-MM-DD` (for `--since` / `--until`), checked for shape and calendar.
pub fn parse_date(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok()).unwrap_or(0);
    if !shape
        || !(1..=12).contains(&num(5..7))
        || num(8..10) < 1
        || num(8..10) > days_in_month(num(0..4) as i64, num(5..7))
    {
        return Err(format!("'{s}' is not a date (YYYY-MM-DD)"));
    }
    Ok(s.to_string())
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// One billing record, as much of it as a report needs (other fields, bodies included, are
/// skipped by the parser without being kept).
#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    key_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
    status: u16,
    prompt_tokens: u64,
    completion_tokens: u64,
    #[serde(default)]
    cached_tokens: Option<u64>,
    /// Anthropic cache writes (absent from records written before the field existed: 0).
    #[serde(default)]
    cache_creation_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
    credits: f64,
    estimated: bool,
}

/// Totals of a group (or of everything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    /// Records with an error code or a status of 400 and above.
    pub errors: u64,
    /// Tokens the upstream reported (records not marked estimated).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Records billed on an estimate, and their tokens.
    pub estimated_requests: u64,
    pub estimated_prompt_tokens: u64,
    pub estimated_completion_tokens: u64,
    pub cached_tokens: u64,
    /// Prompt tokens written to the upstream's cache (Anthropic cache writes).
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
    /// Credits in millionths (the filter bills in millionths: the sums are exact).
    pub microcredits: u64,
}

impl Totals {
    fn add(&mut self, r: &Rec, micros: u64) {
        self.requests = self.requests.saturating_add(1);
        if r.error.is_some() || r.status >= 400 {
            self.errors = self.errors.saturating_add(1);
        }
        if r.estimated {
            self.estimated_requests = self.estimated_requests.saturating_add(1);
            self.estimated_prompt_tokens = self.estimated_prompt_tokens.saturating_add(r.prompt_tokens);
            self.estimated_completion_tokens = self.estimated_completion_tokens.saturating_add(r.completion_tokens);
        } else {
            self.prompt_tokens = self.prompt_tokens.saturating_add(r.prompt_tokens);
            self.completion_tokens = self.completion_tokens.saturating_add(r.completion_tokens);
        }
        self.cached_tokens = self.cached_tokens.saturating_add(r.cached_tokens.unwrap_or(0));
        self.cache_creation_tokens = self.cache_creation_tokens.saturating_add(r.cache_creation_tokens.unwrap_or(0));
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(r.reasoning_tokens.unwrap_or(0));
        self.microcredits = self.microcredits.saturating_add(micros);
    }

    fn json_fields(&self, into: &mut Map<String, Value>) {
        into.insert("requests".into(), json!(self.requests));
        into.insert("errors".into(), json!(self.errors));
        into.insert("prompt_tokens".into(), json!(self.prompt_tokens));
        into.insert("completion_tokens".into(), json!(self.completion_tokens));
        into.insert("estimated_requests".into(), json!(self.estimated_requests));
        into.insert("estimated_prompt_tokens".into(), json!(self.estimated_prompt_tokens));
        into.insert("estimated_completion_tokens".into(), json!(self.estimated_completion_tokens));
        into.insert("cached_tokens".into(), json!(self.cached_tokens));
        into.insert("cache_creation_tokens".into(), json!(self.cache_creation_tokens));
        into.insert("reasoning_tokens".into(), json!(self.reasoning_tokens));
        into.insert("credits".into(), json!(self.microcredits as f64 / 1e6));
        into.insert("microcredits".into(), json!(self.microcredits));
    }

    /// The numeric columns, in table / CSV order, credits last.
    fn cells(&self) -> [u64; 10] {
        [
            self.requests,
            self.errors,
            self.prompt_tokens,
            self.completion_tokens,
            self.estimated_requests,
            self.estimated_prompt_tokens,
            self.estimated_completion_tokens,
            self.cached_tokens,
            self.cache_creation_tokens,
            self.reasoning_tokens,
        ]
    }
}

const NUM_COLUMNS: [&str; 11] = [
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "estimated_requests",
    "estimated_prompt_tokens",
    "estimated_completion_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "credits",
];
const TABLE_HEADS: [&str; 11] = [
    "requests",
    "errors",
    "prompt",
    "completion",
    "est. req",
    "est. prompt",
    "est. compl.",
    "cached",
    "cache writes",
    "reasoning",
    "credits",
];

/// `12345678` millionths as `12.345678`.
pub fn credits_text(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// `1234567890123` millionths as `1,234,567.890123` (for people: the table, the chart).
pub fn credits_grouped(micros: u64) -> String {
    format!("{}.{:06}", thousands(micros / 1_000_000), micros % 1_000_000)
}

pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Why a line was skipped.
pub const REASONS: [&str; 6] = ["not_json", "not_a_record", "bad_time", "bad_credits", "too_long", "no_record"];

/// The aggregation over every line read.
pub struct Report {
    dims: Vec<Dim>,
    since: Option<String>,
    until: Option<String>,
    /// Group key (length-prefixed values) -> (values, totals).
    groups: HashMap<String, (Vec<Option<String>>, Totals)>,
    /// UTC hour `YYYY-MM-DDTHH` -> model -> microcredits, for the chart.
    spend: HashMap<String, HashMap<String, u64>>,
    pub total: Totals,
    pub files: Vec<String>,
    pub lines: u64,
    pub filtered_out: u64,
    pub skipped: BTreeMap<&'static str, u64>,
    /// The first few skipped lines: (file, line number, reason).
    pub first_skipped: Vec<(String, u64, &'static str)>,
    keybuf: String,
}

fn time_ok(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 13
        && b.iter().take(13).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            _ => c.is_ascii_digit(),
        })
        && t.get(..10).map(|d| parse_date(d).is_ok()).unwrap_or(false)
        && t.get(11..13).and_then(|h| h.parse::<u8>().ok()).map(|h| h < 24).unwrap_or(false)
}

impl Report {
    pub fn new(dims: Vec<Dim>, since: Option<String>, until: Option<String>) -> Report {
        Report {
            dims,
            since,
            until,
            groups: HashMap::new(),
            spend: HashMap::new(),
            total: Totals::default(),
            files: Vec::new(),
            lines: 0,
            filtered_out: 0,
            skipped: BTreeMap::new(),
            first_skipped: Vec::new(),
            keybuf: String::new(),
        }
    }

    pub fn dims(&self) -> &[Dim] {
        &self.dims
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn skip(&mut self, file: &str, line: u64, why: &'static str) {
        *self.skipped.entry(why).or_insert(0) += 1;
        if self.first_skipped.len() < 5 {
            self.first_skipped.push((file.to_string(), line, why));
        }
    }

    /// Reads one log to its end, line by line.
    pub fn feed<R: BufRead>(&mut self, name: &str, mut reader: R) -> io::Result<()> {
        self.files.push(name.to_string());
        let mut buf = Vec::with_capacity(1024);
        let mut lineno = 0u64;
        loop {
            buf.clear();
            let (n, too_long) = read_line_capped(&mut reader, &mut buf, MAX_LINE)?;
            if n == 0 {
                return Ok(());
            }
            lineno += 1;
            if too_long {
                self.lines += 1;
                self.skip(name, lineno, "too_long");
                continue;
            }
            self.line(name, lineno, &buf);
        }
    }

    /// One line (without needing its newline). Blank lines are not counted.
    pub fn line(&mut self, file: &str, lineno: u64, raw: &[u8]) {
        let text = raw.trim_ascii();
        if text.is_empty() {
            return;
        }
        self.lines += 1;
        if text == b"-" {
            // Envoy's access log writes `-` where the filter state is missing.
            return self.skip(file, lineno, "no_record");
        }
        let rec: Rec = match serde_json::from_slice(text) {
            Ok(r) => r,
            Err(_) => {
                let why = if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok() {
                    "not_a_record"
                } else {
                    "not_json"
                };
                return self.skip(file, lineno, why);
            }
        };
        if !time_ok(&rec.time) {
            return self.skip(file, lineno, "bad_time");
        }
        if !rec.credits.is_finite() || rec.credits < 0.0 || rec.credits > 1e12 {
            return self.skip(file, lineno, "bad_credits");
        }
        let day = rec.time.get(..10).unwrap_or_default();
        if self.since.as_deref().is_some_and(|s| day < s) || self.until.as_deref().is_some_and(|u| day > u) {
            self.filtered_out += 1;
            return;
        }
        let micros = (rec.credits * 1e6).round() as u64;
        self.total.add(&rec, micros);

        let hour = rec.time.get(..13).unwrap_or_default();
        let mut key = std::mem::take(&mut self.keybuf);
        key.clear();
        for d in &self.dims {
            match value_of(&rec, *d) {
                Some(v) => {
                    let _ = write!(key, "{}:{v}", v.len());
                }
                None => key.push('-'),
            }
        }
        match self.groups.get_mut(key.as_str()) {
            Some((_, t)) => t.add(&rec, micros),
            None => {
                let values = self.dims.iter().map(|d| value_of(&rec, *d).map(str::to_string)).collect();
                let mut t = Totals::default();
                t.add(&rec, micros);
                self.groups.insert(key.clone(), (values, t));
            }
        }
        self.keybuf = key;

        if micros > 0 {
            let model = rec.model.as_deref().unwrap_or("(no model)");
            let per_model = match self.spend.get_mut(hour) {
                Some(m) => m,
                None => self.spend.entry(hour.to_string()).or_default(),
            };
            match per_model.get_mut(model) {
                Some(v) => *v = v.saturating_add(micros),
                None => {
                    per_model.insert(model.to_string(), micros);
                }
            }
        }
    }

    /// The groups, sorted by their values (absent values first).
    pub fn rows(&self) -> Vec<(&[Option<String>], &Totals)> {
        let mut rows: Vec<_> = self.groups.values().map(|(v, t)| (v.as_slice(), t)).collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        rows
    }

    /// Spend per UTC hour and model (microcredits), for the chart.
    pub fn spend(&self) -> &HashMap<String, HashMap<String, u64>> {
        &self.spend
    }

    fn skipped_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.skipped {
            m.insert((*k).to_string(), json!(v));
        }
        Value::Object(m)
    }

    pub fn to_json(&self) -> Value {
        let groups: Vec<Value> = self
            .rows()
            .into_iter()
            .map(|(values, t)| {
                let mut m = Map::new();
                for (d, v) in self.dims.iter().zip(values) {
                    m.insert(
                        d.column().to_string(),
                        v.as_deref().map_or(Value::Null, |s| Value::String(s.to_string())),
                    );
                }
                t.json_fields(&mut m);
                Value::Object(m)
            })
            .collect();
        let mut totals = Map::new();
        self.total.json_fields(&mut totals);
        json!({
            "by": self.dims.iter().map(|d| d.column().trim_end_matches("_id")).collect::<Vec<_>>(),
            "since": self.since,
            "until": self.until,
            "files": self.files,
            "lines": self.lines,
            "records": self.total.requests,
            "filtered_out": self.filtered_out,
            "skipped": self.skipped_total(),
            "skipped_by_reason": self.skipped_json(),
            "groups": groups,
            "totals": Value::Object(totals),
        })
    }

    pub fn write_json<W: Write>(&self, w: &mut W) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *w, &self.to_json()).map_err(io::Error::other)?;
        writeln!(w)
    }

    pub fn write_csv<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let mut head: Vec<&str> = self.dims.iter().map(|d| d.column()).collect();
        head.extend(NUM_COLUMNS);
        writeln!(w, "{}", head.join(","))?;
        for (values, t) in self.rows() {
            let mut line = String::new();
            for v in values {
                line.push_str(&csv_cell(v.as_deref().unwrap_or("")));
                line.push(',');
            }
            for n in t.cells() {
                let _ = write!(line, "{n},");
            }
            line.push_str(&credits_text(t.microcredits));
            writeln!(w, "{line}")?;
        }
        Ok(())
    }

    pub fn write_table<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let mut head: Vec<String> = self.dims.iter().map(|d| d.column().trim_end_matches("_id").to_string()).collect();
        head.extend(TABLE_HEADS.iter().map(|s| s.to_string()));
        let fmt_row = |values: Vec<String>, t: &Totals| {
            let mut row = values;
            row.extend(t.cells().iter().map(|n| thousands(*n)));
            row.push(credits_grouped(t.microcredits));
            row
        };
        let mut body: Vec<Vec<String>> = self
            .rows()
            .into_iter()
            .map(|(values, t)| {
                fmt_row(values.iter().map(|v| v.as_deref().map_or_else(|| "-".into(), printable)).collect(), t)
            })
            .collect();
        let mut total_label = vec![String::new(); self.dims.len()];
        if let Some(first) = total_label.first_mut() {
            *first = "TOTAL".into();
        }
        let total = fmt_row(total_label, &self.total);
        let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
        for row in body.iter().chain(std::iter::once(&total)) {
            for (wd, c) in widths.iter_mut().zip(row) {
                *wd = (*wd).max(c.chars().count());
            }
        }
        let nd = self.dims.len();
        let render = |row: &[String]| {
            let mut s = String::new();
            for (i, (c, wd)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                if i < nd {
                    let _ = write!(s, "{c:<wd$}");
                } else {
                    let _ = write!(s, "{c:>wd$}");
                }
            }
            s.trim_end().to_string()
        };
        writeln!(w, "{}", render(&head))?;
        let rule: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        writeln!(w, "{}", "-".repeat(rule))?;
        for row in body.drain(..) {
            writeln!(w, "{}", render(&row))?;
        }
        writeln!(w, "{}", "-".repeat(rule))?;
        writeln!(w, "{}", render(&total))?;
        Ok(())
    }

    /// One line for stderr about what was skipped (None when nothing was).
    pub fn skipped_summary(&self) -> Option<String> {
        let n = self.skipped_total();
        if n == 0 {
            return None;
        }
        let reasons: Vec<String> = self.skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let first: Vec<String> = self.first_skipped.iter().map(|(f, l, why)| format!("{f}:{l} ({why})")).collect();
        Some(format!(
            "skipped {n} of {} lines that are not billing records ({}); first: {}",
            self.lines,
            reasons.join(", "),
            first.join(", ")
        ))
    }
}

/// A value for a terminal: control characters (escape sequences in a forged log) become U+FFFD.
fn printable(v: &str) -> String {
    v.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

fn value_of<'r>(rec: &'r Rec, d: Dim) -> Option<&'r str> {
    match d {
        Dim::Account => rec.account_id.as_deref(),
        Dim::Key => rec.key_id.as_deref(),
        Dim::Model => rec.model.as_deref(),
        Dim::Day => rec.time.get(..10),
        Dim::Hour => rec.time.get(..13),
    }
}

/// A CSV cell (RFC 4180 quoting). A value a spreadsheet would run as a formula (`=`, `+`, `@`,
/// tab, CR) gets a leading `'`.
pub fn csv_cell(v: &str) -> String {
    let v: Cow<str> =
        if v.starts_with(['=', '+', '@', '\t', '\r']) { Cow::Owned(format!("'{v}")) } else { Cow::Borrowed(v) };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.into_owned()
    }
}

/// Reads up to and including the next `\n` into `buf`; a line longer than `cap` is read to its
/// end but not kept (`buf` is left empty and the flag is true). Returns the bytes consumed.
pub fn read_line_capped<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, cap: usize) -> io::Result<(usize, bool)> {
    let mut total = 0usize;
    let mut over = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((total, over));
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !over {
            if buf.len() + take > cap {
                over = true;
                buf.clear();
                buf.shrink_to(1024);
            } else {
                buf.extend_from_slice(avail.get(..take).unwrap_or_default());
            }
        }
        total += take;
        r.consume(take);
        if done {
            return Ok((total, over));
        }
    }
}

/// Synthetic billing records for benchmarks: `n` records over `days` days from `start_day`
/// (days since 1970), 8 accounts, 40 keys, 5 models, a few estimated and refused ones; the
/// fields and their order are the filter's. Deterministic for a seed.
pub fn generate<W: Write>(w: &mut W, n: u64, start_day: i64, days: u32, seed: u64) -> io::Result<()> {
    const MODELS: [(&str, f64, f64); 5] = [
        ("qai-flash", 0.1, 0.2),
        ("qai-max", 1.5, 4.5),
        ("qai-mini", 0.05, 0.1),
        ("test-claude", 3.0, 15.0),
        ("test-gemini", 0.3, 2.5),
    ];
    let mut s = seed | 1;
    let mut next = move || {
        // xorshift64*
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let span_ms = u64::from(days.max(1)) * 86_400_000;
    let mut line = String::with_capacity(800);
    for i in 0..n {
        let r = next();
        let ms = span_ms * i / n.max(1) + r % 1000;
        let day = start_day + (ms / 86_400_000) as i64;
        let (y, mo, d) = civil_from_days(day);
        let in_day = ms % 86_400_000;
        let time = format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000
        );
        let key = (r >> 8) % 40;
        let account = key % 8;
        let (model, pp, cp) = MODELS.get(((r >> 16) % 5) as usize).copied().unwrap_or(MODELS[0]);
        let kind = (r >> 24) % 100;
        let (status, error, prompt, completion, estimated) = match kind {
            0..=2 => (429, "\"rate_limit_exceeded\"", 0, 0, false),
            3 => (401, "\"invalid_api_key\"", 0, 0, false),
            4..=8 => (200, "null", 50 + (r >> 32) % 2000, (r >> 40) % 500, true),
            _ => (200, "null", 20 + (r >> 32) % 4000, 1 + (r >> 44) % 1000, false),
        };
        let micros = ((prompt as f64 * pp + completion as f64 * cp) / 1000.0 * 1e6).round() as u64;
        let credits = micros as f64 / 1e6;
        let (acct, keyid, mdl) = if kind == 3 {
            ("null".to_string(), "null".to_string(), "null".to_string())
        } else {
            (format!("\"acct-{account}\""), format!("\"key-{key}\""), format!("\"{model}\""))
        };
        line.clear();
        let _ = write!(
            line,
            "{{\"account_id\":{acct},\"cache_creation_tokens\":0,\"cached_tokens\":0,\"client_request_id\":null,\"cluster\":\"demo_text\",\"complete\":true,\
             \"completion_tokens\":{completion},\"credits\":{credits},\"duration_ms\":{},\"endpoint\":\"chat_completions\",\
             \"error\":{error},\"estimated\":{estimated},\"front\":\"openai\",\"key_id\":{keyid},\"model\":{mdl},\
             \"prompt_tokens\":{prompt},\"reasoning_tokens\":0,\"request_id\":\"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}\",\
             \"status\":{status},\"stream\":{},\"time\":\"{time}\",\"ttfb_ms\":{},\"units\":null,\"upstream\":\"openai\",\
             \"upstream_model\":{mdl}}}",
            r % 5000,
            next() >> 32,
            next() & 0xffff,
            next() & 0xfff,
            next() & 0xfff,
            next() & 0xffff_ffff_ffff,
            r & 1 == 1,
            r % 300,
        );
        writeln!(w, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
