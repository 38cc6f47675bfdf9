//! Generated input: schemas made by mutating the compatibility vectors (retyping, recursion,
//! duplicates, defaults of every shape, deep wrapping, deleted keys, big lists), run through
//! parsing, default validation, compatibility in both directions and encoding of defaults.
//! Nothing may panic, overflow or hang; each case has a generous hang guard (not a timing
//! assertion).
//!
//! `OUTBOX_GENERATED_CASES` sets the number of cases (default 100000, the CI mode; raise it
//! for longer local runs), `OUTBOX_GENERATED_SEED` the seed (printed on failure).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outbox_core::Schema;
use outbox_core::avro::types::Value;
use outbox_core::compat::{CompatibilityMode, check_compatibility, check_reader_writer};
use outbox_core::encode::EventCodec;
use serde_json::{Map, Value as Json, json};

/// How long one case may take before the run is declared hung (debug build, busy machine).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// xorshift64*: deterministic, no dependency, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Every schema in the vector files, as JSON values.
fn seeds() -> Vec<Json> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![manifest.join("tests/compat-vectors")];
    let shared = manifest.join("../../shared/compat-vectors");
    if shared.is_dir() {
        dirs.push(shared);
    }
    let mut out = Vec::new();
    for dir in dirs {
        // In name order: the generated pairs must not depend on the order a checkout's
        // file system lists the folder in.
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("vector folder")
            .map(|entry| entry.expect("entry").path())
            .collect();
        paths.sort();
        for path in paths {
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let cases: Vec<Json> =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                    .expect("vector JSON");
            for case in cases {
                for key in ["reader", "writer", "new_schema"] {
                    if let Some(s) = case.get(key) {
                        out.push(as_json(s));
                    }
                }
                if let Some(Json::Array(history)) = case.get("history") {
                    out.extend(history.iter().map(as_json));
                }
            }
        }
    }
    assert!(out.len() > 50, "too few seed schemas: {}", out.len());
    out
}

fn as_json(s: &Json) -> Json {
    match s {
        Json::String(text) => serde_json::from_str(text).unwrap_or_else(|_| s.clone()),
        other => other.clone(),
    }
}

const TYPES: &[&str] = &[
    "null",
    "boolean",
    "int",
    "long",
    "float",
    "double",
    "bytes",
    "string",
    "record",
    "enum",
    "fixed",
    "array",
    "map",
    "R",
    "Nowhere",
    "myrecord",
    "com.acme.R",
    "",
    "1bad",
    "error",
];

fn random_json(rng: &mut Rng, names: &[String], depth: usize) -> Json {
    match rng.below(if depth > 3 { 6 } else { 9 }) {
        0 => Json::Null,
        1 => json!(rng.chance(2)),
        2 => json!(rng.next() as i64 >> rng.below(64)),
        3 => json!((rng.next() % 1000) as f64 / 7.0),
        4 => json!(rng.pick(TYPES)),
        5 => json!(
            names
                .get(rng.below(names.len() + 1))
                .cloned()
                .unwrap_or_default()
        ),
        6 => Json::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, names, depth + 1))
                .collect(),
        ),
        7 => json!({}),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                let key = names
                    .get(rng.below(names.len() + 1))
                    .cloned()
                    .unwrap_or_else(|| "f".to_owned());
                map.insert(key, random_json(rng, names, depth + 1));
            }
            Json::Object(map)
        }
    }
}

/// Names used in a schema (type names, field names, symbols): mutations reuse them, which
/// is how recursion, duplicates and forward references come about.
fn collect_names(json: &Json, out: &mut Vec<String>) {
    match json {
        Json::Object(map) => {
            if let Some(Json::String(n)) = map.get("name") {
                out.push(n.clone());
            }
            if let Some(Json::Array(symbols)) = map.get("symbols") {
                out.extend(symbols.iter().filter_map(Json::as_str).map(str::to_owned));
            }
            map.values().for_each(|v| collect_names(v, out));
        }
        Json::Array(items) => items.iter().for_each(|v| collect_names(v, out)),
        _ => {}
    }
}

