//! The `outbox-relay` binary as a process: started as users start it, stopped with SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// `outbox-relay` with the environment that would override a test's settings removed
/// (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `OUTBOX_*` of the CI) and only errors logged.
pub fn relay_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outbox-relay"));
    command
        .env("RUST_LOG", "error,rdkafka=off,librdkafka=off")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env_remove("DATABASE_URL")
        .env_remove("OUTBOX_DATABASE_URL")
        .env_remove("OUTBOX_TABLE_PREFIX")
        .env_remove("OUTBOX_HTTP_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// Runs `outbox-relay ARGS` to the end; its output.
pub fn relay_output(args: &[&str]) -> Output {
    relay_command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("outbox-relay runs")
}

/// Starts `outbox-relay --config CONFIG run` as users run it. The config file names the
/// cluster and the database, so the environment must not override them.
pub fn spawn_relay(config: &Path) -> Child {
    relay_command()
        .args(["--config", &config.display().to_string(), "run"])
        .spawn()
        .expect("relay starts")
}

/// Sends SIGTERM to `child` and waits for it: its exit code (0 after a graceful stop).
pub fn stop(child: &mut Child) -> Option<i32> {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success(), "kill -TERM {}", child.id());
    child.wait().expect("exit").code()
}

/// Sends SIGTERM to `child` and asserts it stopped gracefully (exit code 0), naming the signal
/// when it died of one instead (a SIGTERM before its handler was set up, say).
#[allow(dead_code)] // not every test binary stops a relay gracefully
pub fn stop_gracefully(child: &mut Child) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success(), "kill -TERM {}", child.id());
    let status = child.wait().expect("relay exits");
    assert_eq!(
        status.code(),
        Some(0),
        "graceful shutdown exits 0 (exited {status:?}, signal {:?})",
        std::os::unix::process::ExitStatusExt::signal(&status)
    );
}
