//! The registry through its public API, with a manual clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use ocp_metrics_auth::*;
use ocp_metrics_core::Clock;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const T0: &str = "2024-03-27T12:00:00Z";

/// The core's manual clock, shared with the registry, moved in whole seconds.
#[derive(Clone)]
struct ManualClock(Arc<ocp_metrics_core::ManualClock>);

impl ManualClock {
    fn new() -> ManualClock {
        ManualClock(Arc::new(ocp_metrics_core::ManualClock::new(
            T0.parse().unwrap(),
        )))
    }
    fn clock(&self) -> Arc<dyn Clock> {
        self.0.clone()
    }
    fn advance(&self, secs: i64) {
        self.0.advance(SignedDuration::from_secs(secs));
    }
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

fn open(dir: &Path, clock: &ManualClock) -> Registry {
    Registry::open(dir, AuthConfig::default(), clock.clock()).unwrap()
}

fn name(s: &str) -> ClientName {
    ClientName::parse(s).unwrap()
}
fn groups(g: &[&str]) -> GroupGrant {
    GroupGrant::parse(g).unwrap()
}
fn scopes(s: &[&str]) -> ScopeSet {
    ScopeSet::parse(s).unwrap()
}
const BOTH: &[&str] = &["metrics:read", "events:write"];

fn reason(r: Result<Grants, AuthError>) -> Reason {
    match r {
        Err(AuthError::Unauthenticated(reason)) => reason,
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn clients_create_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    assert!(reg.list_clients().is_empty());

    let (a, secret_a) = reg
        .create_client(name("ingest"), groups(&["ocp-qa"]), scopes(BOTH))
        .await
        .unwrap();
    clock.advance(1);
    let (b, secret_b) = reg
        .create_client(name("reader"), groups(&["*"]), scopes(&["metrics:read"]))
        .await
        .unwrap();
    assert!(a.id.starts_with(CLIENT_ID_PREFIX));
    assert_ne!(a.id, b.id);
    assert_eq!(secret_a.len(), 43);
    assert_ne!(secret_a, secret_b);
    assert_eq!(a.created_at, T0.parse::<Timestamp>().unwrap());
    assert_eq!(reg.list_clients(), vec![a.clone(), b.clone()]);

    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": a.id,
            "name": "ingest",
            "groups": ["ocp-qa"],
            "scopes": ["metrics:read", "events:write"],
            "created_at": "2024-03-27T12:00:00Z",
        })
    );
    assert!(!format!("{json} {a:?}").contains(&secret_a));

    assert!(reg.delete_client(&a.id).await.unwrap());
    assert!(!reg.delete_client(&a.id).await.unwrap());
    assert!(!reg.delete_client("ocpm_client_nope").await.unwrap());
    assert_eq!(reg.list_clients(), vec![b]);
}

#[tokio::test]
async fn tokens_create_list_revoke_and_reject_past_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let now = clock.now();

    let cases = [
        (Some(now - SignedDuration::from_secs(1)), false),
        (Some(now), false),
        (Some(now + SignedDuration::from_secs(1)), true),
        (None, true),
    ];
    for (expires_at, ok) in cases {
        let r = reg
            .create_token(name("pat"), groups(&["ocp-qa"]), scopes(BOTH), expires_at)
            .await;
        match (r, ok) {
            (Ok(_), true) => {}
            (Err(AuthError::InvalidInput(m)), false) => assert!(m.starts_with("expires_at"), "{m}"),
            (other, _) => panic!("{expires_at:?}: {other:?}"),
        }
    }
    let listed = reg.list_tokens();
    assert_eq!(listed.len(), 2);
    let (pat, token) = reg
        .create_token(name("mine"), groups(&["*"]), scopes(BOTH), None)
        .await
        .unwrap();
    assert_eq!(reg.list_tokens().len(), 3);
    assert!(token.starts_with(&format!("{PAT_PREFIX}{}_", pat.id)));

    let json = serde_json::to_value(&pat).unwrap();
    assert_eq!(json["expires_at"], serde_json::Value::Null);
    assert_eq!(json["groups"], serde_json::json!(["*"]));
    assert!(
        !json
            .to_string()
            .contains(&token[PAT_PREFIX.len() + pat.id.len() + 1..])
    );

    assert!(reg.revoke_token(&pat.id).await.unwrap());
    assert!(!reg.revoke_token(&pat.id).await.unwrap());
    assert_eq!(reg.list_tokens(), listed);
}