/// Mutates one randomly chosen place of `json`.
fn mutate(rng: &mut Rng, json: &mut Json, names: &[String], donor: &Json) {
    // Walk down a random path, stopping at a random depth.
    if rng.chance(4) || !matches!(json, Json::Object(_) | Json::Array(_)) {
        apply(rng, json, names, donor);
        return;
    }
    match json {
        Json::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(rng.below(map.len()))
                .cloned()
                .unwrap_or_default();
            if let Some(child) = map.get_mut(&key) {
                mutate(rng, child, names, donor);
            }
        }
        Json::Array(items) if !items.is_empty() => {
            let i = rng.below(items.len());
            mutate(rng, &mut items[i], names, donor);
        }
        other => apply(rng, other, names, donor),
    }
}

fn apply(rng: &mut Rng, json: &mut Json, names: &[String], donor: &Json) {
    match rng.below(14) {
        0 => *json = json!(rng.pick(TYPES)),
        1 => {
            let name = names.get(rng.below(names.len() + 1)).cloned();
            *json = json!(name.unwrap_or_default());
        }
        2 => *json = random_json(rng, names, 0),
        3 => *json = donor.clone(),
        4 => {
            // Wrap in a container, sometimes many times.
            let most = if rng.chance(20) { 80 } else { 3 };
            for _ in 0..=rng.below(most) {
                let inner = json.take();
                *json = match rng.below(3) {
                    0 => json!({"type": "array", "items": inner}),
                    1 => json!({"type": "map", "values": inner}),
                    _ => json!(["null", inner]),
                };
            }
        }
        5 => {
            if let Json::Object(map) = json {
                let key = map.keys().nth(rng.below(map.len().max(1))).cloned();
                if let Some(key) = key {
                    map.remove(&key);
                }
            }
        }
        6 => {
            // Duplicate an element of a list (field, symbol, union branch).
            if let Json::Array(items) = json
                && !items.is_empty()
            {
                let dup = items[rng.below(items.len())].clone();
                items.push(dup);
            }
        }
        7 => {
            // A field whose type is a name in the schema, with a default of any shape: the
            // recursive default `{"name":"f","type":"R","default":{}}` among them.
            if let Some(Json::Array(fields)) = json.get_mut("fields") {
                let ty = names
                    .get(rng.below(names.len() + 1))
                    .cloned()
                    .unwrap_or_default();
                let mut field = json!({"name": format!("g{}", rng.below(5)), "type": ty});
                if !rng.chance(4) {
                    field["default"] = random_json(rng, names, 0);
                }
                fields.push(field);
            }
        }
        8 => {
            if let Json::Object(map) = json {
                map.insert("default".to_owned(), random_json(rng, names, 0));
            }
        }
        9 => {
            if let Json::Object(map) = json {
                let key = *rng.pick(&["name", "namespace", "aliases", "size", "symbols", "type"]);
                map.insert(key.to_owned(), random_json(rng, names, 0));
            }
        }
        10 => {
            // A long list.
            if let Json::Array(items) = json
                && let Some(first) = items.first().cloned()
            {
                let n = rng.below(300);
                items.extend(std::iter::repeat_n(first, n));
            }
        }
        11 => {
            // Rename, so a reference now points elsewhere or nowhere.
            if let Json::Object(map) = json {
                let name = names
                    .get(rng.below(names.len() + 1))
                    .cloned()
                    .unwrap_or_default();
                map.insert("name".to_owned(), json!(name));
            }
        }
        12 => {
            // A union of the value with a donor's.
            let inner = json.take();
            *json = json!([inner, donor.clone()]);
        }
        _ => {
            if let Json::Object(map) = json {
                map.insert("order".to_owned(), random_json(rng, names, 0));
            }
        }
    }
}

