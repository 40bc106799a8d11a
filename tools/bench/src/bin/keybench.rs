//! `tollgate-keybench N...`: for each key count N, the native cost of what every Envoy VM does with
//! the configuration: `Config::parse` time, heap held by the parsed `Config`, peak heap during
//! parsing (the JSON text itself not counted), the same for `Config::parse_pieces` fed 64 KiB at a
//! time (as the filter reads it from Envoy), and key lookup time (hit, miss, and SHA-256 + lookup
//! as on each request). Prints one JSON document.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use tollgate_bench::bench_config_json;
use tollgate_core::config::key_table::to_base64url;
use tollgate_core::config::Config;
use tollgate_core::keys;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            let now = if new >= l.size() {
                LIVE.fetch_add(new - l.size(), Relaxed) + new - l.size()
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed) - (l.size() - new)
            };
            PEAK.fetch_max(now, Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mb(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// The bench configuration with its synthetic keys (`key-N`) as a `key_table` with the default
/// key ids, as `tests/bench/bench.py` writes it; the named ones stay in `keys`.
fn compact(json: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let Some(obj) = v.as_object_mut() else { return String::new() };
    let list = obj.remove("keys").and_then(|k| k.as_array().cloned()).unwrap_or_default();
    let (named, synthetic): (Vec<_>, Vec<_>) = list
        .into_iter()
        .partition(|k| k.get("id").and_then(serde_json::Value::as_str).is_some_and(|id| id.starts_with("key-bench")));
    let mut table = String::with_capacity(synthetic.len() * 64);
    for k in &synthetic {
        let s = |f: &str| k.get(f).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let hash = keys::from_hex(&s("sha256")).unwrap_or_default();
        if !table.is_empty() {
            table.push('\n');
        }
        table.push_str(&format!("{} {}", to_base64url(&hash), s("account")));
    }
    obj.insert("keys".into(), named.into());
    obj.insert("key_table".into(), table.into());
    v.to_string()
}

fn main() {
    let counts: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let counts = if counts.is_empty() { vec![1000, 100_000, 1_000_000] } else { counts };
    let mut rows = Vec::new();
    for n in counts {
        let json = bench_config_json(n);
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let t0 = Instant::now();
        let cfg = match Config::parse(json.as_bytes()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{n} keys: {e}");
                std::process::exit(1);
            }
        };
        let parse = t0.elapsed();
        let heap = LIVE.load(Relaxed) - before;
        let peak = PEAK.load(Relaxed) - before;
        // The same configuration read in pieces, as the filter reads it from the host.
        let before_pieces = LIVE.load(Relaxed);
        PEAK.store(before_pieces, Relaxed);
        let t0 = Instant::now();
        let text = json.as_bytes();
        let from_pieces = Config::parse_pieces(
            &mut |offset, max| {
                let end = offset.saturating_add(max).min(text.len());
                Ok(text.get(offset.min(end)..end).unwrap_or_default().to_vec())
            },
            text.len(),
        );
        let parse_pieces = t0.elapsed();
        let pieces_peak = PEAK.load(Relaxed) - before_pieces;
        match from_pieces {
            Ok(c) if c.keys == cfg.keys && c.accounts == cfg.accounts => drop(c),
            Ok(_) => {
                eprintln!("{n} keys: parse_pieces disagrees with parse");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("{n} keys: parse_pieces: {e}");
                std::process::exit(1);
            }
        }
        // Lookups: presented keys hashed up front (hit: configured keys; miss: unknown ones).
        let probes = 100_000.min(n.max(1000));
        let hits: Vec<keys::Hash> =
            (0..probes).map(|i| keys::sha256(format!("sk-synthetic-{}", (i * 7919) % n.max(1)).as_bytes())).collect();
        let misses: Vec<keys::Hash> = (0..probes).map(|i| keys::sha256(format!("sk-unknown-{i}").as_bytes())).collect();
        let time = |hs: &[keys::Hash]| {
            let t = Instant::now();
            let mut found = 0usize;
            for h in hs {
                found += usize::from(black_box(cfg.key_table.lookup(black_box(h))).is_some());
            }
            (t.elapsed().as_nanos() as f64 / hs.len() as f64, found)
        };
        let (hit_ns, found_hits) = time(&hits);
        let (miss_ns, found_misses) = time(&misses);
        let presented: Vec<String> = (0..probes).map(|i| format!("sk-synthetic-{}", (i * 7919) % n.max(1))).collect();
        let t = Instant::now();
        let mut found = 0usize;
        for k in &presented {
            found += usize::from(cfg.key_table.lookup(&keys::sha256(black_box(k.as_bytes()))).is_some());
        }
        let hash_lookup_ns = t.elapsed().as_nanos() as f64 / presented.len() as f64;
        if n > 0 && (found_hits != probes || found_misses != 0 || found != probes) {
            eprintln!("{n} keys: lookups wrong ({found_hits} / {found_misses} / {found})");
            std::process::exit(1);
        }
        // The same keys as a compact `key_table` (one line per key), read in pieces.
        let table = compact(&json);
        let before_table = LIVE.load(Relaxed);
        PEAK.store(before_table, Relaxed);
        let t0 = Instant::now();
        let text = table.as_bytes();
        let from_table = Config::parse_pieces(
            &mut |offset, max| {
                let end = offset.saturating_add(max).min(text.len());
                Ok(text.get(offset.min(end)..end).unwrap_or_default().to_vec())
            },
            text.len(),
        );
        let table_pieces = t0.elapsed();
        let table_peak = PEAK.load(Relaxed) - before_table;
        let table_heap = LIVE.load(Relaxed) - before_table;
        match from_table {
            Ok(c) if c.keys.len() == cfg.keys.len() && c.accounts == cfg.accounts => drop(c),
            Ok(_) => {
                eprintln!("{n} keys: the key_table disagrees with the keys list");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("{n} keys: key_table: {e}");
                std::process::exit(1);
            }
        }
        rows.push(serde_json::json!({
            "table_bytes": table.len(), "table_parse_pieces_ms": table_pieces.as_secs_f64() * 1000.0,
            "table_heap_mb": mb(table_heap), "table_pieces_peak_heap_mb": mb(table_peak),
            "keys": n, "config_bytes": json.len(), "parse_ms": parse.as_secs_f64() * 1000.0,
            "heap_mb": mb(heap), "peak_heap_mb": mb(peak),
            "parse_pieces_ms": parse_pieces.as_secs_f64() * 1000.0, "pieces_peak_heap_mb": mb(pieces_peak),
            "lookup_hit_ns": hit_ns, "lookup_miss_ns": miss_ns, "hash_and_lookup_ns": hash_lookup_ns,
        }));
        drop(cfg);
    }
    println!("{}", serde_json::json!({ "keys": rows }));
}
