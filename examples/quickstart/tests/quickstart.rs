//! The README's quickstart command, as a newcomer runs it: nothing configured, exit 0, and
//! the summary counts what happened.

use std::process::Command;

#[test]
fn quickstart_runs_with_nothing_configured_and_reports_the_counts() {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env_remove("RUST_LOG")
        .output()
        .expect("quickstart runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().last(),
        Some("summary: published 3, rolled back 1, refused 1, consumed 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"symbol "XYZ" is not one of [EUR, USD, GBP]"#),
        "{stdout}"
    );
    assert!(
        stdout.contains("orders-value is incompatible under FULL_TRANSITIVE"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches(" ce_id=").count(),
        3,
        "three records decoded"
    );
    assert!(
        out.stderr.is_empty(),
        "no log noise: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
