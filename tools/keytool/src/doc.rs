//! The configuration file the key tool edits: an ECDS resource file (what Envoy's
//! `config_discovery` reads: `{"resources":[{"@type":"...TypedExtensionConfig","name":...,
//! "typed_config":{"@type":"...wasm.v3.Wasm","config":{...,"configuration":{"value":"<JSON>"}}}}]}`)
//! or a bare Tollgate configuration (the JSON itself). Every edit is validated with the filter's
//! own parser before anything is written, and written atomically (a temporary file in the same
//! directory, flushed, then renamed into place: Envoy reloads a file source on a move).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tollgate_core::config::key_table::{default_id, from_base64url, to_base64url};
use tollgate_core::config::Config;
use tollgate_core::keys::{self, Hash};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// A loaded file: its outer document and the Tollgate configuration inside it.
#[derive(Debug)]
pub struct Doc {
    outer: Value,
    /// Index of the resource holding the configuration (`None`: the file is the configuration).
    resource: Option<usize>,
    pub cfg: Value,
}

fn wasm_value(res: &mut Value) -> Option<&mut Value> {
    let typed = res.get_mut("typed_config")?;
    if typed.get("@type").and_then(Value::as_str) != Some(WASM_TYPE) {
        return None;
    }
    typed.get_mut("config")?.get_mut("configuration")?.get_mut("value")
}

