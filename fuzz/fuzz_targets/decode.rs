//! A photo through the decode path, as `autorma_classifier::testsuite::fuzz_preprocessor` runs
//! it (the regression test replays the same).
#![no_main]

use autorma_classifier::testsuite::fuzz_preprocessor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // libfuzzer-sys aborts in its panic hook, even on a panic the decode path catches and
    // refuses (`decode_caught`); with the default hook back, a panic that escapes is still a
    // crash (libfuzzer-sys aborts when it reaches the target's edge).
    init: drop(std::panic::take_hook()),
    |bytes: &[u8]| {
        let _ = fuzz_preprocessor().preprocess(bytes);
    }
);
