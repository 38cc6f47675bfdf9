//! The environment's secrets and properties, and their precedence over the file.

use super::*;
use crate::config::Overrides;

fn reason(e: Error) -> (String, String) {
    match e {
        Error::InvalidConfig { key, reason } => (key, reason),
        other => panic!("not InvalidConfig: {other}"),
    }
}

#[test]
fn kafka_variable_names_map_as_confluent_images_do() {
    for (name, property) in [
        ("SASL_PASSWORD", "sasl.password"),
        ("BOOTSTRAP_SERVERS", "bootstrap.servers"),
        ("SSL_CA_LOCATION", "ssl.ca.location"),
        (
            "SASL_OAUTHBEARER_CLIENT_SECRET",
            "sasl.oauthbearer.client.secret",
        ),
        ("SOME__UNDERSCORE", "some_underscore"),
        ("SOME___DASH", "some-dash"),
        ("acks", "acks"),
    ] {
        assert_eq!(kafka_property_name(name).as_deref(), Some(property));
    }
    for bad in ["", "A____B", "_X", "X_", "A-B", "Ä", "A.B", "A B"] {
        assert_eq!(kafka_property_name(bad), None, "{bad:?}");
    }
}

#[test]
fn secrets_come_from_variables_or_files_never_both() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("secret");
    std::fs::write(&file, "from-file\n").expect("write");
    let path = file.display().to_string();
    let env = Environment::from_pairs([
        ("OUTBOX_A", "plain"),
        ("OUTBOX_B_FILE", path.as_str()),
        ("OUTBOX_C", "x"),
        ("OUTBOX_C_FILE", path.as_str()),
        ("NOT_OURS", "ignored"),
    ]);
    assert_eq!(env.value("OUTBOX_A").expect("a").as_deref(), Some("plain"));
    assert_eq!(
        env.value("OUTBOX_B").expect("b").as_deref(),
        Some("from-file"),
        "one trailing newline is dropped"
    );
    assert_eq!(env.value("OUTBOX_MISSING").expect("none"), None);
    let (key, why) = reason(env.value("OUTBOX_C").expect_err("both"));
    assert_eq!(key, "OUTBOX_C");
    assert!(why.contains("OUTBOX_C_FILE"), "{why}");
    assert!(
        !format!("{env:?}").contains("plain"),
        "Debug shows names only"
    );
}

#[test]
fn an_unreadable_secret_file_names_the_variable_and_path_not_content() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("nope").display().to_string();
    let as_dir = dir.path().display().to_string();
    for path in [&missing, &as_dir] {
        let env = Environment::from_pairs([("OUTBOX_KAFKA_SASL_PASSWORD_FILE", path.as_str())]);
        let (key, why) = reason(env.kafka_properties().expect_err("unreadable"));
        assert_eq!(key, "OUTBOX_KAFKA_SASL_PASSWORD_FILE");
        assert!(why.contains(path.as_str()), "{why}");
    }
}

#[test]
fn two_variables_for_one_property_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("secret");
    std::fs::write(&file, "file-Secret").expect("write");
    let path = file.display().to_string();
    for other in [
        "OUTBOX_KAFKA_sasl_password",
        "OUTBOX_KAFKA_Sasl_Password_FILE",
    ] {
        let value = if other.ends_with("_FILE") {
            path.as_str()
        } else {
            "env-Secret"
        };
        let env =
            Environment::from_pairs([("OUTBOX_KAFKA_SASL_PASSWORD", "x-Secret"), (other, value)]);
        let (key, why) = reason(env.kafka_properties().expect_err("two sources"));
        assert!(why.contains("sasl.password"), "{why}");
        assert!(
            [key.as_str(), why.as_str()]
                .iter()
                .any(|t| t.contains(other)),
            "{other} not named: {key}: {why}"
        );
        assert!(!why.contains("Secret"), "{why}");
    }
}

#[test]
fn an_endless_or_huge_secret_file_is_refused_not_read_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let huge = dir.path().join("huge");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(MAX_SECRET_FILE_BYTES + 1)
        .expect("sparse file");
    let huge = huge.display().to_string();
    for path in [huge.as_str(), "/dev/zero"] {
        let env = Environment::from_pairs([("OUTBOX_KAFKA_SASL_PASSWORD_FILE", path)]);
        let (key, why) = reason(env.kafka_properties().expect_err("too large"));
        assert_eq!(key, "OUTBOX_KAFKA_SASL_PASSWORD_FILE");
        assert!(why.contains("more than"), "{why}");
    }
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [b's', 0xff, b'e']).expect("write");
    let env = Environment::from_pairs([(
        "OUTBOX_KAFKA_SASL_PASSWORD_FILE",
        binary.to_str().expect("path"),
    )]);
    let (_, why) = reason(env.kafka_properties().expect_err("not UTF-8"));
    assert!(why.contains("not UTF-8"), "{why}");
}

#[test]
fn malformed_environment_is_refused_with_the_variable_named() {
    use std::os::unix::ffi::OsStringExt;
    let (key, _) = reason(
        Environment::from_os_vars([(
            OsString::from("OUTBOX_KAFKA_SASL_PASSWORD"),
            OsString::from_vec(vec![0xff, 0xfe]),
        )])
        .expect_err("not UTF-8"),
    );
    assert_eq!(key, "OUTBOX_KAFKA_SASL_PASSWORD");
    let other =
        Environment::from_os_vars([(OsString::from("HOME"), OsString::from_vec(vec![0xff]))]);
    assert!(other.is_ok(), "variables not ours are not read");
    let env = Environment::from_pairs([("OUTBOX_KAFKA_SASL-PASSWORD", "x")]);
    let (key, why) = reason(env.kafka_properties().expect_err("bad name"));
    assert_eq!(key, "OUTBOX_KAFKA_SASL-PASSWORD");
    assert!(!why.contains('x'.to_string().repeat(2).as_str()));
}

