//! Envoy's shared data (one key-value map per VM id, shared by every worker's VM) as the limits'
//! `Counters` store. The raw hostcalls are declared here rather than called through
//! `proxy_wasm::hostcalls`, whose shared-data wrappers panic on an unexpected status: here every
//! status becomes a `StoreError`, and the limits fail closed on it.

use tollgate_core::limits::{Counters, StoreError};

// Status codes of the proxy-wasm ABI.
const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const CAS_MISMATCH: u32 = 8;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
}

/// The host's shared data.
pub struct SharedData;

impl Counters for SharedData {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        let mut cas: u32 = 0;
        // SAFETY: the pointers are valid for the call; on success the host hands over a buffer it
        // allocated through this module's `proxy_on_memory_allocate` (the global allocator), of
        // `size` bytes, which we take ownership of exactly once.
        let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
        match status {
            OK => {
                let value = if data.is_null() {
                    Vec::new()
                } else {
                    // SAFETY: see above.
                    unsafe { Vec::from_raw_parts(data, size, size) }
                };
                Ok(Some((value, cas)))
            }
            NOT_FOUND => Ok(None),
            _ => Err(StoreError::Unavailable),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        // SAFETY: plain pointers and lengths of live slices.
        let status =
            unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas.unwrap_or(0)) };
        match status {
            OK => Ok(()),
            CAS_MISMATCH => Err(StoreError::CasMismatch),
            _ => Err(StoreError::Unavailable),
        }
    }

    fn remove(&self, key: &str, cas: Option<u32>) -> Result<(), StoreError> {
        // Envoy's ABI has no delete: an empty value is the limits' "zero".
        self.set(key, &[], cas)
    }
}
