//! A raw HTTP/1.1 client for the relay's ports: exact bytes, slow and stalled clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A hang guard for reads from a server, far above every timeout the tests configure.
pub const GUARD: Duration = Duration::from_secs(20);

/// One HTTP/1.1 exchange over a fresh connection: (status, headers, body).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut response = String::new();
    // A connection the server closed at once (over the connection limit) reads as status 0.
    if stream.write_all(request.as_bytes()).is_ok() {
        match stream.read_to_string(&mut response) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    parse_response(&response)
}

pub fn parse_response(response: &str) -> (u16, String, String) {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// Sends `prefix` and then nothing; returns what the server answered before it closed the
/// connection (the hang guard fails the test if it never does).
pub fn stall(addr: std::net::SocketAddr, prefix: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    stream.write_all(prefix.as_bytes()).expect("write");
    let mut answer = String::new();
    match stream.read_to_string(&mut answer) {
        Ok(_) => answer,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => answer,
        Err(e) => panic!("the server held a stalled connection open: {e}"),
    }
}
