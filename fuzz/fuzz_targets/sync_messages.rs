//! Fuzz target `sync_messages`: see [`fuzz_checks::checks::sync_messages`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_checks::checks::sync_messages(data);
});
