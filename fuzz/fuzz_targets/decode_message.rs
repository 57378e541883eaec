//! Fuzz target `decode_message`: see [`fuzz_checks::checks::decode_message`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_checks::checks::decode_message(data);
});
