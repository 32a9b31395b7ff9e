//! A package's `model.json`, parsed and validated as `autorma model push` and the workers do.
#![no_main]

use std::path::Path;

use autorma_registry::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = Manifest::parse(bytes, Path::new("model.json"));
});
