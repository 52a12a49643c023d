//! authorize-cli's callback interpret / interpret_pasted with a fixed state:
//! no panic, a code or provider error only with our state.
//! The properties: `tests::fuzz_props::check_callback_query`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tests::fuzz_props::check_callback_query(data));
