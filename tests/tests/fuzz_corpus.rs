//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and the
//! inputs of past findings (`fuzz/regressions/<target>/`) through the same
//! property checks the cargo-fuzz targets run, on stable, without
//! cargo-fuzz. See the README's "Fuzzing" section for running the fuzzer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tests::fuzz_props::{self, TARGETS};
use vault_server::store::{RecordCodec, VaultKey};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `dir`, sorted; none if `dir` does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("a readable corpus entry").path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Runs `target` on every input, and fails naming every input that failed.
fn replay(target: &str, inputs: impl IntoIterator<Item = (String, Vec<u8>)>) -> usize {
    let mut count = 0;
    let mut failures = Vec::new();
    for (label, data) in inputs {
        count += 1;
        if catch_unwind(AssertUnwindSafe(|| fuzz_props::check(target, &data))).is_err() {
            failures.push(label);
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} input(s) fail (see the panics above): {failures:#?}",
        failures.len()
    );
    count
}

fn replay_dirs(target: &str) {
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        for path in files(&fuzz_dir().join(kind).join(target)) {
            let data = std::fs::read(&path).expect("a readable corpus file");
            inputs.push((path.display().to_string(), data));
        }
    }
    let corpus = files(&fuzz_dir().join("corpus").join(target)).len();
    assert!(corpus > 0, "fuzz/corpus/{target}/ is empty or missing");
    let n = replay(target, inputs);
    eprintln!("{target}: {n} inputs replayed");
}

#[test]
fn blob_parse_corpus() {
    replay_dirs("blob_parse");
}

#[test]
fn callback_query_corpus() {
    replay_dirs("callback_query");
}

#[test]
fn path_normalise_corpus() {
    replay_dirs("path_normalise");
}

#[test]
fn dropbox_arg_corpus() {
    replay_dirs("dropbox_arg");
}

#[test]
fn record_decode_corpus() {
    replay_dirs("record_decode");
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    for target in TARGETS {
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{target}.rs is missing"
        );
        assert!(
            !files(&fuzz_dir().join("corpus").join(target)).is_empty(),
            "fuzz/corpus/{target}/ is empty or missing"
        );
    }
}

#[test]
fn seeds_pass() {
    for (target, data) in fuzz_props::seeds() {
        replay(target, [(format!("a seed of {target}"), data)]);
    }
}

#[test]
fn the_fuzzers_record_sealing_matches_the_codec() {
    let codec = RecordCodec::new(&VaultKey::from_bytes(fuzz_props::RECORD_KEY));
    let record = fuzz_props::sample_record();
    let json = serde_json::to_vec(&record).unwrap();
    let sealed = fuzz_props::seal_for_fuzzing(fuzz_props::RECORD_NAME, &json);
    assert_eq!(codec.open(fuzz_props::RECORD_NAME, &sealed), Ok(record));
}

/// Writes the hand-written seeds to `$FUZZ_SEEDS_OUT/<target>/seed-N`, to
/// start a fresh corpus: `FUZZ_SEEDS_OUT=/tmp/seeds cargo test -p tests
/// --test fuzz_corpus -- --ignored write_seeds`.
#[test]
#[ignore = "writes files; run by hand to regenerate the seeds"]
fn write_seeds() {
    let out = PathBuf::from(std::env::var("FUZZ_SEEDS_OUT").expect("set FUZZ_SEEDS_OUT"));
    for (i, (target, data)) in fuzz_props::seeds().into_iter().enumerate() {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{i:02}")), data).unwrap();
    }
}
