//! TokenBlob::parse on every paste form (bare JSON, rclone's markers,
//! terminal line breaks, base64 config maps): no panic, no error echoes a
//! token the paste carried, a parsed blob's to_json parses back to it.
//! The properties: `tests::fuzz_props::check_blob_parse`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tests::fuzz_props::check_blob_parse(data));
