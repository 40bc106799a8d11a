//! tollgate-keytool: mint API keys and hash existing ones. Only the hash goes into configuration.
//!
//!   tollgate-keytool new [--prefix sk-] [--id KEY_ID] [--account ACCOUNT_ID]
//!   tollgate-keytool hash KEY        (or the key on standard input, to keep it out of shell history)

use std::io::Read;
use std::process::ExitCode;
use tollgate_core::keys;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn usage() -> ExitCode {
    eprintln!("usage:\n  tollgate-keytool new [--prefix sk-] [--id KEY_ID] [--account ACCOUNT_ID]\n  tollgate-keytool hash [KEY]   (reads the key from standard input when not given)");
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
                out.push(char::from(ALPHABET[usize::from(b) % 62]));
            }
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { return usage() };
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match cmd.as_str() {
        "new" => {
            let prefix = opt("--prefix").unwrap_or_else(|| "sk-".to_string());
            let key = match random_key(&prefix) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("cannot get randomness: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let hash = keys::to_hex(&keys::sha256(key.as_bytes()));
            let id = opt("--id").unwrap_or_else(|| format!("key-{}", &hash[..12]));
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
                None => {
                    let mut s = String::new();
                    if std::io::stdin().read_to_string(&mut s).is_err() {
                        return usage();
                    }
                    s.trim().to_string()
                }
            };
            if key.is_empty() {
                return usage();
            }
            println!("{}", keys::to_hex(&keys::sha256(key.as_bytes())));
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}
