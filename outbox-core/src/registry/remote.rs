//! A remote Confluent-compatible schema registry as a [`SchemaStore`] (`https://` needs the
//! `registry-tls` feature): the writers register at start-up against it instead of the embedded
//! tables, and cache the ids, so publishing never does a network round trip afterwards.
//!
//! The HTTP calls block (no async runtime in core): they happen at start-up and on cache
//! misses, and a blocking store also lets diesel drive the registry engine.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::store::{RegisteredSchema, SchemaStore};
use crate::compat::CompatibilityMode;
use crate::schema::Schema;
use crate::{Error, Result};

/// Where the remote registry is and how to reach it. `Debug` redacts the password, the token
/// and any credentials in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteRegistryConfig {
    /// Base URL, like `https://registry:8081`.
    pub url: String,
    /// Basic authentication (user, password).
    pub basic_auth: Option<(String, String)>,
    /// A bearer token (instead of basic authentication).
    pub bearer_token: Option<String>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// PEM certificates of the CAs to trust for `https://` instead of the Mozilla roots
    /// (needs the `registry-tls` feature).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RemoteRegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistryConfig")
            .field("url", &without_credentials(&self.url))
            .field(
                "basic_auth",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|(user, _)| (user, "[redacted]")),
            )
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "[redacted]"),
            )
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .finish()
    }
}

/// `url` with any `user:password@` replaced, for messages.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The last `@` anywhere, not only before the first `/`, `?` or `#`: a password typed with
    // one of those unencoded would otherwise be taken for the path and shown.
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://[redacted]@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

impl RemoteRegistryConfig {
    /// A registry at `url`, without authentication, with a 10 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            basic_auth: None,
            bearer_token: None,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }
}

/// A [`SchemaStore`] over a Confluent-compatible registry's REST API.
#[derive(Debug, Clone)]
pub struct RemoteSchemaStore {
    config: RemoteRegistryConfig,
    agent: ureq::Agent,
    /// Why the client could not be set up (a bad CA file), reported by every call.
    setup_error: Option<String>,
}

/// Percent-encodes a path segment (subjects may hold any character).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

enum Reply {
    Ok(Json),
    NotFound,
}

impl RemoteSchemaStore {
    /// A store for the registry `config` describes.
    /// A bad `ca_pem` is reported by every call.
    pub fn new(config: RemoteRegistryConfig) -> Self {
        let builder = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false);
        let (builder, setup_error) = match &config.ca_pem {
            None => (builder, None),
            Some(pem) => trusting(builder, pem),
        };
        Self {
            config,
            agent: builder.build().into(),
            setup_error,
        }
    }

    fn fail(&self, operation: &'static str, retryable: bool, message: &str) -> Error {
        // A proxy's or registry's error page may echo the request, Authorization included.
        let mut secrets = Vec::new();
        if let Some(token) = &self.config.bearer_token {
            secrets.push(token.clone());
        }
        if let Some((user, password)) = &self.config.basic_auth {
            secrets.push(base64(&format!("{user}:{password}")));
            secrets.push(password.clone());
        }
        let message = secrets
            .iter()
            .filter(|s| s.len() >= 3)
            .fold(message.to_owned(), |text, secret| {
                text.replace(secret.as_str(), "[redacted]")
            });
        Error::Store {
            operation,
            retryable,
            source: format!(
                "{} ({}): {message}",
                without_credentials(&self.config.url),
                operation
            )
            .into(),
        }
    }

    fn call(
        &self,
        operation: &'static str,
        method: &str,
        path: &str,
        body: Option<Json>,
    ) -> Result<Reply> {
        if let Some(e) = &self.setup_error {
            return Err(self.fail(operation, false, e));
        }
        let url = format!("{}{path}", self.config.url.trim_end_matches('/'));
        let auth = match (&self.config.bearer_token, &self.config.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, Some((user, password))) => {
                Some(format!("Basic {}", base64(&format!("{user}:{password}"))))
            }
            (None, None) => None,
        };
        let accept = "application/vnd.schemaregistry.v1+json, application/json";
        let response = match (method, body) {
            ("GET" | "DELETE", _) => {
                let mut request = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                request = request.header("Accept", accept);
                if let Some(auth) = &auth {
                    request = request.header("Authorization", auth);
                }
                request.call()
            }
            (_, body) => {
                let mut request = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                request = request
                    .header("Accept", accept)
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json");
                if let Some(auth) = &auth {
                    request = request.header("Authorization", auth);
                }
                request.send(body.unwrap_or(Json::Null).to_string())
            }
        };
        let mut response = response.map_err(|e| self.fail(operation, true, &e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.fail(operation, true, &e.to_string()))?;
        let json: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
        match status {
            200..=299 => Ok(Reply::Ok(json)),
            404 => Ok(Reply::NotFound),
            409 => Err(Error::Conflict {
                what: format!("the remote registry refused the schema: {json}"),
            }),
            422 if json.get("error_code").and_then(Json::as_u64) == Some(42201) => {
                Err(Error::InvalidSchema {
                    reason: json
                        .get("message")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                })
            }
            _ => Err(self.fail(operation, status >= 500, &format!("HTTP {status}: {json}"))),
        }
    }

    fn registered(subject: &str, json: &Json) -> Result<RegisteredSchema> {
        let number = |key: &str| {
            json.get(key)
                .and_then(Json::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(-1)
        };
        let schema = json
            .get("schema")
            .and_then(Json::as_str)
            .unwrap_or_default();
        RegisteredSchema::from_row(number("id"), subject, number("version"), schema)
    }
}

