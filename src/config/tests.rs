use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = Settings::from_sources("", env(&[])).unwrap();
    assert_eq!(s.http.listen, "127.0.0.1:8080");
    assert_eq!(s.password.min_length, 12);
    assert_eq!((s.argon2.memory_kib, s.argon2.iterations, s.argon2.parallelism), (19456, 2, 1));
    assert_eq!(s.jwt.ttl, Duration::from_secs(3600));
    assert!(s.database.migrate_on_start);
    assert!(!s.http.gateway_secret.is_set());
}

#[test]
fn yaml_then_environment_with_types() {
    let yaml = "database:\n  url: postgres://a@b/c\n  pool_size: 4\njwt:\n  ttl: 2h\n";
    let s = Settings::from_sources(
        yaml,
        env(&[
            ("IAMD_DATABASE_POOL_SIZE", "9"),
            ("IAMD_HTTP_GATEWAY_SECRET", "12345"),
            ("IAMD_DATABASE_MIGRATE_ON_START", "false"),
            ("IAMD_SIGNING_GRACE_PERIOD", "3h"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(s.database.url.expose(), "postgres://a@b/c");
    assert_eq!(s.database.pool_size, 9);
    assert_eq!(s.http.gateway_secret.expose(), "12345");
    assert!(!s.database.migrate_on_start);
    assert_eq!(s.jwt.ttl, Duration::from_secs(7200));
    assert_eq!(s.signing.grace_period, Duration::from_secs(3 * 3600));
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = Settings::from_sources("database:\n  urll: x\n", env(&[])).unwrap_err();
    assert!(err.to_string().contains("database.urll"), "{err}");
    let err = Settings::from_sources("", env(&[("IAMD_HTTP_LISTN", "x")])).unwrap_err();
    assert!(err.to_string().contains("IAMD_HTTP_LISTN"), "{err}");
    assert!(Settings::from_sources("", env(&[("IAMD_CONFIG", "x"), ("IAMD_TEST_PG_URL", "y")])).is_ok());
}

#[test]
fn bad_values_are_refused() {
    assert!(Settings::from_sources("", env(&[("IAMD_DATABASE_POOL_SIZE", "many")])).is_err());
    assert!(Settings::from_sources("signing:\n  grace_period: 30m\n", env(&[])).is_err());
    assert!(Settings::from_sources("argon2:\n  memory_kib: 1\n", env(&[])).is_err());
    assert!(Settings::from_sources("password: [1, 2]\n", env(&[])).is_err());
}

#[test]
fn secrets_come_from_files_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "s3cret-value\n").unwrap();
    let s = Settings::from_sources("", env(&[("IAMD_HTTP_GATEWAY_SECRET_FILE", path.to_str().unwrap())]))
        .unwrap();
    assert_eq!(s.http.gateway_secret.expose(), "s3cret-value");
    assert!(!format!("{s:?}").contains("s3cret-value"));
    assert!(!serde_yaml::to_string(&s).unwrap().contains("s3cret-value"));
}

#[test]
fn every_key_is_documented_in_the_sample() {
    let sample = include_str!("../../iamd.sample.yaml");
    let mut leaves = Vec::new();
    collect_leaves(&serde_yaml::to_value(Settings::default()).unwrap(), "", &mut leaves);
    for (path, _) in leaves {
        assert!(sample.contains(&env_name(&path)), "iamd.sample.yaml does not document {path}");
    }
    // And the sample itself loads.
    Settings::from_sources(sample, env(&[])).unwrap();
}

#[test]
fn kafka_is_off_by_default_and_properties_parse() {
    let s = Settings::from_sources("", env(&[])).unwrap();
    assert!(!s.kafka.enabled());
    assert_eq!(
        (s.kafka.request_topic.as_str(), s.kafka.response_topic.as_str()),
        ("iam.request", "iam.response")
    );
    let s = Settings::from_sources(
        "",
        env(&[
            ("IAMD_KAFKA_BROKERS", "127.0.0.1:9092"),
            ("IAMD_KAFKA_MAX_IN_FLIGHT", "32"),
            ("IAMD_KAFKA_PROPERTIES", "session.timeout.ms=6000, debug=cgrp,fetch\nacks=all"),
        ]),
    )
    .unwrap();
    assert!(s.kafka.enabled());
    assert_eq!(s.kafka.max_in_flight, 32);
    assert_eq!(
        s.kafka.extra_properties().unwrap(),
        vec![
            ("session.timeout.ms".to_string(), "6000".to_string()),
            ("debug".to_string(), "cgrp,fetch".to_string()),
            ("acks".to_string(), "all".to_string())
        ]
    );
    assert!(!format!("{:?}", s.kafka).contains("6000"), "properties never print");
    let err =
        Settings::from_sources("", env(&[("IAMD_KAFKA_BROKERS", "b:1"), ("IAMD_KAFKA_PROPERTIES", "oops")]));
    assert!(err.unwrap_err().to_string().contains("not key=value"));
}

#[test]
fn cors_is_off_by_default_and_origins_come_from_yaml_or_a_comma_list() {
    let s = Settings::from_sources("", env(&[])).unwrap();
    assert!(!s.http.cors.enabled());
    let s = Settings::from_sources(
        "",
        env(&[("IAMD_HTTP_CORS_ALLOWED_ORIGINS", "https://app.example, http://localhost:3000,,")]),
    )
    .unwrap();
    assert_eq!(s.http.cors.allowed_origins, vec!["https://app.example", "http://localhost:3000"]);
    assert!(s.http.cors.enabled() && !s.http.cors.any_origin());
    let yaml = "http:\n  cors:\n    allowed_origins: [\"*\"]\n";
    let s = Settings::from_sources(yaml, env(&[])).unwrap();
    assert!(s.http.cors.any_origin());
    // The variable wins over the file; an empty variable turns CORS off.
    let s = Settings::from_sources(yaml, env(&[("IAMD_HTTP_CORS_ALLOWED_ORIGINS", "")])).unwrap();
    assert!(!s.http.cors.enabled());
    let err = Settings::from_sources("http:\n  cors:\n    allowed_origin: []\n", env(&[])).unwrap_err();
    assert!(err.to_string().contains("http.cors.allowed_origin"), "{err}");
}

#[test]
fn cors_origins_must_be_bare_origins() {
    for good in ["*", "https://app.example", "http://localhost:3000", "https://[::1]:8443"] {
        assert!(check_origin(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "app.example",
        "ftp://app.example",
        "https://app.example/",
        "https://app.example/path",
        "https://app.example?q=1",
        "https://user@app.example",
        "https://app.example:http",
        "https://",
    ] {
        assert!(check_origin(bad).is_err(), "{bad}");
    }
    let err = Settings::from_sources("", env(&[("IAMD_HTTP_CORS_ALLOWED_ORIGINS", "https://a.example/")]));
    assert!(format!("{:#}", err.unwrap_err()).contains("http.cors.allowed_origins"));
}

#[test]
fn the_trustgraph_preset_names_trustgraphs_topics_unless_they_are_set() {
    let s = Settings::from_sources("", env(&[("IAMD_KAFKA_PRESET", "trustgraph")])).unwrap();
    assert_eq!(
        (s.kafka.request_topic.as_str(), s.kafka.response_topic.as_str()),
        ("tg.request.iam", "tg.response.iam")
    );
    let s = Settings::from_sources(
        "kafka:\n  preset: trustgraph\n  response_topic: tg.response.iam-a\n",
        env(&[]),
    )
    .unwrap();
    assert_eq!(
        (s.kafka.request_topic.as_str(), s.kafka.response_topic.as_str()),
        ("tg.request.iam", "tg.response.iam-a")
    );
    let err = Settings::from_sources("", env(&[("IAMD_KAFKA_PRESET", "pulsar")])).unwrap_err();
    assert!(format!("{err:#}").contains("unknown preset 'pulsar'"), "{err:#}");
}

#[test]
fn the_legacy_jwt_key_is_netsocs_base64_or_its_files_bytes() {
    use base64::Engine;
    let key = "netsoc's jwt.key, at least 32 bytes long";
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let s = Settings::from_sources("", env(&[("IAMD_COMPAT_LEGACY_JWT_KEY", &b64)])).unwrap();
    assert_eq!(s.legacy_jwt_key().unwrap().as_deref(), Some(key.as_bytes()));
    assert_eq!(Settings::from_sources("", env(&[])).unwrap().legacy_jwt_key().unwrap(), None);
    let short = base64::engine::general_purpose::STANDARD.encode("too short");
    let err = Settings::from_sources("", env(&[("IAMD_COMPAT_LEGACY_JWT_KEY", &short)])).unwrap_err();
    assert!(err.to_string().contains("shorter than 32 bytes"), "{err}");
    let err = Settings::from_sources("", env(&[("IAMD_COMPAT_LEGACY_JWT_KEY", "not base64!")])).unwrap_err();
    assert!(format!("{err:#}").contains("not base64"), "{err:#}");
    // The file's bytes as they are, a trailing newline and non-UTF-8 included.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwt_key.bin");
    let bytes: Vec<u8> = (0u8..=40).chain([0xff, b'\n']).collect();
    std::fs::write(&path, &bytes).unwrap();
    let file = path.to_str().unwrap();
    let s = Settings::from_sources("", env(&[("IAMD_COMPAT_LEGACY_JWT_KEY_FILE", file)])).unwrap();
    assert_eq!(s.legacy_jwt_key().unwrap(), Some(bytes));
}
