//! Inputs that once crashed a decoder (found by scripts/fuzz.sh storage batch_parse),
//! replayed through the fuzz target's body.

#[test]
fn regression_fuzz_record_offset_delta_overflow() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect("regression dir") {
        let path = entry.expect("entry").path();
        storage::fuzzing::decode_everything(&std::fs::read(&path).expect("read input"));
        replayed += 1;
    }
    assert!(replayed >= 2);
}
