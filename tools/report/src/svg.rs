//! A stacked bar chart of spend per model over time, as hand-written SVG: one bar per UTC day
//! (or hour), one colour per model (the eight that spent most; the rest together as "other
//! models"), a y axis in credits with grid lines, date labels, and a legend with each model's
//! total and share. Each bar segment has a tooltip (`<title>`) with its exact figure.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::{civil_from_days, credits_text, days_from_civil};

/// Tableau 10: distinct, and still told apart by most colour-blind readers.
const PALETTE: [&str; 8] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"];
const OTHER_COLOUR: &str = "#bab0ac";
const OTHER: &str = "other models";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Day,
    Hour,
}

/// Escapes text for SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Hours since 1970 of `YYYY-MM-DDTHH` (None when malformed).
fn hour_number(h: &str) -> Option<i64> {
    let y = h.get(0..4)?.parse().ok()?;
    let m = h.get(5..7)?.parse().ok()?;
    let d = h.get(8..10)?.parse().ok()?;
    let hh: i64 = h.get(11..13)?.parse().ok()?;
    Some(days_from_civil(y, m, d) * 24 + hh)
}

fn bucket_label(n: i64, b: Bucket) -> (String, String) {
    match b {
        Bucket::Day => {
            let (y, m, d) = civil_from_days(n);
            (format!("{y:04}-{m:02}-{d:02}"), format!("{m:02}-{d:02}"))
        }
        Bucket::Hour => {
            let (y, m, d) = civil_from_days(n.div_euclid(24));
            let h = n.rem_euclid(24);
            (
                format!("{y:04}-{m:02}-{d:02} {h:02}:00 UTC"),
                if h == 0 { format!("{m:02}-{d:02}") } else { format!("{h:02}h") },
            )
        }
    }
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `ticks` intervals up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * p
}

fn fmt_credits(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    if decimals == 0 && v >= 1000.0 {
        crate::thousands(v.round() as u64)
    } else {
        format!("{v:.decimals$}")
    }
}

/// Credits for people: `2,538,379`, `179`, `85.68`, `0.0123`.
fn human(micros: u64) -> String {
    let v = micros as f64 / 1e6;
    if v >= 100.0 {
        crate::thousands(v.round() as u64)
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        let s = format!("{v:.4}");
        if micros > 0 && s == "0.0000" {
            "< 0.0001".into()
        } else {
            s
        }
    }
}