impl Doc {
    /// Parses a file's text. `resource`: the ECDS resource's name when the file has several.
    pub fn parse(text: &str, resource: Option<&str>) -> Result<Doc, String> {
        let mut outer: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Some(resources) = outer.get_mut("resources").and_then(Value::as_array_mut) else {
            let cfg = outer.clone();
            return Ok(Doc { outer, resource: None, cfg });
        };
        let mut found = Vec::new();
        for (i, res) in resources.iter_mut().enumerate() {
            let name = res.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            if resource.is_some_and(|r| r != name) {
                continue;
            }
            if let Some(Value::String(text)) = wasm_value(res) {
                found.push((i, name, text.clone()));
            }
        }
        match found.as_slice() {
            [(i, name, text)] => {
                let cfg = serde_json::from_str(text)
                    .map_err(|e| format!("resource '{name}': the plugin configuration is not JSON: {e}"))?;
                Ok(Doc { outer, resource: Some(*i), cfg })
            }
            [] => Err(match resource {
                Some(r) => format!("no wasm filter resource named '{r}' with a string configuration"),
                None => "no wasm filter resource with a string configuration (`configuration.value`)".to_string(),
            }),
            several => Err(format!(
                "several wasm filter resources ({}): say which with --resource NAME",
                several.iter().map(|(_, n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// Validates the configuration as the filter will (`Config::parse`) and renders the file.
    pub fn render(&mut self) -> Result<(Config, String), String> {
        let inner = serde_json::to_string(&self.cfg).map_err(|e| e.to_string())?;
        let parsed = Config::parse(inner.as_bytes()).map_err(|e| format!("the result would be refused: {e}"))?;
        match self.resource {
            None => Ok((parsed, inner + "\n")),
            Some(i) => {
                let slot = self
                    .outer
                    .get_mut("resources")
                    .and_then(Value::as_array_mut)
                    .and_then(|r| r.get_mut(i))
                    .and_then(wasm_value)
                    .ok_or("the resource vanished")?;
                *slot = Value::String(inner);
                let text = serde_json::to_string_pretty(&self.outer).map_err(|e| e.to_string())?;
                Ok((parsed, text + "\n"))
            }
        }
    }

    fn list_mut(&mut self, name: &str) -> Result<&mut Vec<Value>, String> {
        let obj = self.cfg.as_object_mut().ok_or("the configuration is not a JSON object")?;
        obj.entry(name)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or(format!("'{name}' is not a list"))
    }

    fn has_account(&self, id: &str) -> bool {
        self.cfg
            .get("accounts")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.get("id").and_then(Value::as_str) == Some(id)))
    }

    /// The compact key list's text, when the configuration has one.
    fn table_mut(&mut self) -> Option<&mut String> {
        match self.cfg.get_mut("key_table") {
            Some(Value::String(t)) => Some(t),
            _ => None,
        }
    }

    /// Adds a key record (the key's SHA-256 only) for `account`; returns its id. The record is a
    /// line of `key_table` when the configuration has one, an entry of `keys` otherwise.
    pub fn add_key(
        &mut self,
        key: &str,
        account: &str,
        id: Option<&str>,
        spend_cap: Option<f64>,
    ) -> Result<String, String> {
        if !self.has_account(account) {
            return Err(format!(
                "no account '{account}' in the configuration (add it with set-account --id {account})"
            ));
        }
        let hash = keys::sha256(key.as_bytes());
        let id = id.map(str::to_string).unwrap_or_else(|| default_id(&hash));
        if let Some(table) = self.table_mut() {
            let line = table_line(&hash, account, &id, spend_cap, None, false)?;
            if !table.is_empty() && !table.ends_with('\n') {
                table.push('\n');
            }
            table.push_str(&line);
            return Ok(id);
        }
        let mut record = json!({"id": id, "account": account, "sha256": keys::to_hex(&hash)});
        if let (Some(cap), Some(obj)) = (spend_cap, record.as_object_mut()) {
            obj.insert("spend_cap".into(), json!(cap));
        }
        self.list_mut("keys")?.push(record);
        Ok(id)
    }

    /// Gives the key record added last (by `add_key`) its policy fields: its own `rpm`, its spend
    /// cap's period, its environment.
    pub fn set_new_key_policy(&mut self, p: &KeyFlags) -> Result<(), String> {
        if let Some(table) = self.table_mut() {
            let trimmed = table.trim_end_matches('\n').len();
            table.truncate(trimmed);
            table.push_str(&p.table_fields());
            return Ok(());
        }
        let keys = self.list_mut("keys")?;
        let obj = keys.last_mut().and_then(Value::as_object_mut).ok_or("keys: no key to set")?;
        p.insert_into(obj);
        Ok(())
    }

    /// Sets an account's tokens per minute and its spend cap's period (the account exists).
    pub fn set_account_policy(&mut self, id: &str, tpm: Option<u32>, period: Option<&str>) -> Result<Value, String> {
        let accounts = self.list_mut("accounts")?;
        let obj = accounts
            .iter_mut()
            .find(|a| a.get("id").and_then(Value::as_str) == Some(id))
            .and_then(Value::as_object_mut)
            .ok_or(format!("accounts: no account '{id}'"))?;
        if let Some(t) = tpm {
            obj.insert("tpm".into(), json!(t));
        }
        if let Some(p) = period {
            obj.insert("spend_cap_period".into(), json!(p));
        }
        Ok(Value::Object(obj.clone()))
    }

    /// Removes the key records (of `keys` and lines of `key_table`) whose SHA-256 (hex, any
    /// case) or id is `which`; returns their ids.
    pub fn revoke(&mut self, by: Revoke<'_>) -> Result<Vec<String>, String> {
        let mut removed = Vec::new();
        if let Some(table) = self.table_mut() {
            let want = match by {
                Revoke::Hash(h) => Some(keys::from_hex(h).ok_or("--hash: must be 64 hexadecimal characters")?),
                Revoke::Id(_) => None,
            };
            let mut kept = String::with_capacity(table.len());
            for line in table.split('\n').filter(|l| !l.is_empty()) {
                let hit = match (by, want) {
                    (Revoke::Hash(_), Some(w)) => line_hash(line) == Some(w),
                    (Revoke::Id(want_id), _) => line_key(line).1.as_deref() == Some(want_id),
                    _ => false,
                };
                if hit {
                    removed.push(line_key(line).1.unwrap_or_else(|| "?".to_string()));
                } else {
                    if !kept.is_empty() {
                        kept.push('\n');
                    }
                    kept.push_str(line);
                }
            }
            if !removed.is_empty() {
                *table = kept;
            }
        }
        if self.cfg.get("keys").is_none() {
            return Ok(removed);
        }
        let keys = self.list_mut("keys")?;
        let matches = |k: &Value| match by {
            Revoke::Hash(h) => k.get("sha256").and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case(h)),
            Revoke::Id(id) => k.get("id").and_then(Value::as_str) == Some(id),
        };
        removed.extend(
            keys.iter().filter(|k| matches(k)).map(|k| k.get("id").and_then(Value::as_str).unwrap_or("?").to_string()),
        );
        keys.retain(|k| !matches(k));
        Ok(removed)
    }

    /// Moves every entry of `keys` that a line can hold into `key_table` (`to_table`), or every
    /// line of `key_table` into `keys`; returns how many keys moved and how many stayed.
    pub fn convert(&mut self, to_table: bool) -> Result<(usize, usize), String> {
        let obj = self.cfg.as_object_mut().ok_or("the configuration is not a JSON object")?;
        if to_table {
            let list = match obj.remove("keys") {
                Some(Value::Array(l)) => l,
                None => Vec::new(),
                Some(_) => return Err("'keys' is not a list".to_string()),
            };
            let mut table = match obj.remove("key_table") {
                Some(Value::String(t)) => t,
                None => String::new(),
                Some(_) => return Err("'key_table' is not a string".to_string()),
            };
            let mut stayed = Vec::new();
            let mut moved = 0;
            for k in list {
                match entry_line(&k) {
                    Some(line) => {
                        if !table.is_empty() && !table.ends_with('\n') {
                            table.push('\n');
                        }
                        table.push_str(&line);
                        moved += 1;
                    }
                    None => stayed.push(k),
                }
            }
            let left = stayed.len();
            if !stayed.is_empty() {
                obj.insert("keys".into(), Value::Array(stayed));
            }
            obj.insert("key_table".into(), Value::String(table));
            Ok((moved, left))
        } else {
            let table = match obj.remove("key_table") {
                Some(Value::String(t)) => t,
                None => String::new(),
                Some(_) => return Err("'key_table' is not a string".to_string()),
            };
            let mut moved = Vec::new();
            for (n, line) in table.split('\n').filter(|l| !l.is_empty()).enumerate() {
                moved.push(line_entry(line).ok_or(format!("key_table line {}: not a valid line", n + 1))?);
            }
            let count = moved.len();
            let list = self.list_mut("keys")?;
            let mut all = moved;
            all.append(list);
            *list = all;
            Ok((count, 0))
        }
    }

    /// Sets an account's fields (creating the account when absent); returns the record and
    /// whether it was created. `spend_cap`: `Some(None)` removes the cap.
    pub fn set_account(
        &mut self,
        id: &str,
        status: Option<&str>,
        rpm: Option<u32>,
        spend_cap: Option<Option<f64>>,
    ) -> Result<(Value, bool), String> {
        let accounts = self.list_mut("accounts")?;
        let pos = accounts.iter().position(|a| a.get("id").and_then(Value::as_str) == Some(id));
        let created = pos.is_none();
        let idx = match pos {
            Some(i) => i,
            None => {
                accounts.push(json!({"id": id, "status": "active"}));
                accounts.len() - 1
            }
        };
        let obj: &mut Map<String, Value> =
            accounts.get_mut(idx).and_then(Value::as_object_mut).ok_or(format!("accounts: '{id}' is not an object"))?;
        if let Some(s) = status {
            obj.insert("status".into(), json!(s));
        }
        if let Some(r) = rpm {
            obj.insert("rpm".into(), json!(r));
        }
        match spend_cap {
            Some(Some(c)) => {
                obj.insert("spend_cap".into(), json!(c));
            }
            Some(None) => {
                obj.remove("spend_cap");
            }
            None => {}
        }
        Ok((Value::Object(obj.clone()), created))
    }
}

/// A key's policy fields as `add-key` takes them (`--rpm`, `--spend-cap-period`,
/// `--environment`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyFlags {
    pub rpm: Option<u32>,
    pub period: Option<String>,
    pub development: bool,
}

impl KeyFlags {
    /// The fields as a `key_table` line ends (` rpm=N period=P dev`, those that are set).
    fn table_fields(&self) -> String {
        let mut out = String::new();
        if let Some(r) = self.rpm {
            out += &format!(" rpm={r}");
        }
        if let Some(p) = &self.period {
            out += &format!(" period={p}");
        }
        if self.development {
            out += " dev";
        }
        out
    }

    /// The fields as a `keys` entry holds them.
    fn insert_into(&self, obj: &mut Map<String, Value>) {
        if let Some(r) = self.rpm {
            obj.insert("rpm".into(), json!(r));
        }
        if let Some(p) = &self.period {
            obj.insert("spend_cap_period".into(), json!(p));
        }
        if self.development {
            obj.insert("environment".into(), json!("development"));
        }
    }

    /// The fields of a `keys` entry, None when a line cannot hold them.
    fn of_entry(obj: &Map<String, Value>) -> Option<KeyFlags> {
        let rpm = match obj.get("rpm") {
            None | Some(Value::Null) => None,
            Some(v) => Some(u32::try_from(v.as_u64()?).ok()?),
        };
        let period = match obj.get("spend_cap_period") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_str()?.to_string()),
        };
        let development = match obj.get("environment").map(Value::as_str) {
            None | Some(Some("production")) => false,
            Some(Some("development")) => true,
            _ => return None,
        };
        Some(KeyFlags { rpm, period, development })
    }
}

