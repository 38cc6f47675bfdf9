//! Every schema of the compatibility vectors: the generated type's schema equals its source
//! and data round-trips, or codegen refused it with a clear reason.

use outbox_codegen_tests::vectors::{CHECKS, UNSUPPORTED};

#[test]
fn every_expressible_vector_round_trips() {
    let failures: Vec<String> = CHECKS
        .iter()
        .filter_map(|(source, check)| check(source).err().map(|e| format!("{source}\n  {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        CHECKS.len(),
        failures.join("\n")
    );
    // Most of the vectors are records and enums the derive can express.
    assert!(CHECKS.len() >= 40, "only {} expressible", CHECKS.len());
}

#[test]
fn what_the_derive_cannot_express_is_refused_clearly() {
    for (source, error) in UNSUPPORTED {
        assert!(
            error.contains("the AvroSchema derive cannot express") && error.contains(" at /"),
            "{source}: {error}"
        );
    }
    eprintln!(
        "{} expressible, {} refused",
        CHECKS.len(),
        UNSUPPORTED.len()
    );
    for (source, error) in UNSUPPORTED {
        eprintln!("{source}\n  {error}");
    }
}