impl SchemaStore for RemoteSchemaStore {
    async fn versions(&self, subject: &str) -> Result<Vec<RegisteredSchema>> {
        let path = format!("/subjects/{}/versions", segment(subject));
        let Reply::Ok(list) = self.call("list versions", "GET", &path, None)? else {
            return Ok(Vec::new());
        };
        let numbers: Vec<u64> = list
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_u64).collect())
            .unwrap_or_default();
        numbers
            .into_iter()
            .map(
                |v| match self.call("read version", "GET", &format!("{path}/{v}"), None)? {
                    Reply::Ok(json) => Self::registered(subject, &json),
                    Reply::NotFound => Err(Error::VersionNotFound {
                        subject: subject.to_owned(),
                        version: u32::try_from(v).unwrap_or_default(),
                    }),
                },
            )
            .collect()
    }

    async fn insert_version(
        &self,
        subject: &str,
        _version: u32,
        schema: &Schema,
    ) -> Result<RegisteredSchema> {
        // The remote registry assigns the version (and checks compatibility itself).
        let body = json!({"schema": schema.canonical_json()});
        let path = format!("/subjects/{}/versions", segment(subject));
        self.call("register schema", "POST", &path, Some(body.clone()))?;
        match self.call(
            "look up schema",
            "POST",
            &format!("/subjects/{}", segment(subject)),
            Some(body),
        )? {
            Reply::Ok(json) => Self::registered(subject, &json),
            Reply::NotFound => Err(Error::SubjectNotFound {
                subject: subject.to_owned(),
            }),
        }
    }

    async fn schema_by_id(&self, id: u32) -> Result<Option<Schema>> {
        match self.call(
            "read schema by id",
            "GET",
            &format!("/schemas/ids/{id}"),
            None,
        )? {
            Reply::Ok(json) => json
                .get("schema")
                .and_then(Json::as_str)
                .map(super::stored_schema)
                .transpose(),
            Reply::NotFound => Ok(None),
        }
    }

    async fn subjects(&self) -> Result<Vec<String>> {
        let Reply::Ok(list) = self.call("list subjects", "GET", "/subjects", None)? else {
            return Ok(Vec::new());
        };
        let mut subjects: Vec<String> = list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        subjects.sort();
        Ok(subjects)
    }

    async fn compatibility(&self, subject: Option<&str>) -> Result<Option<CompatibilityMode>> {
        let path = subject.map_or_else(
            || "/config".to_owned(),
            |s| format!("/config/{}", segment(s)),
        );
        match self.call("read compatibility", "GET", &path, None)? {
            Reply::Ok(json) => json
                .get("compatibilityLevel")
                .or_else(|| json.get("compatibility"))
                .and_then(Json::as_str)
                .map(str::parse)
                .transpose(),
            Reply::NotFound => Ok(None),
        }
    }

    async fn set_compatibility(
        &self,
        subject: Option<&str>,
        mode: Option<CompatibilityMode>,
    ) -> Result<()> {
        let path = subject.map_or_else(
            || "/config".to_owned(),
            |s| format!("/config/{}", segment(s)),
        );
        match mode {
            Some(mode) => self.call(
                "set compatibility",
                "PUT",
                &path,
                Some(json!({"compatibility": mode.as_str()})),
            )?,
            None => self.call("delete compatibility", "DELETE", &path, None)?,
        };
        Ok(())
    }
}

