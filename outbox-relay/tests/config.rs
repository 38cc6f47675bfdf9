//! Configuration errors: a malformed file is reported by key, line and column, never by its
//! value or the line's content; every duration, size and count is range-checked at start with
//! the key named, so nothing out of range reaches the drain loop (`poll_interval = "0ms"`
//! used to panic there).

use std::process::Command;

use outbox_core::Error;
use outbox_relay::config::RelayConfig;

/// A value no error message may repeat.
const SECRET: &str = "hunter2";

fn error_of(text: &str) -> String {
    let full = format!("database_url = \"sqlite::memory:\"\n{text}");
    match RelayConfig::from_toml(&full).and_then(|c| c.validate().map(|()| c)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e @ Error::InvalidConfig { .. }) => e.to_string(),
        Err(other) => panic!("not a configuration error: {other}"),
    }
}

#[test]
fn malformed_values_name_key_line_and_column_but_not_the_value() {
    for (text, key, position) in [
        (
            "[kafka]\nbootstrap_servers = 42\n",
            "kafka.bootstrap_servers",
            "line 3, column 21",
        ),
        (
            "[kafka]\nbootstrap_servers = [\"hunter2:9092\"]\n",
            "kafka.bootstrap_servers",
            "line 3",
        ),
        ("schema = { password = \"hunter2\" }\n", "schema", "line 2"),
        (
            "[relay]\npoll_interval = \"hunter2\"\n",
            "relay.poll_interval: not a duration such as 250ms or 10s",
            "line 3, column 17",
        ),
        (
            "[relay]\npoison_policy = \"hunter2\"\n",
            "relay.poison_policy",
            "line 3",
        ),
        (
            "[relay]\nbatch_size = \"hunter2\"\n",
            "relay.batch_size",
            "line 3",
        ),
        (
            "[relay]\nmax_attempts = -7\n",
            "relay.max_attempts",
            "line 3",
        ),
        (
            "[kafka.properties]\n\"sasl.password\" = 7777777\n",
            "kafka.properties.sasl.password",
            "line 3",
        ),
        (
            "[relay]\nunknown_thing = \"hunter2\"\n",
            "relay.unknown_thing: unknown key",
            "line 3",
        ),
        ("table_prefix = \"hunter2\n", "config file", "line 2"),
        (
            "[kafka]\nbootstrap_servers = \"a\"\nbootstrap_servers = \"hunter2\"\n",
            "bootstrap_servers: not valid TOML: duplicate key",
            "line 4",
        ),
    ] {
        let message = error_of(text);
        assert!(message.contains(key), "{text}: {message}");
        assert!(message.contains(position), "{text}: {message}");
        assert!(
            !message.contains(SECRET),
            "{text}: the value leaked: {message}"
        );
        assert!(
            !message.contains("7777777"),
            "{text}: the value leaked: {message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
}

#[test]
fn every_duration_size_and_count_is_range_checked_with_its_key() {
    for (text, key) in [
        ("[relay]\npoll_interval = \"0ms\"\n", "relay.poll_interval"),
        (
            "[relay]\npoll_interval = \"500us\"\n",
            "relay.poll_interval",
        ),
        ("[relay]\npoll_interval = \"2h\"\n", "relay.poll_interval"),
        ("[relay]\nlease_ttl = \"500ms\"\n", "relay.lease_ttl"),
        ("[relay]\nlease_ttl = \"1000years\"\n", "relay.lease_ttl"),
        (
            "[relay]\nshutdown_timeout = \"2h\"\n",
            "relay.shutdown_timeout",
        ),
        ("[relay]\nretry_backoff = \"0s\"\n", "relay.retry_backoff"),
        ("[relay]\nstuck_after = \"0s\"\n", "relay.stuck_after"),
        // Shorter than a step that waits on a database that is down.
        ("[relay]\nstuck_after = \"29s\"\n", "relay.stuck_after"),
        ("[relay]\nbatch_size = 0\n", "relay.batch_size"),
        ("[relay]\nbatch_size = 100001\n", "relay.batch_size"),
        ("[relay]\nmax_attempts = 0\n", "relay.max_attempts"),
        ("[relay]\nlease_name = \"\"\n", "relay.lease_name"),
        ("[relay]\ninstance_id = \"   \"\n", "relay.instance_id"),
        ("[relay]\nsource = \"\"\n", "relay.source"),
        (
            "[kafka.properties]\n\"message.max.bytes\" = \"999\"\n",
            "kafka.properties.message.max.bytes",
        ),
        (
            "[kafka.properties]\n\"message.max.bytes\" = \"lots\"\n",
            "kafka.properties.message.max.bytes",
        ),
    ] {
        let message = error_of(text);
        assert!(message.contains(key), "{text}: {message}");
        assert!(message.contains("must be"), "{text}: {message}");
    }
    // The bounds themselves are accepted.
    let ok = "database_url = \"sqlite::memory:\"\n[relay]\npoll_interval = \"1ms\"\nlease_ttl = \"1s\"\n\
              shutdown_timeout = \"0s\"\nbatch_size = 100000\nmax_attempts = 1\nstuck_after = \"30s\"\n";
    RelayConfig::from_toml(ok)
        .expect("parses")
        .validate()
        .expect("bounds are valid");
}

/// The binary refuses an out-of-range value at start with exit code 2, instead of
/// panicking in the loop.
#[test]
fn run_refuses_a_zero_poll_interval_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"sqlite://{}?mode=rwc\"\n[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\n\
             [relay]\npoll_interval = \"0ms\"\n",
            dir.path().join("o.db").display()
        ),
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_outbox-relay"))
        .args(["--config", &file.display().to_string(), "run"])
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env_remove("DATABASE_URL")
        .env_remove("OUTBOX_DATABASE_URL")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("relay.poll_interval"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A configuration path to an endless device is refused, not read until memory runs out.
#[test]
fn a_config_file_that_never_ends_is_refused() {
    match RelayConfig::from_file(std::path::Path::new("/dev/zero")) {
        Err(Error::InvalidConfig { key, reason }) => {
            assert_eq!(key, "--config");
            assert!(reason.contains("larger than"), "{reason}");
        }
        Err(other) => panic!("not InvalidConfig: {other}"),
        Ok(_) => panic!("/dev/zero is no configuration"),
    }
}
