//! Fuzz target `invite`: see [`fuzz_checks::checks::invite`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_checks::checks::invite(data);
});