/// Standard base64, for the basic authentication header.
type AgentConfig = ureq::config::ConfigBuilder<ureq::typestate::AgentScope>;

/// `builder` trusting exactly the CA certificates in `pem`.
/// On a bad `pem`, `builder` unchanged and why.
#[cfg(feature = "registry-tls")]
fn trusting(builder: AgentConfig, pem: &[u8]) -> (AgentConfig, Option<String>) {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return (builder, Some(format!("the CA file is not PEM: {e}"))),
        }
    }
    if certs.is_empty() {
        return (
            builder,
            Some("the CA file holds no PEM certificate".to_owned()),
        );
    }
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .build();
    (builder.tls_config(tls), None)
}

#[cfg(not(feature = "registry-tls"))]
fn trusting(builder: AgentConfig, _pem: &[u8]) -> (AgentConfig, Option<String>) {
    let why = "a CA for the remote registry needs outbox-core's registry-tls feature";
    (builder, Some(why.to_owned()))
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{RemoteRegistryConfig, RemoteSchemaStore, base64, segment, without_credentials};
    use std::io::{BufRead, BufReader, Write};

    #[test]
    fn credentials_leave_urls_whatever_the_password_holds() {
        for url in [
            "https://reader:pa/ss-Secret@registry:8081",
            "https://reader:pa?ss-Secret@registry:8081",
            "https://reader:pa#ss-Secret@registry:8081",
            "https://reader:pa@ss-Secret@registry:8081/base",
        ] {
            let shown = without_credentials(url);
            assert!(!shown.contains("Secret"), "{url} -> {shown}");
            assert!(shown.starts_with("https://[redacted]@"), "{shown}");
        }
        assert_eq!(
            without_credentials("https://registry:8081/base"),
            "https://registry:8081/base"
        );
    }

    /// A registry (or proxy) whose error page echoes the request headers.
    fn echoing_server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let Ok(mut stream) = stream else { return };
                let mut request = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                while let Ok(n) = reader.read_line(&mut request) {
                    if n <= 2 {
                        break;
                    }
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    request.len(),
                    request
                );
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn an_error_page_echoing_the_request_shows_no_credential() {
        let mut basic = RemoteRegistryConfig::new(echoing_server());
        basic.basic_auth = Some(("reader".into(), "basic-Secret".into()));
        let mut bearer = RemoteRegistryConfig::new(echoing_server());
        bearer.bearer_token = Some("token-Secret".into());
        for (config, encoded) in [
            (basic, base64("reader:basic-Secret")),
            (bearer, "token-Secret".to_owned()),
        ] {
            let store = RemoteSchemaStore::new(config);
            let error = match store.call("read schema", "GET", "/schemas/ids/1", None) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("a 502 is an error"),
            };
            assert!(error.contains("502"), "{error}");
            assert!(
                error.to_ascii_lowercase().contains("authorization"),
                "the echo is there: {error}"
            );
            assert!(!error.contains(&encoded), "credential leaked: {error}");
            assert!(!error.contains("Secret"), "credential leaked: {error}");
        }
    }

    #[test]
    fn basic_auth_and_path_encoding() {
        assert_eq!(base64("user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64("a"), "YQ==");
        assert_eq!(base64("ab"), "YWI=");
        assert_eq!(segment("orders.v2-value"), "orders.v2-value");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