/// A `key_table` line: base64url SHA-256, account, and the fields that differ from the defaults.
fn table_line(
    hash: &Hash,
    account: &str,
    id: &str,
    cap: Option<f64>,
    quota: Option<u64>,
    log: bool,
) -> Result<String, String> {
    let plain = |s: &str| !s.is_empty() && !s.chars().any(|c| c == ' ' || c.is_control());
    if !plain(account) || !plain(id) {
        return Err(format!(
            "key '{id}' of account '{account}': a key_table line cannot hold an empty id or account, or one with a space"
        ));
    }
    let mut line = format!("{} {account}", to_base64url(hash));
    if id != default_id(hash) {
        line += &format!(" id={id}");
    }
    if let Some(c) = cap {
        line += &format!(" cap={c}");
    }
    if let Some(q) = quota {
        line += &format!(" quota={q}");
    }
    if log {
        line += " log";
    }
    Ok(line)
}

/// A `key_table` line's hash, when it parses.
fn line_hash(line: &str) -> Option<Hash> {
    let first = line.split(' ').next().unwrap_or_default();
    match first.len() {
        43 => from_base64url(first.as_bytes()),
        _ => keys::from_hex(first),
    }
}

/// A `key_table` line's hash and id (as the filter reads them), when they parse.
fn line_key(line: &str) -> (Option<Hash>, Option<String>) {
    let mut parts = line.split(' ').skip(1);
    let hash = line_hash(line);
    let id = parts.find_map(|p| p.strip_prefix("id=")).map(str::to_string).or_else(|| hash.as_ref().map(default_id));
    (hash, id)
}