/// What one case runs: parse, and for valid schemas, compatibility against three earlier
/// valid schemas both ways and under two modes, and encoding of a record that leaves every field to its
/// default.
fn exercise(schema: &Json, others: &[Schema]) -> Option<Schema> {
    let text = schema.to_string();
    let parsed = Schema::parse_str(&text).ok()?;
    for other in others {
        let _ = check_reader_writer(&parsed, other);
        let _ = check_reader_writer(other, &parsed);
        for mode in [
            CompatibilityMode::FullTransitive,
            CompatibilityMode::Backward,
        ] {
            let _ = check_compatibility(mode, &parsed, std::slice::from_ref(other));
        }
    }
    let codec = EventCodec::new("s", 1, parsed.clone());
    let _ = codec.encode_value(&Value::Record(Vec::new()));
    Some(parsed)
}

#[test]
fn generated_schemas_never_crash_or_hang() {
    let cases: usize = std::env::var("OUTBOX_GENERATED_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("OUTBOX_GENERATED_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_0bb0_c0de_0012);
    let progress = Arc::new(AtomicUsize::new(0));
    let current = Arc::new(Mutex::new(String::new()));
    let worker = {
        let (progress, current) = (Arc::clone(&progress), Arc::clone(&current));
        std::thread::Builder::new()
            .name("generated".to_owned())
            .spawn(move || run(seed, cases, &progress, &current))
            .expect("thread")
    };
    let mut last = (0, Instant::now());
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        let done = progress.load(Ordering::Relaxed);
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > HANG_GUARD {
            let case = current.lock().map(|c| c.clone()).unwrap_or_default();
            panic!("case {done} (seed {seed}) hung for {HANG_GUARD:?}: {case}");
        }
    }
    let stats = worker
        .join()
        .unwrap_or_else(|_| panic!("a case panicked (seed {seed})"));
    eprintln!(
        "{cases} generated schemas: {} valid, {} pairs compared (seed {seed})",
        stats.0, stats.1
    );
    assert!(stats.0 > cases / 20, "too few valid schemas: {}", stats.0);
}

fn run(seed: u64, cases: usize, progress: &AtomicUsize, current: &Mutex<String>) -> (usize, usize) {
    let seeds = seeds();
    let mut rng = Rng(seed | 1);
    let mut valid: Vec<Schema> = Vec::new();
    let (mut ok, mut pairs) = (0, 0);
    for case in 0..cases {
        let mut schema = rng.pick(&seeds).clone();
        let donor = rng.pick(&seeds).clone();
        let mut names = Vec::new();
        collect_names(&schema, &mut names);
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut schema, &names, &donor);
        }
        if let Ok(mut c) = current.lock() {
            *c = schema.to_string();
        }
        let others: Vec<Schema> = (0..3)
            .filter(|_| !valid.is_empty())
            .map(|_| valid[rng.below(valid.len())].clone())
            .collect();
        if let Some(parsed) = exercise(&schema, &others) {
            ok += 1;
            pairs += others.len();
            if valid.len() < 256 {
                valid.push(parsed);
            } else {
                let i = rng.below(valid.len());
                valid[i] = parsed;
            }
        }
        progress.store(case + 1, Ordering::Relaxed);
    }
    (ok, pairs)
}

