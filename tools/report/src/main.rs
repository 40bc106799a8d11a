//! `tollgate-report`: usage reports from Tollgate billing logs. See README "Usage reports".

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use tollgate_report::svg::{self, Bucket};
use tollgate_report::{days_from_civil, generate, parse_date, parse_dims, Dim, Report};

const USAGE: &str = "\
usage: tollgate-report [options] LOG...      (LOG: a billing log, JSON lines; `-` for stdin; *.gz read as gzip)
  --by DIMS            group by account,key,model,day,hour (comma list or repeated; default account,key,model,day)
  --format FMT         table (default), csv or json
  --since YYYY-MM-DD   only records from this UTC day on
  --until YYYY-MM-DD   only records up to and including this UTC day
  --svg PATH           also draw spend per model over time into PATH (SVG)
  --chart-by day|hour  the chart's bars (default: hours when the records span at most two days)
  -o PATH              write the report to PATH instead of stdout
Lines that are not billing records are skipped, counted on stderr and in the JSON output.
Exit status: 0 done (also with skipped lines), 1 a log could not be read, 2 bad arguments.

       tollgate-report generate --records N [--start YYYY-MM-DD] [--days D] [--seed S]
  writes N synthetic billing records (for benchmarks) to stdout";

enum Format {
    Table,
    Csv,
    Json,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("generate") {
        run_generate(args.get(1..).unwrap_or_default())
    } else {
        run(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("tollgate-report: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Io(msg)) => {
            eprintln!("tollgate-report: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Io(String),
}

fn value<'a>(args: &'a [String], i: &mut usize, name: &str) -> Result<&'a str, Failure> {
    *i += 1;
    args.get(*i).map(String::as_str).ok_or_else(|| Failure::Usage(format!("{name} needs a value")))
}

fn run(args: &[String]) -> Result<(), Failure> {
    let mut dims: Vec<Dim> = Vec::new();
    let mut format = Format::Table;
    let (mut since, mut until, mut svg_path, mut out_path, mut chart_by) = (None, None, None, None, None);
    let mut files: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args.get(i).map(String::as_str).unwrap_or_default();
        match a {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--by" => parse_dims(value(args, &mut i, a)?, &mut dims).map_err(Failure::Usage)?,
            "--format" => {
                format = match value(args, &mut i, a)? {
                    "table" => Format::Table,
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    other => return Err(Failure::Usage(format!("--format: '{other}' is not table, csv or json"))),
                }
            }
            "--since" => {
                since = Some(parse_date(value(args, &mut i, a)?).map_err(|e| Failure::Usage(format!("--since: {e}")))?)
            }
            "--until" => {
                until = Some(parse_date(value(args, &mut i, a)?).map_err(|e| Failure::Usage(format!("--until: {e}")))?)
            }
            "--svg" => svg_path = Some(value(args, &mut i, a)?.to_string()),
            "-o" | "--output" => out_path = Some(value(args, &mut i, a)?.to_string()),
            "--chart-by" => {
                chart_by = Some(match value(args, &mut i, a)? {
                    "day" => Bucket::Day,
                    "hour" => Bucket::Hour,
                    other => return Err(Failure::Usage(format!("--chart-by: '{other}' is not day or hour"))),
                })
            }
            "-" => files.push(a.to_string()),
            _ if a.starts_with('-') => return Err(Failure::Usage(format!("unknown option {a}"))),
            _ => files.push(a.to_string()),
        }
        i += 1;
    }
    if files.is_empty() {
        return Err(Failure::Usage("no billing log given".into()));
    }
    if let (Some(s), Some(u)) = (&since, &until) {
        if s > u {
            return Err(Failure::Usage(format!("--since {s} is after --until {u}")));
        }
    }
    if dims.is_empty() {
        dims = vec![Dim::Account, Dim::Key, Dim::Model, Dim::Day];
    }
    let mut report = Report::new(dims, since, until);
    for f in &files {
        let reader: Box<dyn BufRead> = if f == "-" {
            Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock()))
        } else {
            let file = File::open(f).map_err(|e| Failure::Io(format!("{f}: {e}")))?;
            if f.ends_with(".gz") {
                Box::new(BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(file)))
            } else {
                Box::new(BufReader::with_capacity(1 << 20, file))
            }
        };
        report.feed(f, reader).map_err(|e| Failure::Io(format!("{f}: {e}")))?;
    }
    if let Some(msg) = report.skipped_summary() {
        eprintln!("tollgate-report: {msg}");
    }
    let write = |w: &mut dyn Write| -> io::Result<()> {
        let mut w = BufWriter::new(w);
        match format {
            Format::Table => report.write_table(&mut w)?,
            Format::Csv => report.write_csv(&mut w)?,
            Format::Json => report.write_json(&mut w)?,
        }
        w.flush()
    };
    match &out_path {
        Some(p) => {
            let mut f = File::create(p).map_err(|e| Failure::Io(format!("{p}: {e}")))?;
            write(&mut f).map_err(|e| Failure::Io(format!("{p}: {e}")))?;
        }
        None => write(&mut io::stdout().lock()).map_err(|e| Failure::Io(format!("stdout: {e}")))?,
    }
    if let Some(p) = &svg_path {
        let doc = svg::chart(report.spend(), chart_by, "Tollgate spend per model");
        std::fs::write(p, doc).map_err(|e| Failure::Io(format!("{p}: {e}")))?;
    }
    Ok(())
}

fn run_generate(args: &[String]) -> Result<(), Failure> {
    let (mut n, mut start, mut days, mut seed) = (None, "2026-11-01".to_string(), 30u32, 19u64);
    let mut i = 0;
    while i < args.len() {
        let a = args.get(i).map(String::as_str).unwrap_or_default();
        let num = |v: &str| v.parse::<u64>().map_err(|_| Failure::Usage(format!("{a}: '{v}' is not a number")));
        match a {
            "--records" => n = Some(num(value(args, &mut i, a)?)?),
            "--start" => start = parse_date(value(args, &mut i, a)?).map_err(Failure::Usage)?,
            "--days" => days = num(value(args, &mut i, a)?)?.clamp(1, 3660) as u32,
            "--seed" => seed = num(value(args, &mut i, a)?)?,
            _ => return Err(Failure::Usage(format!("generate: unknown argument {a}"))),
        }
        i += 1;
    }
    let n = n.ok_or_else(|| Failure::Usage("generate needs --records N".into()))?;
    let num = |r: std::ops::Range<usize>| start.get(r).and_then(|x| x.parse::<u32>().ok()).unwrap_or(1);
    let day = days_from_civil(num(0..4) as i64, num(5..7), num(8..10));
    let mut w = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    generate(&mut w, n, day, days, seed).and_then(|_| w.flush()).map_err(|e| Failure::Io(format!("stdout: {e}")))
}