#[tokio::test]
async fn state_survives_reopen_and_the_files_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let (client, secret) = reg
        .create_client(name("ingest"), groups(&["ocp-qa"]), scopes(BOTH))
        .await
        .unwrap();
    let expires = clock.now() + SignedDuration::from_secs(3600);
    let (pat, token) = reg
        .create_token(
            name("pat"),
            groups(&["ocp-qa"]),
            scopes(BOTH),
            Some(expires),
        )
        .await
        .unwrap();
    let access = reg.issue_access_token(&client.id, &secret, None).unwrap();
    let (clients, tokens) = (reg.list_clients(), reg.list_tokens());
    drop(reg);

    let reg = open(dir.path(), &clock);
    assert_eq!(reg.list_clients(), clients);
    assert_eq!(reg.list_tokens(), tokens);
    assert_eq!(reg.list_tokens()[0].expires_at, Some(expires));
    // The key survived too, so tokens issued before the restart still work.
    assert_eq!(
        reg.authenticate(&access.access_token).unwrap().subject,
        client.id
    );
    assert_eq!(reg.authenticate(&token).unwrap().subject, pat.id);
    assert!(reg.issue_access_token(&client.id, &secret, None).is_ok());

    let file = std::fs::read(dir.path().join(REGISTRY_FILE)).unwrap();
    // The secret is all after `ocpm_pat_<id>_`; it may itself hold `_` (base64url).
    let pat_secret = &token[PAT_PREFIX.len() + pat.id.len() + 1..];
    for needle in [secret.as_str(), token.as_str(), pat_secret] {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} stored"
        );
    }
    let key = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
    assert_eq!(key.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [KEY_FILE, REGISTRY_FILE] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

/// A registry file as version 1 has always laid it out (one flat object per client and per
/// token, the hash last) opens, lists and authenticates, and is written back in the same layout.
#[tokio::test]
async fn a_version_1_registry_file_opens_and_keeps_its_layout() {
    let client = r#"{"id":"ocpm_client_ab","name":"ingest bot","groups":["ocp-qa"],"scopes":["events:write"],"created_at":"2024-03-27T11:00:00Z","secret_sha256":"83aeb0c6678c4184dfad301844e867c0e1a756e674c66f1e8eb217b585eaf3b6"}"#;
    let token = r#"{"id":"0f","name":"wallboard","groups":["*"],"scopes":["metrics:read"],"created_at":"2024-03-27T11:30:00Z","expires_at":null,"token_sha256":"653686dca9efee3644e1f15660555310ae0fc2c84f572840739c35e0f217d2e9"}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(REGISTRY_FILE);
    std::fs::write(
        &file,
        format!(r#"{{"version":1,"clients":[{client}],"tokens":[{token}]}}"#),
    )
    .unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    assert_eq!(reg.list_clients()[0].name.as_str(), "ingest bot");
    assert_eq!(reg.list_tokens()[0].expires_at, None);
    let access = reg
        .issue_access_token("ocpm_client_ab", "Secret-1", None)
        .unwrap();
    let grants = reg.authenticate(&access.access_token).unwrap();
    assert_eq!(grants.subject, "ocpm_client_ab");
    assert_eq!(grants.groups, groups(&["ocp-qa"]));
    let grants = reg.authenticate("ocpm_pat_0f_Tok_en-2").unwrap();
    assert_eq!(grants.groups, GroupGrant::All);
    // A change rewrites the file; the records that stay are written back with the same fields
    // and values.
    let (other, _) = reg
        .create_client(name("other"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    assert!(reg.delete_client(&other.id).await.unwrap());
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    assert_eq!(written["clients"], serde_json::json!([json(client)]));
    assert_eq!(written["tokens"], serde_json::json!([json(token)]));
}

#[test]
fn corrupt_files_are_refused_at_open() {
    let clock = ManualClock::new();
    let cases: [(&str, &[u8]); 4] = [
        (REGISTRY_FILE, b"{not json"),
        (REGISTRY_FILE, br#"{"version":99,"clients":[],"tokens":[]}"#),
        (
            REGISTRY_FILE,
            br#"{"version":1,"clients":[{"id":"x","name":"n","groups":["bad group"],"scopes":["metrics:read"],"created_at":"2024-03-27T12:00:00Z","secret_sha256":"00"}],"tokens":[]}"#,
        ),
        (KEY_FILE, b"short"),
    ];
    for (file, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), bytes).unwrap();
        let r = Registry::open(dir.path(), AuthConfig::default(), clock.clock());
        assert!(matches!(r, Err(AuthError::Corrupt { .. })), "{file}: {r:?}");
    }
}

#[tokio::test]
async fn access_token_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let (client, secret) = reg
        .create_client(name("c"), groups(&["ocp-qa", "ocp-dev"]), scopes(BOTH))
        .await
        .unwrap();
    let access = reg.issue_access_token(&client.id, &secret, None).unwrap();
    assert_eq!(access.token_type, "Bearer");
    assert_eq!(access.expires_in, 3600);
    assert_eq!(access.scope, "metrics:read events:write");
    assert!(!format!("{access:?}").contains(&access.access_token));

    let c = claims(&access.access_token);
    let iat = clock.now().as_second();
    assert_eq!(c["sub"], client.id.as_str());
    assert_eq!(c["groups"], serde_json::json!(["ocp-dev", "ocp-qa"]));
    assert_eq!(c["scope"], "metrics:read events:write");
    assert_eq!(c["iat"], iat);
    assert_eq!(c["exp"], iat + 3600);
    assert_eq!(c["jti"].as_str().unwrap().len(), 32);
    let again = reg.issue_access_token(&client.id, &secret, None).unwrap();
    assert_ne!(claims(&again.access_token)["jti"], c["jti"]);

    let grants = reg.authenticate(&access.access_token).unwrap();
    assert_eq!(
        grants,
        Grants {
            subject: client.id.clone(),
            groups: client.groups,
            scopes: client.scopes
        }
    );
}

#[tokio::test]
async fn access_token_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let other = open(other_dir.path(), &clock);
    let (client, secret) = reg
        .create_client(name("c"), groups(&["ocp-qa"]), scopes(BOTH))
        .await
        .unwrap();
    let (oc, osecret) = other
        .create_client(name("c"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    let token = reg
        .issue_access_token(&client.id, &secret, None)
        .unwrap()
        .access_token;
    let foreign = other
        .issue_access_token(&oc.id, &osecret, None)
        .unwrap()
        .access_token;

    // Re-sign nothing: swap in a payload that claims every group, keeping the signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged = claims(&token);
    forged["groups"] = serde_json::json!(["*"]);
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = parts.join(".");
    // 40 of the 43 base64 characters still decode, to a 30-byte signature.
    let short_sig = &token[..token.len() - 3];
    let broken_b64 = &token[..token.len() - 2];

    let cases: Vec<(&str, String, Reason)> = vec![
        ("tampered payload", tampered, Reason::BadSignature),
        (
            "short signature",
            short_sig.to_owned(),
            Reason::BadSignature,
        ),
        (
            "signature not base64",
            broken_b64.to_owned(),
            Reason::Malformed,
        ),
        ("signed by another key", foreign, Reason::BadSignature),
        ("empty", String::new(), Reason::Malformed),
        ("no dots", "abc".to_owned(), Reason::Malformed),
        ("one dot", "a.b".to_owned(), Reason::Malformed),
        ("three dots", format!("{token}.x"), Reason::Malformed),
        ("garbage parts", "a.b.c".to_owned(), Reason::Malformed),
        (
            "too long",
            "a.b.".to_owned() + &"c".repeat(MAX_BEARER_BYTES),
            Reason::Malformed,
        ),
    ];
    for (what, input, want) in cases {
        assert_eq!(reason(reg.authenticate(&input)), want, "{what}");
    }
    assert!(reg.authenticate(&token).is_ok());
}

#[tokio::test]
async fn access_token_expires_with_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let config = AuthConfig {
        access_token_ttl: Duration::from_secs(60),
        ..AuthConfig::default()
    };
    let reg = Registry::open(dir.path(), config, clock.clock()).unwrap();
    let (client, secret) = reg
        .create_client(name("c"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    let access = reg.issue_access_token(&client.id, &secret, None).unwrap();
    assert_eq!(access.expires_in, 60);
    clock.advance(59);
    assert!(reg.authenticate(&access.access_token).is_ok());
    clock.advance(1);
    assert_eq!(
        reason(reg.authenticate(&access.access_token)),
        Reason::Expired
    );
}

#[tokio::test]
async fn deleting_a_client_revokes_its_access_tokens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let (client, secret) = reg
        .create_client(name("c"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    let (keep, keep_secret) = reg
        .create_client(name("k"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    let token = reg
        .issue_access_token(&client.id, &secret, None)
        .unwrap()
        .access_token;
    let kept = reg
        .issue_access_token(&keep.id, &keep_secret, None)
        .unwrap()
        .access_token;
    assert!(reg.authenticate(&token).is_ok());
    assert!(reg.delete_client(&client.id).await.unwrap());
    assert_eq!(reason(reg.authenticate(&token)), Reason::RevokedOrUnknown);
    assert!(reg.authenticate(&kept).is_ok());
    assert_eq!(
        reg.issue_access_token(&client.id, &secret, None)
            .unwrap_err()
            .code(),
        "invalid_client"
    );
    // Still refused after a restart.
    drop(reg);
    let reg = open(dir.path(), &clock);
    assert_eq!(reason(reg.authenticate(&token)), Reason::RevokedOrUnknown);
}

#[tokio::test]
async fn personal_access_token_expiry_revocation_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let expires = clock.now() + SignedDuration::from_secs(3600);
    let (pat, token) = reg
        .create_token(
            name("p"),
            groups(&["ocp-qa"]),
            scopes(&["events:write"]),
            Some(expires),
        )
        .await
        .unwrap();
    let grants = reg.authenticate(&token).unwrap();
    assert_eq!(grants.subject, pat.id);
    assert!(grants.has_scope(Scope::EventsWrite));
    assert!(!grants.has_scope(Scope::MetricsRead));
    assert!(grants.allows_group("ocp-qa"));
    assert!(!grants.allows_group("ocp-prod"));

    let (id_part, secret) = token[PAT_PREFIX.len()..].split_once('_').unwrap();
    let mut wrong_secret = secret.to_owned().into_bytes();
    wrong_secret[0] = if wrong_secret[0] == b'A' { b'B' } else { b'A' };
    let wrong_secret = String::from_utf8(wrong_secret).unwrap();
    let unknown_id = "0".repeat(id_part.len());
    let cases: Vec<(&str, String, Reason)> = vec![
        (
            "wrong secret",
            format!("{PAT_PREFIX}{id_part}_{wrong_secret}"),
            Reason::RevokedOrUnknown,
        ),
        (
            "unknown id",
            format!("{PAT_PREFIX}{unknown_id}_{secret}"),
            Reason::RevokedOrUnknown,
        ),
        (
            "no secret",
            format!("{PAT_PREFIX}{id_part}_"),
            Reason::Malformed,
        ),
        (
            "no separator",
            format!("{PAT_PREFIX}{id_part}"),
            Reason::Malformed,
        ),
        ("bare prefix", PAT_PREFIX.to_owned(), Reason::Malformed),
        (
            "non-hex id",
            format!("{PAT_PREFIX}XYZ_{secret}"),
            Reason::Malformed,
        ),
        (
            "bad secret chars",
            format!("{PAT_PREFIX}{id_part}_a+b"),
            Reason::Malformed,
        ),
    ];
    for (what, input, want) in cases {
        assert_eq!(reason(reg.authenticate(&input)), want, "{what}");
    }

    clock.advance(3599);
    assert!(reg.authenticate(&token).is_ok());
    clock.advance(1);
    assert_eq!(reason(reg.authenticate(&token)), Reason::Expired);

    let (never, forever) = reg
        .create_token(name("n"), groups(&["*"]), scopes(BOTH), None)
        .await
        .unwrap();
    clock.advance(10 * 365 * 24 * 3600);
    assert!(reg.authenticate(&forever).is_ok());
    assert!(reg.revoke_token(&never.id).await.unwrap());
    assert_eq!(reason(reg.authenticate(&forever)), Reason::RevokedOrUnknown);
}

#[tokio::test]
async fn token_endpoint_scope_narrowing_and_client_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let (both, both_secret) = reg
        .create_client(name("b"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    let (reader, reader_secret) = reg
        .create_client(name("r"), groups(&["*"]), scopes(&["metrics:read"]))
        .await
        .unwrap();

    /// Client id, secret, requested scope, and the granted scope or the error code.
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Result<&'a str, &'a str>);
    let cases: Vec<Case> = vec![
        (
            &both.id,
            &both_secret,
            None,
            Ok("metrics:read events:write"),
        ),
        (
            &both.id,
            &both_secret,
            Some(""),
            Ok("metrics:read events:write"),
        ),
        (
            &both.id,
            &both_secret,
            Some("  "),
            Ok("metrics:read events:write"),
        ),
        (
            &both.id,
            &both_secret,
            Some("metrics:read"),
            Ok("metrics:read"),
        ),
        (
            &both.id,
            &both_secret,
            Some("events:write"),
            Ok("events:write"),
        ),
        (
            &both.id,
            &both_secret,
            Some("events:write metrics:read"),
            Ok("metrics:read events:write"),
        ),
        (
            &both.id,
            &both_secret,
            Some("metrics:read metrics:read"),
            Ok("metrics:read"),
        ),
        (
            &both.id,
            &both_secret,
            Some("metrics:admin"),
            Err("invalid_scope"),
        ),
        (&reader.id, &reader_secret, None, Ok("metrics:read")),
        (
            &reader.id,
            &reader_secret,
            Some("events:write"),
            Err("invalid_scope"),
        ),
        (
            &reader.id,
            &reader_secret,
            Some("metrics:read events:write"),
            Err("invalid_scope"),
        ),
        (&reader.id, &both_secret, None, Err("invalid_client")),
        (&reader.id, "", None, Err("invalid_client")),
        ("", "", None, Err("invalid_client")),
        (
            "ocpm_client_unknown",
            &reader_secret,
            None,
            Err("invalid_client"),
        ),
    ];
    for (id, secret, scope, want) in cases {
        let got = reg.issue_access_token(id, secret, scope);
        let got = got
            .as_ref()
            .map(|t| t.scope.as_str())
            .map_err(OAuthError::code);
        assert_eq!(got, want, "{id} {scope:?}");
    }

    let narrowed = reg
        .issue_access_token(&both.id, &both_secret, Some("metrics:read"))
        .unwrap();
    let grants = reg.authenticate(&narrowed.access_token).unwrap();
    assert!(grants.require_scope(Scope::MetricsRead).is_ok());
    assert!(matches!(
        grants.require_scope(Scope::EventsWrite),
        Err(AuthError::Forbidden(_))
    ));
    let err = reg
        .issue_access_token(&reader.id, &reader_secret, Some("events:write"))
        .unwrap_err();
    assert!(err.description().contains("metrics:read"), "{err}");
}

#[tokio::test]
async fn group_grants_through_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let bearer = async |g: &[&str]| {
        let (c, s) = reg
            .create_client(name("c"), groups(g), scopes(BOTH))
            .await
            .unwrap();
        let jwt = reg
            .issue_access_token(&c.id, &s, None)
            .unwrap()
            .access_token;
        let (_, pat) = reg
            .create_token(name("p"), groups(g), scopes(BOTH), None)
            .await
            .unwrap();
        [jwt, pat]
    };
    let all = bearer(&["*"]).await;
    let some = bearer(&["ocp-qa", "ocp-dev"]).await;
    let cases = [
        (&all, "ocp-qa", true),
        (&all, "any.other_group-1", true),
        (&some, "ocp-qa", true),
        (&some, "ocp-dev", true),
        (&some, "ocp-prod", false),
        (&some, "*", false),
    ];
    for (tokens, group, want) in cases {
        for token in tokens.iter() {
            let grants = reg.authenticate(token).unwrap();
            assert_eq!(grants.allows_group(group), want, "{group}");
            assert_eq!(grants.require_group(group).is_ok(), want, "{group}");
        }
    }
}

#[tokio::test]
async fn the_largest_grant_still_fits_in_an_access_token() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let names: Vec<String> = (0..MAX_GROUPS)
        .map(|i| format!("{i:0>width$}", width = MAX_GROUP_NAME_BYTES))
        .collect();
    let (c, s) = reg
        .create_client(
            name("big"),
            GroupGrant::parse(&names).unwrap(),
            scopes(BOTH),
        )
        .await
        .unwrap();
    let token = reg
        .issue_access_token(&c.id, &s, None)
        .unwrap()
        .access_token;
    assert!(token.len() <= MAX_BEARER_BYTES, "{}", token.len());
    assert!(
        reg.authenticate(&token)
            .unwrap()
            .allows_group(&names[MAX_GROUPS - 1])
    );
}

#[test]
fn rate_limit_exhausts_and_refills_with_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let config = AuthConfig {
        rate_per_second: 1.0,
        rate_burst: 2.0,
        ..AuthConfig::default()
    };
    let reg = Registry::open(dir.path(), config, clock.clock()).unwrap();
    assert_eq!(reg.check_rate("a"), Ok(()));
    assert_eq!(reg.check_rate("a"), Ok(()));
    assert_eq!(reg.check_rate("a"), Err(Duration::from_secs(1)));
    assert_eq!(reg.check_rate("b"), Ok(()));
    clock.advance(1);
    assert_eq!(reg.check_rate("a"), Ok(()));
    assert_eq!(reg.check_rate("a"), Err(Duration::from_secs(1)));
    clock.advance(60);
    assert_eq!(reg.check_rate("a"), Ok(()));
    assert_eq!(reg.check_rate("a"), Ok(()));
    assert!(reg.check_rate("a").is_err());
}

#[tokio::test]
async fn concurrent_changes_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = Arc::new(open(dir.path(), &clock));
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let reg = reg.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    let n = name(&format!("t{t}-{i}"));
                    reg.create_client(n.clone(), groups(&["*"]), scopes(BOTH))
                        .await
                        .unwrap();
                    reg.create_token(n, groups(&["*"]), scopes(BOTH), None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(reg.list_clients().len(), 20);
    drop(reg);
    let reg = open(dir.path(), &clock);
    assert_eq!(reg.list_clients().len(), 20);
    assert_eq!(reg.list_tokens().len(), 20);
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let (c, secret) = reg
        .create_client(name("c"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    let (t, token) = reg
        .create_token(name("t"), groups(&["*"]), scopes(BOTH), None)
        .await
        .unwrap();
    let access = reg.issue_access_token(&c.id, &secret, None).unwrap();
    let debug = format!("{reg:?} {c:?} {t:?} {access:?}");
    for s in [&secret, &token, &access.access_token] {
        assert!(!debug.contains(s.as_str()), "{debug}");
    }
}

/// Whatever arrives as a bearer token is answered with a 401 reason, never a panic and never a
/// grant. One registry serves every case, so the runner is driven by hand.
#[test]
fn arbitrary_bearer_tokens_are_refused() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let reg = open(dir.path(), &clock);
    let mut runner = TestRunner::new(Config::with_cases(512));
    let strategy = ("[A-Za-z0-9_.+/=-]{0,200}", 0usize..3);
    runner
        .run(&strategy, |(body, shape)| {
            let input = match shape {
                0 => body,
                1 => format!("{PAT_PREFIX}{body}"),
                _ => format!(
                    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
                    body.replace('.', ""),
                    "x"
                ),
            };
            prop_assert!(matches!(
                reg.authenticate(&input),
                Err(AuthError::Unauthenticated(_))
            ));
            Ok(())
        })
        .unwrap();
}

/// A store that refuses every change, as a cluster store without quorum does.
#[derive(Debug)]
struct Refusing;

impl CredentialStore for Refusing {
    fn signing_key(&self) -> ocp_metrics_service::BoxFuture<'_, Result<SigningKey, AuthError>> {
        Box::pin(async { Ok(SigningKey::generate()) })
    }
    fn load(&self) -> ocp_metrics_service::BoxFuture<'_, Result<Credentials, AuthError>> {
        Box::pin(async { Ok(Credentials::default()) })
    }
    fn persist<'a>(
        &'a self,
        _change: &'a RecordChange,
        _after: &'a Credentials,
    ) -> ocp_metrics_service::BoxFuture<'a, Result<Option<u64>, AuthError>> {
        Box::pin(async { Err(AuthError::Unavailable("no quorum".into())) })
    }
}

