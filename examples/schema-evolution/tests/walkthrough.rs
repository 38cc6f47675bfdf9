//! The example runs end to end and tells the story it claims: a refused breaking change that
//! ships on the next stream, a dual-publish window, and the old stream drained to zero.

#[test]
fn breaking_change_ships_as_a_new_stream_while_the_old_one_drains() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_schema-evolution"))
        .output()
        .expect("example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "v3 (total_cents becomes a string) is refused under FULL_TRANSITIVE:",
        "the breaking change ships as a new stream: orders.v2-value version 1",
        "migration window: orders: 3 waiting, orders.v2: 3 waiting",
        "after the switch and one relay batch: orders: 0 waiting, orders.v2: 0 waiting",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}