/// The `key_table` line of a `keys` entry, None when a line cannot hold it (an unknown field, an
/// id or account a line cannot hold, a sha256 that is not one).
fn entry_line(k: &Value) -> Option<String> {
    let obj = k.as_object()?;
    let known = [
        "id",
        "sha256",
        "account",
        "spend_cap",
        "sandbox_daily_quota",
        "log_content",
        "rpm",
        "spend_cap_period",
        "environment",
    ];
    if obj.keys().any(|name| !known.contains(&name.as_str())) {
        return None;
    }
    let hash = keys::from_hex(obj.get("sha256")?.as_str()?)?;
    let cap = match obj.get("spend_cap") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_f64()?),
    };
    let quota = match obj.get("sandbox_daily_quota") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64()?),
    };
    let log = match obj.get("log_content") {
        None => false,
        Some(v) => v.as_bool()?,
    };
    let flags = KeyFlags::of_entry(obj)?;
    let line = table_line(&hash, obj.get("account")?.as_str()?, obj.get("id")?.as_str()?, cap, quota, log).ok()?;
    Some(line + &flags.table_fields())
}

/// The `keys` entry of a `key_table` line (None when the line does not parse).
fn line_entry(line: &str) -> Option<Value> {
    let (hash, id) = line_key(line);
    let mut parts = line.split(' ').skip(1);
    let mut obj = Map::new();
    obj.insert("id".into(), json!(id?));
    obj.insert("sha256".into(), json!(keys::to_hex(&hash?)));
    obj.insert("account".into(), json!(parts.next()?));
    for p in parts {
        match p.split_once('=') {
            Some(("cap", v)) => obj.insert("spend_cap".into(), json!(v.parse::<f64>().ok()?)),
            Some(("quota", v)) => obj.insert("sandbox_daily_quota".into(), json!(v.parse::<u32>().ok()?)),
            Some(("id", _)) => None,
            Some(("rpm", v)) => obj.insert("rpm".into(), json!(v.parse::<u32>().ok()?)),
            Some(("period", v)) => obj.insert("spend_cap_period".into(), json!(v)),
            None if p == "log" => obj.insert("log_content".into(), json!(true)),
            None if p == "dev" => obj.insert("environment".into(), json!("development")),
            _ => return None,
        };
    }
    Some(Value::Object(obj))
}

