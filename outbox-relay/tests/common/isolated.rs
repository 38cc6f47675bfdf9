//! The relay binary as the security tests run it: an empty environment plus what a test
//! gives, and the URLs of the TLS-only database users `.ci/setup` creates.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const RELAY: &str = env!("CARGO_BIN_EXE_outbox-relay");

/// The relay binary with an empty environment plus `vars`: nothing comes from the test
/// runner's environment, flags or a file.
pub fn relay_with_env(vars: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(RELAY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .args(args);
    command
}

pub fn output(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay starts");
    // Hang guard: every failure under test happens at start, long before this.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay did not stop within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `postgres://outbox_tls@localhost/test` with TLS parameters (the password comes apart).
pub fn pg_tls_url(params: &str) -> String {
    as_user(&super::pg_url(), "postgres://outbox_tls", params)
}

/// `mysql://USER@localhost:3306/test` with TLS parameters (the password comes apart).
pub fn mysql_tls_url(user: &str, params: &str) -> String {
    as_user(&super::mysql_url(), &format!("mysql://{user}"), params)
}

/// `base`'s host and database (its user and parameters replaced) as `user`, with `params`.
fn as_user(base: &str, user: &str, params: &str) -> String {
    let rest = base
        .split_once('@')
        .or_else(|| base.split_once("://"))
        .map_or(base, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("{user}@{rest}?{params}")
}
