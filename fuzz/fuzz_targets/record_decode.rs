//! RecordCodec::open with a fixed key, on raw stored bytes or on a plaintext
//! sealed first (to reach the JSON layer behind the AEAD).
//! The properties: `tests::fuzz_props::check_record_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tests::fuzz_props::check_record_decode(data));
