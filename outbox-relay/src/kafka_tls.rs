//! The start-up check that Kafka's client certificate and key belong together.
//!
//! librdkafka refuses a mismatched pair when it creates the client, in OpenSSL's words
//! ("ssl.key.location failed: ... key values mismatch"), which names neither file. Comparing
//! the key's public half with the certificate's first names both.

use std::sync::Arc;

use outbox_core::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{Error as TlsError, InconsistentKeys};

use crate::config::KafkaConfig;
use crate::secrets::read_secret_file;

/// The properties that name the client certificate and key, as files or inline PEM.
const PAIRS: [(&str, &str); 2] = [
    ("ssl.certificate.location", "ssl.key.location"),
    ("ssl.certificate.pem", "ssl.key.pem"),
];

/// Refuses a client key that does not belong to the client certificate.
///
/// What cannot be compared here (an encrypted key, a key type the check does not know, an
/// unreadable file) is left to librdkafka, which reports it in its own words.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming both properties and, for files, both paths.
pub fn check_client_pair(kafka: &KafkaConfig) -> Result<()> {
    for (cert_key, key_key) in PAIRS {
        let (Some(cert), Some(key)) = (
            kafka.properties.get(cert_key),
            kafka.properties.get(key_key),
        ) else {
            continue;
        };
        let files = cert_key.ends_with("location");
        let read = |property: &str, value: &str| -> Option<String> {
            if files {
                read_secret_file(&format!("kafka.properties.{property}"), value).ok()
            } else {
                Some(value.to_owned())
            }
        };
        let (Some(cert_pem), Some(key_pem)) = (read(cert_key, cert), read(key_key, key)) else {
            continue;
        };
        if mismatched(&cert_pem, &key_pem) {
            let reason = if files {
                format!("the client key {key:?} does not belong to the client certificate {cert:?}")
            } else {
                format!(
                    "the client key in {key_key} does not belong to the certificate in {cert_key}"
                )
            };
            return Err(Error::InvalidConfig {
                key: format!("kafka.properties.{cert_key}/{key_key}"),
                reason,
            });
        }
    }
    Ok(())
}

/// Whether `key_pem` is known not to be the private half of `cert_pem`'s first certificate.
fn mismatched(cert_pem: &str, key_pem: &str) -> bool {
    let Some(Ok(cert)) = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).next() else {
        return false;
    };
    let Ok(key) = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) else {
        return false;
    };
    let Ok(signing) = default_provider().key_provider.load_private_key(key) else {
        return false;
    };
    matches!(
        CertifiedKey::new(vec![cert], Arc::clone(&signing)).keys_match(),
        Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch))
    )
}
