//! The wasm build's code generation, checked at compile time. `.cargo/config.toml` turns wasm SIMD
//! on for wasm32-wasip1; a `RUSTFLAGS` in the environment replaces that file's flags, which would
//! silently build the slower scalar filter (a 200-event stream costs Envoy about half as much
//! again without SIMD). Such a build stops here instead. A deliberately scalar build (for a host
//! whose V8 cannot run wasm SIMD: x86-64 without SSE4.1) passes `--cfg tollgate_scalar`.

#[cfg(all(target_family = "wasm", not(target_feature = "simd128"), not(tollgate_scalar)))]
compile_error!(
    "the wasm filter is built with wasm SIMD (`-C target-feature=+simd128`, .cargo/config.toml); \
     a RUSTFLAGS in the environment replaces it: add `-C target-feature=+simd128` to it \
     (or `--cfg tollgate_scalar` for a scalar build)"
);