/// A change the store could not make durable never takes effect.
#[tokio::test]
async fn a_change_the_store_refuses_never_happens() {
    let clock = ManualClock::new();
    let reg = Registry::with_store(Box::new(Refusing), AuthConfig::default(), clock.clock())
        .await
        .unwrap();
    let client = reg
        .create_client(name("c"), groups(&["*"]), scopes(BOTH))
        .await;
    assert!(
        matches!(client, Err(AuthError::Unavailable(_))),
        "{client:?}"
    );
    let token = reg
        .create_token(name("t"), groups(&["*"]), scopes(BOTH), None)
        .await;
    assert!(matches!(token, Err(AuthError::Unavailable(_))), "{token:?}");
    assert!(reg.list_clients().is_empty());
    assert!(reg.list_tokens().is_empty());
}

/// Changes seen from elsewhere apply in revision order: a late, older one is ignored.
#[tokio::test]
async fn changes_from_elsewhere_apply_by_revision() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let origin = open(dir.path(), &clock);
    let (client, secret) = origin
        .create_client(name("c"), groups(&["*"]), scopes(BOTH))
        .await
        .unwrap();
    // The record as a store holds it: the registry file's JSON.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(REGISTRY_FILE)).unwrap()).unwrap();
    let record: ClientRecord = serde_json::from_value(file["clients"][0].clone()).unwrap();

    let node = Registry::with_store(Box::new(Refusing), AuthConfig::default(), clock.clock())
        .await
        .unwrap();
    let works = || node.issue_access_token(&client.id, &secret, None).is_ok();
    assert!(!works());
    let delete = || RecordChange::DeleteClient(client.id.clone());
    // (change, revision, whether it applies, whether the client then works)
    let cases = [
        (RecordChange::PutClient(record.clone()), 5, true, true),
        (RecordChange::PutClient(record.clone()), 5, false, true),
        (delete(), 4, false, true),
        (delete(), 6, true, false),
        (RecordChange::PutClient(record), 5, false, false),
    ];
    for (i, (change, revision, applies, then_works)) in cases.into_iter().enumerate() {
        assert_eq!(node.apply_change(change, revision), applies, "case {i}");
        assert_eq!(works(), then_works, "case {i}");
    }
}
