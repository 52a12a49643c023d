//! dropbox_arg on arbitrary strings as a path (and a key) in a JSON object:
//! printable ASCII that parses back to the same value.
//! The properties: `tests::fuzz_props::check_dropbox_arg`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tests::fuzz_props::check_dropbox_arg(data));
