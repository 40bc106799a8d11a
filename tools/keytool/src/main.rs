//! tollgate-keytool: mint API keys, hash existing ones, and edit the filter's configuration file
//! while Envoy serves it (ECDS). Only a key's SHA-256 ever goes into configuration.
//!
//!   tollgate-keytool new [--prefix sk-] [--id KEY_ID] [--account ACCOUNT_ID]
//!   tollgate-keytool hash KEY        (or the key on standard input, to keep it out of shell history)
//!   tollgate-keytool add-key --file F --account ACCOUNT_ID [--id KEY_ID] [--prefix sk-] [--spend-cap CREDITS]
//!       [--spend-cap-period total|month|day] [--rpm N] [--environment production|development]
//!   tollgate-keytool revoke-key --file F (--key KEY | --key - | --hash SHA256 | --id KEY_ID)
//!   tollgate-keytool set-account --file F --id ACCOUNT_ID [--status active|inactive] [--rpm N] [--spend-cap CREDITS|none]
//!       [--tpm N] [--spend-cap-period total|month|day]
//!   tollgate-keytool check --file F
//!   tollgate-keytool convert --file F --to table|list
//!
//! `--file` is the ECDS resource file Envoy's `config_discovery` reads (or a bare Tollgate JSON
//! configuration); `--resource NAME` picks a resource when it holds several. Each edit is checked
//! with the filter's own parser, then written atomically (see `doc`).

mod doc;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use tollgate_core::keys;

use crate::doc::{Doc, KeyFlags, Revoke};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const USAGE: &str = "usage:
  tollgate-keytool new [--prefix sk-] [--id KEY_ID] [--account ACCOUNT_ID]
  tollgate-keytool hash [KEY]   (reads the key from standard input when not given)
  tollgate-keytool add-key --file F --account ACCOUNT_ID [--id KEY_ID] [--prefix sk-] [--spend-cap CREDITS]
      [--spend-cap-period total|month|day] [--rpm N] [--environment production|development]
  tollgate-keytool revoke-key --file F (--key KEY | --key - | --hash SHA256 | --id KEY_ID)
  tollgate-keytool set-account --file F --id ACCOUNT_ID [--status active|inactive] [--rpm N] [--spend-cap CREDITS|none]
      [--tpm N] [--spend-cap-period total|month|day]
  tollgate-keytool check --file F
  tollgate-keytool convert --file F --to table|list   (the compact key_table, or the keys list)
F: the ECDS file Envoy reads (`make run` prints it) or a bare Tollgate JSON configuration;
--resource NAME picks the resource when the file has several. --key - reads the key from stdin.";

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn random_key(prefix: &str) -> Result<String, getrandom::Error> {
    // 40 characters from 62: about 238 bits of entropy. Rejection sampling keeps it uniform.
    let mut out = String::from(prefix);
    let mut buf = [0u8; 64];
    while out.len() < prefix.len() + 40 {
        getrandom::getrandom(&mut buf)?;
        for b in buf {
            if usize::from(b) < 62 * 4 && out.len() < prefix.len() + 40 {
                if let Some(&c) = ALPHABET.get(usize::from(b) % 62) {
                    out.push(char::from(c));
                }
            }
        }
    }
    Ok(out)
}

fn read_stdin_key() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(s.trim().to_string())
}

struct Args(Vec<String>);

impl Args {
    fn opt(&self, name: &str) -> Option<&str> {
        self.0.iter().position(|a| a == name).and_then(|i| self.0.get(i + 1)).map(String::as_str)
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.opt(name).map(|v| v.parse::<T>().map_err(|_| format!("{name}: not a valid number: {v}"))).transpose()
    }
}

/// `--spend-cap-period`, checked.
fn period_flag(args: &Args) -> Result<Option<String>, String> {
    match args.opt("--spend-cap-period") {
        None => Ok(None),
        Some(p @ ("total" | "month" | "day")) => Ok(Some(p.to_string())),
        Some(p) => Err(format!("--spend-cap-period: 'total', 'month' or 'day', not '{p}'")),
    }
}