#[test]
fn environment_sets_properties_and_registry_and_flags_still_win() {
    let env = Environment::from_pairs([
        ("OUTBOX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("OUTBOX_KAFKA_SASL_PASSWORD", "env-secret"),
        ("OUTBOX_REGISTRY_URL", "registry:8081"),
        ("OUTBOX_REGISTRY_USERNAME", "reader"),
        ("OUTBOX_REGISTRY_PASSWORD", "registry-secret"),
        ("OUTBOX_REGISTRY_CA", "/etc/ca.pem"),
    ]);
    let mut config = RelayConfig::default();
    config
        .kafka
        .properties
        .insert("security.protocol".into(), "PLAINTEXT".into());
    apply_environment(&mut config, &env).expect("apply");
    assert_eq!(config.kafka.properties["security.protocol"], "SASL_SSL");
    assert_eq!(config.kafka.properties["sasl.password"], "env-secret");
    config.apply(Overrides {
        kafka_properties: vec![("sasl.password".into(), "flag-secret".into())],
        ..Overrides::default()
    });
    assert_eq!(config.kafka.properties["sasl.password"], "flag-secret");
    let (key, _) = reason(config.remote_registry().expect_err("no such CA file"));
    assert_eq!(key, "registry.ca");
    config.registry.ca = Some("/dev/zero".into());
    let (key, why) = reason(config.remote_registry().expect_err("a device"));
    assert_eq!(key, "registry.ca");
    assert!(why.contains("larger than"), "{why}");
    config.registry.ca = None;
    let remote = config.remote_registry().expect("ok").expect("remote");
    assert_eq!(remote.url, "https://registry:8081", "no scheme means https");
    assert_eq!(
        remote.basic_auth,
        Some(("reader".into(), "registry-secret".into()))
    );
}

#[test]
fn served_port_credentials_come_from_files_too() {
    let dir = tempfile::tempdir().expect("dir");
    let password = dir.path().join("password");
    std::fs::write(&password, "registry-pass\n").expect("write");
    let token = dir.path().join("token");
    std::fs::write(&token, "metrics-token\r\n").expect("write");
    let (password, token) = (password.display().to_string(), token.display().to_string());
    let env = Environment::from_pairs([
        ("OUTBOX_REGISTRY_AUTH_PASSWORD_FILE", password.as_str()),
        ("OUTBOX_HTTP_AUTH_BEARER_TOKEN_FILE", token.as_str()),
    ]);
    let mut config = RelayConfig::default();
    apply_environment(&mut config, &env).expect("apply");
    assert_eq!(
        config.registry.auth.password.as_deref(),
        Some("registry-pass")
    );
    assert_eq!(
        config.http.auth.bearer_token.as_deref(),
        Some("metrics-token")
    );
    let both = Environment::from_pairs([
        ("OUTBOX_HTTP_AUTH_PASSWORD", "x"),
        ("OUTBOX_HTTP_AUTH_PASSWORD_FILE", password.as_str()),
    ]);
    let (key, _) = reason(apply_environment(&mut config, &both).expect_err("both"));
    assert_eq!(key, "OUTBOX_HTTP_AUTH_PASSWORD");
}

#[test]
fn the_bootstrap_servers_flag_wins_over_the_environment_property() {
    let env = Environment::from_pairs([("OUTBOX_KAFKA_BOOTSTRAP_SERVERS", "env-broker:9092")]);
    let mut config = RelayConfig::default();
    apply_environment(&mut config, &env).expect("apply");
    config.apply(Overrides {
        bootstrap_servers: Some("flag-broker:9093".into()),
        ..Overrides::default()
    });
    let client = crate::producer::client_config(&config.kafka).expect("config");
    assert_eq!(client.get("bootstrap.servers"), Some("flag-broker:9093"));
}

#[test]
fn the_database_password_goes_into_the_url_percent_encoded() {
    let secret = "p@ss:w/rd%?#";
    let env = Environment::from_pairs([("OUTBOX_DATABASE_PASSWORD", secret)]);
    let mut config = RelayConfig {
        database_url: Some("postgres://app@db:5432/app?sslmode=verify-full".into()),
        ..RelayConfig::default()
    };
    apply_database_password(&mut config, &env).expect("apply");
    let url = url::Url::parse(config.database_url.as_deref().expect("url")).expect("parse");
    assert_eq!(url.username(), "app");
    let decoded = percent_encoding::percent_decode_str(url.password().expect("password"))
        .decode_utf8()
        .expect("utf-8");
    assert_eq!(decoded, secret);
    assert_eq!(url.query(), Some("sslmode=verify-full"));

    for (url, key) in [
        (Some("sqlite://o.db"), "database_url"),
        (Some("not a url"), "database_url"),
        (None, "OUTBOX_DATABASE_PASSWORD"),
    ] {
        let mut config = RelayConfig {
            database_url: url.map(str::to_owned),
            ..RelayConfig::default()
        };
        let (got, why) = reason(apply_database_password(&mut config, &env).expect_err("refused"));
        assert_eq!(got, key, "{url:?}");
        assert!(!why.contains(secret), "{why}");
    }
}