/// Our verdicts beside the PyPI `avro` package's (an independent implementation) on 10,000
/// generated pairs of valid schemas, when `OUTBOX_PYTHON` names a Python with `avro`
/// installed. Every difference is printed; the expected ones are Java rules the Python
/// package does not follow (see `explained`); any other fails the test.
#[test]
fn a_second_oracle_agrees_on_generated_pairs() {
    let Ok(python) = std::env::var("OUTBOX_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but OUTBOX_PYTHON is not set"
        );
        eprintln!("skipping: OUTBOX_PYTHON is not set");
        return;
    };
    let seeds = seeds();
    let mut rng = Rng(0x0a1c_0de5_eed0_0012);
    let mut valid: Vec<Schema> = seeds
        .iter()
        .filter_map(|s| Schema::parse_json(s).ok())
        .collect();
    let mut pairs: Vec<(Schema, Schema)> = Vec::new();
    while pairs.len() < 10_000 {
        let mut schema = rng.pick(&seeds).clone();
        let donor = rng.pick(&seeds).clone();
        let mut names = Vec::new();
        collect_names(&schema, &mut names);
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut schema, &names, &donor);
        }
        let Ok(parsed) = Schema::parse_json(&schema) else {
            continue;
        };
        let other = valid[rng.below(valid.len())].clone();
        pairs.push((parsed.clone(), other.clone()));
        pairs.push((other, parsed.clone()));
        valid.push(parsed);
    }
    let input: String = pairs
        .iter()
        .map(|(r, w)| {
            format!(
                "{}\n",
                json!({"reader": r.canonical_json(), "writer": w.canonical_json()})
            )
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/avro_oracle.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        stdin.write_all(input.as_bytes()).expect("write pairs");
    });
    let out = child.wait_with_output().expect("python output");
    writer.join().expect("writer");
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Json>(l).expect("JSON line")["verdict"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(verdicts.len(), pairs.len(), "one verdict per pair");
    let (mut same, mut explained_count, mut unexplained) = (0, 0, Vec::new());
    for ((reader, writer), theirs) in pairs.iter().zip(&verdicts) {
        let found = check_reader_writer(reader, writer);
        let ours = if found.is_empty() {
            "compatible"
        } else {
            "incompatible"
        };
        if ours == theirs {
            same += 1;
        } else if let Some(why) = explained(&found, theirs, reader, writer) {
            explained_count += 1;
            eprintln!("differs ({why}): ours {ours}, avro {theirs}");
        } else {
            unexplained.push(format!(
                "ours {ours} {found:?}, avro {theirs}\nreader: {}\nwriter: {}",
                reader.canonical_json(),
                writer.canonical_json()
            ));
        }
    }
    eprintln!(
        "{} pairs: {same} agree, {explained_count} differ for known reasons, {} unexplained",
        pairs.len(),
        unexplained.len()
    );
    assert!(unexplained.is_empty(), "{}", unexplained.join("\n\n"));
}

/// Why a verdict may differ from the Python checker's, if the difference is a known one:
/// Java's rules (which Confluent runs, and we follow) that the Python package does not.
fn explained(
    found: &[outbox_core::compat::Incompatibility],
    theirs: &str,
    reader: &Schema,
    writer: &Schema,
) -> Option<&'static str> {
    use outbox_core::compat::IncompatibilityKind as K;
    if theirs.contains("Undefined type: ")
        || theirs.contains("Could not make an Avro Schema object from ")
    {
        // Java's parser (1.12) resolves names once the whole schema is read, so a name may
        // be used before its definition, and a defined name may be written as an object,
        // `{"type": "Name"}`; the Python package resolves neither. Our parser refuses a
        // name that is defined nowhere, so the name here is defined in the schema.
        return Some("a name used before its definition, or written as {\"type\": name}");
    }
    let non_string_logical_type = |schema: &Schema| {
        let json = schema.canonical_json();
        json.contains("\"logicalType\":{") || json.contains("\"logicalType\":[")
    };
    if theirs.contains("SchemaParseException")
        && (non_string_logical_type(reader) || non_string_logical_type(writer))
    {
        // Java reads a `logicalType` that is not a string as no logical type (the schema
        // stays its plain type, the value a property); the Python package refuses it.
        return Some("a logicalType that is not a string");
    }
    if theirs.contains("unhashable type") {
        // Java keeps any JSON value as a schema property; the Python package hashes
        // properties and fails on an object or array value.
        return Some("a property with a JSON object or array value");
    }
    if theirs.contains("Enum default 'None'") {
        // Java reads `"default": null` on an enum as no default.
        return Some("an enum default of null");
    }
    if theirs.contains("Unknown schema type: error") {
        // Java parses `error` (a protocol's record type) as a record anywhere.
        return Some("the error type");
    }
    if found.iter().any(|i| i.kind == K::AmbiguousField) {
        // Java throws on a reader field matching two writer fields; Python picks one.
        return Some("ambiguous field, which Java refuses");
    }
    None
}