/// Loads `--file`, applies `edit` under the file's lock, checks the result and replaces the file.
fn edit_file<T>(
    args: &Args,
    edit: impl FnOnce(&mut Doc) -> Result<T, String>,
) -> Result<(T, tollgate_core::config::Config, String), String> {
    let file = args.opt("--file").ok_or("--file is required")?;
    let path = Path::new(file);
    let _lock = doc::lock(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let mut d = Doc::parse(&text, args.opt("--resource")).map_err(|e| format!("{file}: {e}"))?;
    let out = edit(&mut d)?;
    let (cfg, rendered) = d.render().map_err(|e| format!("{file}: {e}; the file is unchanged"))?;
    let nonce = random_key("").map_err(|e| format!("cannot get randomness: {e}"))?;
    doc::write_atomically(path, &rendered, nonce.get(..12).unwrap_or("tmp"))?;
    Ok((out, cfg, file.to_string()))
}

fn run(cmd: &str, args: &Args) -> Result<(), String> {
    match cmd {
        "add-key" => {
            let account = args.opt("--account").ok_or("--account is required")?.to_string();
            let spend_cap = args.num::<f64>("--spend-cap")?;
            let key =
                random_key(args.opt("--prefix").unwrap_or("sk-")).map_err(|e| format!("cannot get randomness: {e}"))?;
            let flags = KeyFlags {
                rpm: args.num::<u32>("--rpm")?,
                period: period_flag(args)?,
                development: match args.opt("--environment") {
                    None | Some("production") => false,
                    Some("development") => true,
                    Some(e) => return Err(format!("--environment: 'production' or 'development', not '{e}'")),
                },
            };
            let (id, cfg, file) = edit_file(args, |d| {
                let id = d.add_key(&key, &account, args.opt("--id"), spend_cap)?;
                if flags != KeyFlags::default() {
                    d.set_new_key_policy(&flags)?;
                }
                Ok(id)
            })?;
            // The key alone on standard output (for `KEY=$(...)`), everything else on stderr.
            println!("{key}");
            eprintln!(
                "added key {id} (account {account}) to {file}: {} keys; the key is shown only this once",
                cfg.keys.len()
            );
            Ok(())
        }
        "revoke-key" => {
            let hash = match (args.opt("--key"), args.opt("--hash"), args.opt("--id")) {
                (Some("-"), None, None) => Some(keys::to_hex(&keys::sha256(read_stdin_key()?.as_bytes()))),
                (Some(k), None, None) => Some(keys::to_hex(&keys::sha256(k.as_bytes()))),
                (None, Some(h), None) => Some(h.to_string()),
                (None, None, Some(_)) => None,
                _ => return Err("give exactly one of --key, --hash, --id".to_string()),
            };
            let by = match (&hash, args.opt("--id")) {
                (Some(h), _) => Revoke::Hash(h),
                (None, Some(id)) => Revoke::Id(id),
                (None, None) => return Err("give exactly one of --key, --hash, --id".to_string()),
            };
            let (removed, cfg, file) = edit_file(args, |d| {
                let removed = d.revoke(by)?;
                if removed.is_empty() {
                    return Err("no such key in the configuration; the file is unchanged".to_string());
                }
                Ok(removed)
            })?;
            eprintln!("revoked {} from {file}: {} keys left", removed.join(", "), cfg.keys.len());
            Ok(())
        }
        "set-account" => {
            let id = args.opt("--id").ok_or("--id is required")?.to_string();
            let status = args.opt("--status");
            if let Some(s) = status {
                if s != "active" && s != "inactive" {
                    return Err(format!("--status: 'active' or 'inactive', not '{s}'"));
                }
            }
            let rpm = args.num::<u32>("--rpm")?;
            let cap = match args.opt("--spend-cap") {
                None => None,
                Some("none") => Some(None),
                Some(_) => Some(args.num::<f64>("--spend-cap")?),
            };
            let tpm = args.num::<u32>("--tpm")?;
            let period = period_flag(args)?;
            if status.is_none() && rpm.is_none() && cap.is_none() && tpm.is_none() && period.is_none() {
                return Err(
                    "nothing to set: give --status, --rpm, --spend-cap, --tpm or --spend-cap-period".to_string()
                );
            }
            let ((record, created), _, file) = edit_file(args, |d| {
                let (mut record, created) = d.set_account(&id, status, rpm, cap)?;
                if tpm.is_some() || period.is_some() {
                    record = d.set_account_policy(&id, tpm, period.as_deref())?;
                }
                Ok((record, created))
            })?;
            eprintln!("{} account in {file}: {record}", if created { "added" } else { "updated" });
            Ok(())
        }
        "convert" => {
            let to_table = match args.opt("--to") {
                Some("table") => true,
                Some("list") => false,
                _ => return Err("--to table or --to list is required".to_string()),
            };
            let ((moved, stayed), cfg, file) = edit_file(args, |d| d.convert(to_table))?;
            let (into, other) = if to_table { ("key_table", "keys") } else { ("keys", "key_table") };
            eprintln!(
                "{file}: moved {moved} keys into {into}{}; {} keys in all",
                if stayed > 0 {
                    format!(" ({stayed} stay in {other}: a line cannot hold them)")
                } else {
                    String::new()
                },
                cfg.keys.len()
            );
            Ok(())
        }
        "check" => {
            let file = args.opt("--file").ok_or("--file is required")?;
            let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
            let mut d = Doc::parse(&text, args.opt("--resource")).map_err(|e| format!("{file}: {e}"))?;
            let (cfg, _) = d.render().map_err(|e| format!("{file}: {e}"))?;
            eprintln!(
                "{file}: valid: {} keys, {} accounts, {} models, {} clusters",
                cfg.keys.len(),
                cfg.accounts.len(),
                cfg.models.len(),
                cfg.clusters.len()
            );
            Ok(())
        }
        _ => Err(String::new()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else { return usage() };
    match cmd.as_str() {
        "new" => {
            let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
            let prefix = opt("--prefix").unwrap_or_else(|| "sk-".to_string());
            let key = match random_key(&prefix) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("cannot get randomness: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let hash = keys::to_hex(&keys::sha256(key.as_bytes()));
            let id = opt("--id").unwrap_or_else(|| format!("key-{}", hash.get(..12).unwrap_or(&hash)));
            let account = opt("--account").unwrap_or_else(|| "ACCOUNT_ID".to_string());
            let record = serde_json::json!({"id": id, "sha256": hash, "account": account});
            println!("key (shown once, store it now): {key}");
            println!("configuration record (add to \"keys\"):");
            println!("{record}");
            ExitCode::SUCCESS
        }
        "hash" => {
            let key = match args.get(1) {
                Some(k) => k.clone(),
                None => match read_stdin_key() {
                    Ok(k) => k,
                    Err(_) => return usage(),
                },
            };
            if key.is_empty() {
                return usage();
            }
            println!("{}", keys::to_hex(&keys::sha256(key.as_bytes())));
            ExitCode::SUCCESS
        }
        other => match run(other, &Args(args.clone())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.is_empty() => usage(),
            Err(e) => {
                eprintln!("tollgate-keytool {other}: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
