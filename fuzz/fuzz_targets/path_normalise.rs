//! RemotePath::new(Some("/root"), input): no panic, accepted paths stay under
//! the root and hold only plain names.
//! The properties: `tests::fuzz_props::check_path_normalise`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tests::fuzz_props::check_path_normalise(data));
