//! Fuzz target `validate_action`: see [`fuzz_checks::checks::validate_action`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_checks::checks::validate_action(data);
});
