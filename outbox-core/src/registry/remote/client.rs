//! The blocking HTTP client of a Confluent-compatible registry's REST API: one call, its
//! authentication, its answer classified, and no credential in any error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value as Json;

use super::config::{RemoteRegistryConfig, without_credentials};
use crate::{Error, Result};

/// What a path segment keeps unencoded: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment (subjects may hold any character).
pub(super) fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// A successful answer, or 404.
pub(super) enum Reply {
    /// A 2xx answer's body (JSON, or the text as a JSON string).
    Ok(Json),
    /// 404: the subject, version, schema or setting does not exist.
    NotFound,
}

/// The HTTP methods the registry API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// A blocking client for one registry.
#[derive(Debug)]
pub(super) struct Client {
    config: RemoteRegistryConfig,
    agent: ureq::Agent,
    /// Why the client could not be set up (a bad CA file), reported by every call.
    setup_error: Option<String>,
}

impl Client {
    /// A client for the registry `config` describes; a bad `ca_pem` is reported by every call.
    pub(super) fn new(config: RemoteRegistryConfig) -> Self {
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

    /// The error for a failed `operation`, without any credential `message` may echo.
    fn fail(&self, operation: &'static str, retryable: bool, message: &str) -> Error {
        // A proxy's or registry's error page may echo the request, Authorization included.
        let mut secrets = Vec::new();
        if let Some(token) = &self.config.bearer_token {
            secrets.push(token.clone());
        }
        if let Some((user, password)) = &self.config.basic_auth {
            secrets.push(BASE64.encode(format!("{user}:{password}")));
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

    /// Sends one request (blocking, bounded by the configured timeout) and classifies the
    /// answer: 2xx and 404 are replies, 409 a conflict, 422/42201 an invalid schema, 5xx and
    /// transport failures retryable store errors, the rest permanent ones.
    pub(super) fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Reply> {
        if let Some(e) = &self.setup_error {
            return Err(self.fail(operation, false, e));
        }
        let url = format!("{}{path}", self.config.url.trim_end_matches('/'));
        let auth = match (&self.config.bearer_token, &self.config.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, Some((user, password))) => Some(format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{password}"))
            )),
            (None, None) => None,
        };
        let accept = "application/vnd.schemaregistry.v1+json, application/json";
        let response = match method {
            Method::Get | Method::Delete => {
                let mut request = if method == Method::Get {
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
            Method::Post | Method::Put => {
                let mut request = if method == Method::Put {
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
                request.send(body.unwrap_or(&Json::Null).to_string())
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
}

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

#[cfg(test)]
mod tests {
    use super::{BASE64, Client, Method, segment};
    use crate::registry::RemoteRegistryConfig;
    use base64::Engine as _;
    use std::io::{BufRead, BufReader, Write};

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
            (basic, BASE64.encode("reader:basic-Secret")),
            (bearer, "token-Secret".to_owned()),
        ] {
            let client = Client::new(config);
            let error = match client.call("read schema", Method::Get, "/schemas/ids/1", None) {
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
        assert_eq!(BASE64.encode("user:pass"), "dXNlcjpwYXNz");
        assert_eq!(BASE64.encode("a"), "YQ==");
        assert_eq!(BASE64.encode("ab"), "YWI=");
        assert_eq!(segment("orders.v2-value"), "orders.v2-value");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