/// The chart. `spend` is microcredits per UTC hour (`YYYY-MM-DDTHH`) and model; `bucket` None
/// picks hours when the records span at most two days, days otherwise.
pub fn chart(spend: &HashMap<String, HashMap<String, u64>>, bucket: Option<Bucket>, title: &str) -> String {
    // Into buckets.
    let hours: Vec<(i64, &HashMap<String, u64>)> =
        spend.iter().filter_map(|(h, m)| hour_number(h).map(|n| (n, m))).collect();
    let lo = hours.iter().map(|(n, _)| *n).min();
    let hi = hours.iter().map(|(n, _)| *n).max();
    let bucket = match (bucket, lo, hi) {
        (Some(b), _, _) => b,
        (None, Some(lo), Some(hi)) if hi - lo < 48 => Bucket::Hour,
        _ => Bucket::Day,
    };
    let to_bucket = |n: i64| if bucket == Bucket::Day { n.div_euclid(24) } else { n };
    let mut per_model_total: HashMap<&str, u64> = HashMap::new();
    for (_, m) in &hours {
        for (model, v) in m.iter() {
            let e = per_model_total.entry(model.as_str()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }
    let mut models: Vec<(&str, u64)> = per_model_total.into_iter().collect();
    models.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let grand: u64 = models.iter().map(|m| m.1).sum();
    // The top eight by spend get their own colour, the rest share one.
    let mut series: Vec<(String, &str, u64)> =
        models.iter().take(PALETTE.len()).zip(PALETTE).map(|((m, v), c)| (m.to_string(), c, *v)).collect();
    let rest: u64 = models.iter().skip(PALETTE.len()).map(|m| m.1).sum();
    let has_other = models.len() > PALETTE.len();
    if has_other {
        series.push((OTHER.to_string(), OTHER_COLOUR, rest));
    }
    let index: HashMap<&str, usize> = models.iter().enumerate().map(|(i, (m, _))| (*m, i.min(PALETTE.len()))).collect();

    let (b_lo, b_hi) = match (lo, hi) {
        (Some(lo), Some(hi)) => (to_bucket(lo), to_bucket(hi)),
        _ => (0, -1),
    };
    let nb = (b_hi - b_lo + 1).max(0) as usize;
    // stacks[bucket][series] in microcredits
    let mut stacks = vec![vec![0u64; series.len()]; nb];
    for (n, m) in &hours {
        let b = (to_bucket(*n) - b_lo) as usize;
        if let Some(stack) = stacks.get_mut(b) {
            for (model, v) in m.iter() {
                if let Some(cell) = index.get(model.as_str()).and_then(|i| stack.get_mut(*i)) {
                    *cell = cell.saturating_add(*v);
                }
            }
        }
    }

    // Geometry.
    let (left, right, top, bottom) = (84.0, 250.0, 64.0, 64.0);
    let plot_w = (nb as f64 * 26.0).clamp(560.0, 1400.0);
    let plot_h = 340.0;
    let width = left + plot_w + right;
    let height = top + plot_h + bottom;
    let max_stack = stacks.iter().map(|s| s.iter().sum::<u64>()).max().unwrap_or(0) as f64 / 1e6;
    let step = nice_step(max_stack, 5.0);
    let y_max = if max_stack > 0.0 { (max_stack / step).ceil() * step } else { step * 5.0 };
    let y = |v: f64| top + plot_h - v / y_max * plot_h;

    let mut s = String::with_capacity(16 * 1024);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let unit = if bucket == Bucket::Day { "day" } else { "hour" };
    let _ =
        writeln!(s, r##"<text x="{left}" y="26" font-size="17" font-weight="bold" fill="#222">{}</text>"##, esc(title));
    let range = if nb > 0 {
        let (a, _) = bucket_label(b_lo, bucket);
        let (b, _) = bucket_label(b_hi, bucket);
        format!("{a} to {b}")
    } else {
        "no spend".into()
    };
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="46" fill="#555">Credits per {unit} (UTC), stacked by model · {} · total {} credits</text>"##,
        esc(&range),
        human(grand)
    );

    // Grid and y axis.
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{}" stroke-width="1"/>"##,
            left + plot_w,
            if v == 0.0 { "#333" } else { "#e3e3e3" }
        );
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">{}</text>"##,
            left - 8.0,
            yy + 4.0,
            fmt_credits(v, step)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r##"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" fill="#444">credits</text>"##,
        top + plot_h / 2.0
    );
    let _ = writeln!(s, r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#333"/>"##, top + plot_h);

    if nb == 0 {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="15" fill="#777">No spend in the selected records</text>"##,
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }

    // Bars.
    let slot = plot_w / nb.max(1) as f64;
    let bar_w = (slot * 0.72).max(1.0);
    let label_every = ((nb as f64 * 56.0 / plot_w).ceil() as usize).max(1);
    for (i, stack) in stacks.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let (full, short) = bucket_label(b_lo + i as i64, bucket);
        let mut acc = 0u64;
        let total: u64 = stack.iter().sum();
        let _ = writeln!(s, r#"<g><title>{}: {} credits</title>"#, esc(&full), credits_text(total));
        for (j, v) in stack.iter().enumerate() {
            if *v == 0 {
                continue;
            }
            let (name, colour, _) =
                series.get(j).map(|(n, c, t)| (n.as_str(), *c, *t)).unwrap_or((OTHER, OTHER_COLOUR, 0));
            let y0 = y(acc as f64 / 1e6);
            acc = acc.saturating_add(*v);
            let y1 = y(acc as f64 / 1e6);
            let _ = writeln!(
                s,
                r##"<rect x="{x:.1}" y="{y1:.1}" width="{bar_w:.1}" height="{:.1}" fill="{colour}"><title>{} · {}: {} credits</title></rect>"##,
                (y0 - y1).max(0.5),
                esc(&full),
                esc(name),
                credits_text(*v)
            );
        }
        let _ = writeln!(s, "</g>");
        if i % label_every == 0 {
            let lx = left + slot * i as f64 + slot / 2.0;
            let _ = writeln!(
                s,
                r##"<line x1="{lx:.1}" y1="{:.1}" x2="{lx:.1}" y2="{:.1}" stroke="#333"/>"##,
                top + plot_h,
                top + plot_h + 4.0
            );
            let _ = writeln!(
                s,
                r##"<text x="{lx:.1}" y="{:.1}" text-anchor="middle" fill="#444">{}</text>"##,
                top + plot_h + 18.0,
                esc(&short)
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">UTC {unit}</text>"##,
        left + plot_w / 2.0,
        top + plot_h + 44.0
    );

    // Legend: model, total, share.
    let lx = left + plot_w + 24.0;
    let _ = writeln!(
        s,
        r##"<text x="{lx:.1}" y="{:.1}" font-weight="bold" fill="#222">Model · credits · share</text>"##,
        top + 4.0
    );
    for (i, (name, colour, total)) in series.iter().enumerate() {
        let ly = top + 22.0 + i as f64 * 22.0;
        let share = if grand > 0 { *total as f64 * 100.0 / grand as f64 } else { 0.0 };
        let shown: String =
            if name.chars().count() > 22 { name.chars().take(21).chain(['…']).collect() } else { name.clone() };
        let _ = writeln!(s, r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/>"#, ly - 10.0);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{ly:.1}" fill="#222"><title>{}</title>{} · {} · {share:.1}%</text>"##,
            lx + 18.0,
            esc(name),
            esc(&shown),
            human(*total)
        );
    }
    s.push_str("</svg>\n");
    s
}
