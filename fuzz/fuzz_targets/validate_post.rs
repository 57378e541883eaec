//! Fuzz target `validate_post`: see [`fuzz_checks::checks::validate_post`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_checks::checks::validate_post(data);
});
