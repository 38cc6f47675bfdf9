//! The remote registry client never blocks the async runtime that awaits it: a slow registry
//! answer leaves other tasks running, on a current-thread runtime too, and the same calls work
//! from inside `tokio::task::spawn_blocking` and from a plain thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use outbox_core::registry::{RemoteRegistryConfig, RemoteSchemaStore, SchemaStore};

/// How long the test registry waits before each answer.
const DELAY: Duration = Duration::from_millis(600);

/// A registry whose every answer (to `GET /subjects`) comes after [`DELAY`]; serves `calls`
/// requests, then stops.
fn slow_registry(calls: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(calls) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let _ = reader
                .by_ref()
                .take(length as u64)
                .read_to_end(&mut Vec::new());
            std::thread::sleep(DELAY);
            let body = r#"["b-value","a-value"]"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

/// Counts 10 ms ticks until dropped.
fn ticker(ticks: &Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let ticks = Arc::clone(ticks);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
            ticks.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[test]
fn a_slow_registry_leaves_a_current_thread_runtime_running() {
    let store = RemoteSchemaStore::new(RemoteRegistryConfig::new(slow_registry(1)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let ticks = Arc::new(AtomicU64::new(0));
    let (subjects, ticked, waited) = runtime.block_on(async {
        let ticker = ticker(&ticks);
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let started = Instant::now();
        let subjects = store.subjects().await.expect("subjects");
        let waited = started.elapsed();
        ticker.abort();
        (subjects, ticks.load(Ordering::Relaxed) - before, waited)
    });
    assert_eq!(subjects, ["a-value", "b-value"], "sorted, as served");
    assert!(
        waited >= DELAY,
        "the answer came after the delay: {waited:?}"
    );
    // 600 ms at 10 ms a tick is 60 ticks; a blocked runtime thread would tick at most once.
    assert!(
        ticked >= 20,
        "the ticker ran {ticked} times while the registry answered in {waited:?}"
    );
}

#[test]
fn calls_work_inside_spawn_blocking_and_on_a_plain_thread() {
    let url = slow_registry(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = RemoteSchemaStore::new(RemoteRegistryConfig::new(url));

    // Inside spawn_blocking, the way a blocking caller (diesel) is run from async code: both
    // with tokio's and with a plain blocking executor.
    let in_blocking = store.clone();
    let (by_handle, by_executor) = runtime.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let by_handle = tokio::runtime::Handle::current().block_on(in_blocking.subjects());
            let by_executor = futures_executor::block_on(in_blocking.subjects());
            (by_handle, by_executor)
        })
        .await
        .expect("no panic inside spawn_blocking")
    });
    assert_eq!(by_handle.expect("handle"), ["a-value", "b-value"]);
    assert_eq!(by_executor.expect("executor"), ["a-value", "b-value"]);

    // A plain thread with no runtime: the call runs inline.
    let plain = std::thread::spawn(move || futures_executor::block_on(store.subjects()))
        .join()
        .expect("no panic on a plain thread");
    assert_eq!(plain.expect("plain"), ["a-value", "b-value"]);
}
