//! A photo through the decode path, as `autorma_classifier::testsuite::fuzz_preprocessor` runs
//! it (the regression test replays the same).
#![no_main]

use autorma_classifier::testsuite::fuzz_preprocessor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = fuzz_preprocessor().preprocess(bytes);
});