/// Which key records `revoke` removes.
#[derive(Clone, Copy)]
pub enum Revoke<'a> {
    Hash(&'a str),
    Id(&'a str),
}

/// Holds an exclusive lock on `.<name>.lock` next to `path` while the file is read, edited and
/// replaced, so two edits at once cannot lose one another.
pub struct Lock {
    _file: File,
}

pub fn lock(path: &Path) -> Result<Lock, String> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or("the file has no name")?;
    let lock_path = dir_of(path).join(format!(".{name}.lock"));
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    f.lock().map_err(|e| format!("{}: {e}", lock_path.display()))?;
    Ok(Lock { _file: f })
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Replaces `path` with `text` atomically: a new file in the same directory (created exclusively,
/// with the old file's permissions, since it may hold upstream credentials), written and flushed
/// to disk, renamed over `path`, and the directory flushed so the rename itself is durable.
pub fn write_atomically(path: &Path, text: &str, nonce: &str) -> Result<(), String> {
    let dir = dir_of(path);
    let name = path.file_name().and_then(|n| n.to_str()).ok_or("the file has no name")?;
    let perms = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.permissions();
    let tmp = dir.join(format!(".{name}.{nonce}.tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.set_permissions(perms)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"{"clusters":[{"name":"c","dialect":"openai"}],
        "accounts":[{"id":"a1","status":"active","rpm":5}],
        "keys":[{"id":"k1","account":"a1","sha256":"201a63e2069a85ec17a6de3cce09f822ea9803305ada9e7617c9c80e9349a6b9"}]}"#;

    fn ecds(cfg: &str) -> String {
        json!({"resources":[{"@type":"type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig","name":"tollgate",
            "typed_config":{"@type":WASM_TYPE,"config":{"name":"tollgate","vm_config":{"vm_id":"tollgate"},
            "configuration":{"@type":"type.googleapis.com/google.protobuf.StringValue","value":cfg}}}}]})
        .to_string()
    }

    fn inner(text: &str) -> Value {
        let d = Doc::parse(text, None).unwrap();
        d.cfg
    }

    #[test]
    fn new_keys_and_accounts_take_their_policy_fields_in_either_key_list() {
        let flags = KeyFlags { rpm: Some(9), period: Some("month".into()), development: true };
        let mut d = Doc::parse(CFG, None).unwrap();
        let id = d.add_key("sk-new", "a1", None, Some(2.0)).unwrap();
        d.set_new_key_policy(&flags).unwrap();
        d.set_account("a1", None, None, Some(Some(4.0))).unwrap();
        d.set_account_policy("a1", Some(5000), Some("day")).unwrap();
        assert!(d.set_account_policy("nobody", Some(1), None).is_err());
        let (cfg, text) = d.render().unwrap();
        let key = cfg.keys.iter().find(|k| k.id == id).unwrap();
        assert_eq!((key.policy().rpm, key.policy().development), (Some(9), true));
        assert_eq!(key.policy().cap_period, tollgate_core::config::CapPeriod::Month);
        let a = cfg.accounts.first().unwrap();
        assert_eq!(a.policy.tpm, Some(5000));
        assert_eq!(a.policy.cap_period, tollgate_core::config::CapPeriod::Day);
        let hash = keys::to_hex(&keys::sha256(b"sk-new"));
        assert_eq!(
            inner(&text)["keys"][1],
            json!({"id": id, "account": "a1", "sha256": hash, "spend_cap": 2.0, "rpm": 9,
                   "spend_cap_period": "month", "environment": "development"})
        );
        // Into the compact table and back, the fields are kept.
        let mut d = Doc::parse(&text, None).unwrap();
        d.convert(true).unwrap();
        let (cfg, text) = d.render().unwrap();
        assert!(inner(&text)["key_table"].as_str().unwrap().ends_with(" cap=2 rpm=9 period=month dev"));
        assert_eq!(cfg.keys.iter().find(|k| k.id == id).map(|k| k.policy()), Some(key.policy()));
        let mut d = Doc::parse(&text, None).unwrap();
        let other = d.add_key("sk-other", "a1", Some("t2"), None).unwrap();
        d.set_new_key_policy(&KeyFlags { rpm: Some(3), ..KeyFlags::default() }).unwrap();
        let (cfg, text) = d.render().unwrap();
        assert_eq!(cfg.keys.iter().find(|k| k.id == other).and_then(|k| k.policy().rpm), Some(3));
        let mut d = Doc::parse(&text, None).unwrap();
        d.convert(false).unwrap();
        let (cfg, _) = d.render().unwrap();
        assert_eq!(cfg.keys.iter().find(|k| k.id == id).map(|k| k.policy()), Some(key.policy()));
        assert_eq!(cfg.keys.iter().find(|k| k.id == other).and_then(|k| k.policy().rpm), Some(3));
    }

    #[test]
    fn add_revoke_and_set_account_round_trip_through_an_ecds_file() {
        let mut d = Doc::parse(&ecds(CFG), None).unwrap();
        let id = d.add_key("sk-new", "a1", None, Some(2.5)).unwrap();
        let hash = keys::to_hex(&keys::sha256(b"sk-new"));
        assert_eq!(id, format!("key-{}", &hash[..12]));
        let (cfg, text) = d.render().unwrap();
        assert_eq!(cfg.keys.len(), 2);
        // The outer document is kept; only the plugin configuration changed.
        let outer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(outer["resources"][0]["typed_config"]["config"]["vm_config"], json!({"vm_id": "tollgate"}));
        let keys_now = inner(&text)["keys"].clone();
        assert_eq!(keys_now[1], json!({"id": id, "account": "a1", "sha256": hash, "spend_cap": 2.5}));
        // Revoke by the key's hash (any case), then by id.
        let mut d = Doc::parse(&text, None).unwrap();
        assert_eq!(d.revoke(Revoke::Hash(&hash.to_uppercase())).unwrap(), vec![id.clone()]);
        assert_eq!(d.revoke(Revoke::Hash(&hash)).unwrap(), Vec::<String>::new());
        assert_eq!(d.revoke(Revoke::Id("k1")).unwrap(), vec!["k1".to_string()]);
        let (cfg, _) = d.render().unwrap();
        assert_eq!(cfg.keys.len(), 0);
        // An account: changed in place, created when absent, cap removed with Some(None).
        let (rec, created) = d.set_account("a1", Some("inactive"), Some(7), Some(Some(1.0))).unwrap();
        assert_eq!((rec, created), (json!({"id":"a1","status":"inactive","rpm":7,"spend_cap":1.0}), false));
        let (rec, _) = d.set_account("a1", None, None, Some(None)).unwrap();
        assert_eq!(rec, json!({"id":"a1","status":"inactive","rpm":7}));
        let (rec, created) = d.set_account("a2", None, Some(3), None).unwrap();
        assert_eq!((rec, created), (json!({"id":"a2","status":"active","rpm":3}), true));
        assert_eq!(d.render().unwrap().0.accounts.len(), 2);
    }

    #[test]
    fn an_edit_the_filter_would_refuse_is_not_rendered() {
        let mut d = Doc::parse(&ecds(CFG), None).unwrap();
        assert_eq!(
            d.add_key("k", "nobody", None, None).unwrap_err(),
            "no account 'nobody' in the configuration (add it with set-account --id nobody)"
        );
        d.set_account("a1", Some("suspended"), None, None).unwrap();
        let err = d.render().unwrap_err();
        assert!(
            err.starts_with("the result would be refused: configuration: accounts[0]: unknown variant `suspended`"),
            "{err}"
        );
        // A key added twice is a duplicate hash.
        let mut d = Doc::parse(&ecds(CFG), None).unwrap();
        d.add_key("sk-demo-active", "a1", Some("again"), None).unwrap();
        let err = d.render().unwrap_err();
        assert!(err.contains("keys[1].sha256: duplicate sha256"), "{err}");
    }

    #[test]
    fn a_bare_configuration_file_and_resource_selection() {
        let mut d = Doc::parse(CFG, None).unwrap();
        d.add_key("x", "a1", Some("k2"), None).unwrap();
        let (cfg, text) = d.render().unwrap();
        assert_eq!((cfg.keys.len(), inner(&text)["keys"][1]["id"].clone()), (2, json!("k2")));
        let two = ecds(CFG).replace("]}", "")
            + ","
            + &ecds(CFG)["{\"resources\":[".len()..].replace("\"tollgate\",\"typed", "\"other\",\"typed");
        assert!(Doc::parse(&two, None).unwrap_err().starts_with("several wasm filter resources (tollgate, other)"));
        assert!(Doc::parse(&two, Some("other")).is_ok());
        assert_eq!(
            Doc::parse(&two, Some("nope")).err().unwrap(),
            "no wasm filter resource named 'nope' with a string configuration"
        );
    }

    #[test]
    fn the_compact_key_table_round_trips_through_every_command() {
        let verbose = CFG.replace(
            "}]}",
            r#"},{"id":"k2","account":"a1","spend_cap":2.5,"sandbox_daily_quota":4,"log_content":true,
                "sha256":"0000000000000000000000000000000000000000000000000000000000000010"},
               {"id":"has space","account":"a1","sha256":"0000000000000000000000000000000000000000000000000000000000000011"}]}"#,
        );
        let mut d = Doc::parse(&ecds(&verbose), None).unwrap();
        let (before, _) = d.render().unwrap();
        assert_eq!(d.convert(true).unwrap(), (2, 1));
        let (cfg, text) = d.render().unwrap();
        let by_id = |c: &Config| {
            let mut k: Vec<_> =
                c.keys.iter().map(|k| (k.id.clone(), k.spend_cap(), k.sandbox_daily_quota, k.log_content())).collect();
            k.sort_by(|a, b| a.0.cmp(&b.0));
            k
        };
        assert_eq!(by_id(&cfg), by_id(&before));
        let table = inner(&text)["key_table"].as_str().unwrap().to_string();
        assert_eq!(table, "IBpj4gaahewXpt48zgn4IuqYAzBa2p52F8nIDpNJprk a1 id=k1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABA a1 id=k2 cap=2.5 quota=4 log");
        assert_eq!(inner(&text)["keys"].as_array().unwrap().len(), 1, "the id with a space stays in keys");
        // add-key appends a line (the default id is not written); an id a line cannot hold is refused.
        let mut d = Doc::parse(&text, None).unwrap();
        let id = d.add_key("sk-new", "a1", None, Some(1.0)).unwrap();
        let hash = keys::sha256(b"sk-new");
        assert_eq!(id, default_id(&hash));
        assert_eq!(
            d.add_key("sk-x", "a1", Some("a b"), None).unwrap_err(),
            "key 'a b' of account 'a1': a key_table line cannot hold an empty id or account, or one with a space"
        );
        let (cfg, text) = d.render().unwrap();
        assert_eq!(cfg.keys.len(), 4);
        assert!(inner(&text)["key_table"].as_str().unwrap().ends_with(&format!("\n{} a1 cap=1", to_base64url(&hash))));
        assert_eq!(cfg.key_table.lookup(&hash), Some(2));
        // revoke-key by hash (any case) and by id, from the table and from the list.
        let mut d = Doc::parse(&text, None).unwrap();
        assert_eq!(d.revoke(Revoke::Hash(&keys::to_hex(&hash).to_uppercase())).unwrap(), vec![id.clone()]);
        assert_eq!(d.revoke(Revoke::Id("k2")).unwrap(), vec!["k2".to_string()]);
        assert_eq!(d.revoke(Revoke::Id("has space")).unwrap(), vec!["has space".to_string()]);
        assert_eq!(d.revoke(Revoke::Id("k2")).unwrap(), Vec::<String>::new());
        let (cfg, text) = d.render().unwrap();
        assert_eq!(cfg.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k1"]);
        // And back to the list: the same keys as before.
        let mut d = Doc::parse(&text, None).unwrap();
        assert_eq!(d.convert(false).unwrap(), (1, 0));
        let (back, text) = d.render().unwrap();
        assert_eq!(back.keys, Doc::parse(&ecds(CFG), None).unwrap().render().unwrap().0.keys);
        assert_eq!(inner(&text).get("key_table"), None);
    }

    #[test]
    fn the_file_is_replaced_by_a_rename_and_keeps_its_permissions() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = std::env::temp_dir().join(format!("keytool-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cfg.json");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let before = fs::metadata(&path).unwrap().ino();
        let _l = lock(&path).unwrap();
        write_atomically(&path, "new", "n1").unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((fs::read_to_string(&path).unwrap().as_str(), meta.permissions().mode() & 0o777), ("new", 0o640));
        assert_ne!(meta.ino(), before, "replaced by a rename, not rewritten in place");
        let mut left: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".cfg.json.lock", "cfg.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
