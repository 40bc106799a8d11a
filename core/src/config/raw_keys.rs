//! The verbose `keys` list as read from the configuration: one JSON object per key, read one
//! entry at a time into the key table and records (no list of JSON objects kept).

use super::key_id::KeyId;
use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey<'a> {
    pub(super) id: String,
    /// Borrowed from the configuration text when it has no escapes: read once, never kept.
    #[serde(borrow)]
    pub(super) sha256: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) account: Cow<'a, str>,
    pub(super) spend_cap: Option<policy::RawSpendCap>,
    pub(super) spend_cap_period: Option<CapPeriod>,
    pub(super) sandbox_daily_quota: Option<u32>,
    /// The key's own requests per minute (beside its account's).
    pub(super) rpm: Option<u32>,
    #[serde(default)]
    pub(super) environment: Environment,
    #[serde(default)]
    pub(super) log_content: bool,
    /// The models this key may use: exact ids, or prefixes ending in `*` (all models if absent).
    pub(super) allowed_models: Option<Vec<String>>,
}

/// The `keys` array, read one entry at a time straight into its compiled form: the key records
/// and the hash table, with no per-key JSON object or hash string kept (a million keys stay a
/// million 36-byte table entries and records). Accounts are named by id here and resolved once
/// `accounts` is read (the two arrays may come in either order); a key whose sha256 or spend cap
/// is invalid is remembered (the first one) and reported by `compile`, as the other errors are.
#[derive(Debug, Default)]
pub(super) struct RawKeys {
    pub(super) records: Vec<KeyRecord>,
    /// The configured hash and the key's index, in configuration order.
    pub(super) table: Vec<(Hash, u32)>,
    /// Each account id the keys name, with the first key that names it; a record's `account`
    /// is an index in here until `compile` resolves it.
    pub(super) account_ids: HashMap<String, (usize, usize)>,
    /// The keys that set their own `sandbox_daily_quota`, in order (the others get the default,
    /// which `defaults` may set after the keys).
    pub(super) own_quota: Vec<u32>,
    /// The first key with an invalid sha256 or spend cap: (its index, which check: 0 sha256,
    /// 2 spend cap, the message). Check 1 is the account, resolved later.
    pub(super) invalid: Option<(usize, u8, String)>,
    /// The distinct `allowed_models` lists, in first-use order (a key's `allowed_models` is an
    /// index in here plus one), with the first key that named each.
    pub(super) model_policies: Vec<(ModelPolicy, usize)>,
    /// The account id of the previous key and its index: keys of one account often come in a
    /// run (a table written per account), which then costs no hash map lookup a key.
    last_account: Option<(String, usize)>,
}

thread_local! {
    /// How many keys the configuration being parsed can hold at most (see `key_capacity`): the
    /// key arrays are reserved once instead of grown by doubling, whose copies would stay
    /// resident in a wasm VM (its memory never shrinks).
    pub(super) static KEY_CAPACITY: Cell<usize> = const { Cell::new(0) };
}

/// The most keys a configuration of `len` bytes can hold: a key's JSON object is at least 99
/// bytes (64 hex digits of sha256, `"sha256":""`, `"id":""`, `"account":""`, braces, a comma).
/// Capacity reserved and never written costs no memory.
pub(super) fn key_capacity(len: usize) -> usize {
    len / 99 + 1
}

impl<'de> Deserialize<'de> for RawKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(KeysVisitor)
    }
}

pub(super) struct KeysVisitor;

impl<'de> Visitor<'de> for KeysVisitor {
    type Value = RawKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of keys")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawKeys, A::Error> {
        let mut out = RawKeys::with_capacity(KEY_CAPACITY.with(Cell::get).max(seq.size_hint().unwrap_or(0)));
        while let Some(k) = seq.next_element::<RawKey>()? {
            out.push(k).map_err(serde::de::Error::custom)?;
        }
        out.finish();
        Ok(out)
    }
}

impl RawKeys {
    /// Reserves room for `cap` keys when it can (a size that cannot be had, from a wrong length,
    /// is not an error: the arrays then grow as keys come).
    pub(super) fn with_capacity(cap: usize) -> RawKeys {
        let mut out = RawKeys::default();
        if out.records.try_reserve_exact(cap).is_ok() {
            let _ = out.table.try_reserve_exact(cap);
        }
        out
    }

    /// Adds the next key of the list.
    pub(super) fn push(&mut self, k: RawKey) -> Result<(), &'static str> {
        let i = self.records.len();
        let hash = keys::from_hex(&k.sha256);
        let cap = policy::spend_cap(k.spend_cap, k.spend_cap_period, &format!("keys[{i}]"));
        if self.invalid.is_none() {
            if hash.is_none() {
                self.invalid = Some((
                    i,
                    0,
                    format!("keys[{i}].sha256: must be 64 hexadecimal characters (the SHA-256 of the key)"),
                ));
            } else if let Err(e) = &cap {
                self.invalid = Some((i, 2, e.clone()));
            }
        }
        let (spend_cap, cap_period) = cap.unwrap_or((None, CapPeriod::Total));
        self.push_parsed(
            hash.unwrap_or_default(),
            k.id.into(),
            &k.account,
            spend_cap,
            k.sandbox_daily_quota,
            k.log_content,
        )?;
        if let Some(r) = self.records.last_mut() {
            r.set_policy(KeyPolicy { rpm: k.rpm, cap_period, development: k.environment == Environment::Development });
        }
        if let Some(list) = k.allowed_models {
            let policy = ModelPolicy(list.into_boxed_slice());
            let at = match self.model_policies.iter().position(|(p, _)| *p == policy) {
                Some(at) => at,
                None => {
                    self.model_policies.push((policy, i));
                    self.model_policies.len() - 1
                }
            };
            if let Some(r) = self.records.last_mut() {
                r.allowed_models = u32::try_from(at + 1).map_err(|_| "keys: too many allowed_models lists")?;
            }
        }
        Ok(())
    }

    /// Adds a key whose fields are read (and checked, or their error recorded in `invalid`).
    pub(super) fn push_parsed(
        &mut self,
        hash: Hash,
        id: KeyId,
        account: &str,
        spend_cap: Option<f64>,
        sandbox_daily_quota: Option<u32>,
        log_content: bool,
    ) -> Result<(), &'static str> {
        let i = self.records.len();
        let idx = u32::try_from(i).map_err(|_| "keys: too many keys")?;
        let account = match &self.last_account {
            Some((id, a)) if id == account => *a,
            _ => {
                let next = self.account_ids.len();
                let a = match self.account_ids.get(account) {
                    Some(&(a, _)) => a,
                    None => {
                        self.account_ids.insert(account.to_string(), (next, i));
                        next
                    }
                };
                self.last_account = Some((account.to_string(), a));
                a
            }
        };
        if sandbox_daily_quota.is_some() {
            self.own_quota.push(idx);
        }
        self.table.push((hash, idx));
        let mut record = KeyRecord::new(id, account, sandbox_daily_quota.unwrap_or(0));
        record.set_spend_cap(spend_cap);
        record.set_log_content(log_content);
        self.records.push(record);
        Ok(())
    }

    /// Gives back the capacity reserved beyond the keys read (in place: nothing is copied).
    pub(super) fn finish(&mut self) {
        self.records.shrink_to_fit();
        self.table.shrink_to_fit();
    }
}
