//! Criterion micro-benchmarks of the hot path (issue 6): key format check, HMAC, a whole
//! `NetApi::authenticate` on a cache hit, JWT sign and verify, and refresh rotation and the
//! token endpoint against a real SQLite store. They live here, not in netapi-core, because
//! they need a real store and netapi-store already depends on netapi-core.
//!
//! `cargo bench -p netapi-store --bench hot_path`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use criterion::{Criterion, criterion_group, criterion_main};
use netapi_core::jwt::{KeyRing, generate_key};
use netapi_core::model::{GrantType, RefreshToken, SigningAlgorithm, SigningKey};
use netapi_core::secret::{Secret, SecretHasher, SecretKind, check_format, generate};
use netapi_core::service::{
    ClientAuth, ClientRequest, NewClient, NewUser, Principal, TokenGrant, TokenTarget,
};
use netapi_core::{NetApi, Role, Settings, SystemClock};
use netapi_store::StoreOptions;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn credentials(c: &mut Criterion) {
    let key = generate(SecretKind::ApiKey);
    c.bench_function("secret::check_format (parse + CRC32)", |b| {
        b.iter(|| check_format(SecretKind::ApiKey, black_box(key.expose())))
    });
    let hasher = SecretHasher::new(b"a pepper of some length");
    c.bench_function("SecretHasher::hash (HMAC-SHA-256)", |b| {
        b.iter(|| hasher.hash(black_box(key.expose())))
    });
    c.bench_function("secret::generate (new refresh token)", |b| {
        b.iter(|| generate(SecretKind::RefreshToken))
    });
}

fn jwt(c: &mut Criterion) {
    let t = now();
    let key = |kid: &str, alg| SigningKey {
        kid: kid.to_owned(),
        alg,
        private_key: generate_key(alg).unwrap(),
        created_at: t,
        active_from: t,
        retire_at: None,
    };
    let ring = KeyRing::new(
        &[
            key("sig_bench", SigningAlgorithm::EdDsa),
            key("sig_bench_rsa", SigningAlgorithm::Rs256),
        ],
        SigningAlgorithm::EdDsa,
        t,
    );
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "usr_0123456789abcdefghijkl",
        "aud": "http://127.0.0.1:8080",
        "client_id": "cli_0123456789abcdefghijkl",
        "scope": "users:read keys:read",
        "jti": "at_0123456789abcdefghijkl",
        "iat": t,
        "exp": t + 900,
    });
    c.bench_function("jwt: KeyRing::sign (Ed25519)", |b| {
        b.iter(|| ring.sign("at+jwt", black_box(&claims)))
    });
    let token = ring.sign("at+jwt", &claims).unwrap();
    c.bench_function("jwt: KeyRing::verify (Ed25519)", |b| {
        b.iter(|| ring.verify::<serde_json::Value>(black_box(&token), "at+jwt"))
    });
    // What an RS256 ID token costs on top of the access token.
    c.bench_function("jwt: KeyRing::sign_with (RS256)", |b| {
        b.iter(|| ring.sign_with(SigningAlgorithm::Rs256, "JWT", black_box(&claims)))
    });
    let rs256 = ring
        .sign_with(SigningAlgorithm::Rs256, "JWT", &claims)
        .unwrap();
    c.bench_function("jwt: KeyRing::verify (RS256)", |b| {
        b.iter(|| ring.verify::<serde_json::Value>(black_box(&rs256), "JWT"))
    });
}

/// A service over a fresh SQLite file, with one member, its API key and two clients.
struct Fixture {
    rt: tokio::runtime::Runtime,
    api: Arc<NetApi>,
    path: std::path::PathBuf,
    key: Secret,
    user_id: String,
    machine: (String, Secret),
    web: (String, Secret),
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = std::env::temp_dir().join(format!("netapi-hot-path-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let url = format!("sqlite://{}", path.display());
        let (api, key, user_id, machine, web) = rt.block_on(async {
            let store = netapi_store::open(&StoreOptions::new(url), true)
                .await
                .unwrap();
            let settings = Settings {
                auth_failure_limit: 1_000_000,
                ..Settings::default()
            };
            let api = Arc::new(NetApi::new(store, Arc::new(SystemClock), settings));
            api.start().await.unwrap();
            let (user, _, key) = api
                .register(
                    NewUser {
                        email: "bench@example.com".to_owned(),
                        password: Secret::new("bench-password-1234"),
                        name: "Bench".to_owned(),
                        role: Role::Member,
                        email_verified: false,
                        invitation: None,
                    },
                    None,
                )
                .await
                .unwrap();
            let owner = Principal {
                user_id: user.id.clone(),
                role: Role::Member,
                scopes: Role::Member.max_scopes(),
                ..Principal::operator()
            };
            let client = |name: &str, grants: &[&str], redirect: Vec<String>| {
                let api = api.clone();
                let owner = owner.clone();
                let new = NewClient {
                    name: name.to_owned(),
                    redirect_uris: redirect,
                    grant_types: Some(grants.iter().filter_map(|g| GrantType::parse(g)).collect()),
                    scope: Some("users:read".to_owned()),
                    auth_method: None,
                    rate_limit: None,
                    trusted: false,
                    resources: None,
                    id_token_signed_response_alg: None,
                    token_exchange_resources: None,
                    logout: Default::default(),
                    jwks: None,
                    jwks_uri: None,
                    require_par: false,
                    dpop_bound_access_tokens: false,
                };
                async move {
                    let (client, secret) = api.create_client(&owner, new, None).await.unwrap();
                    (client.id, secret.unwrap())
                }
            };
            let machine = client("machine", &["client_credentials"], Vec::new()).await;
            let web = client(
                "web",
                &["authorization_code", "refresh_token"],
                vec!["http://127.0.0.1:9/cb".to_owned()],
            )
            .await;
            (api, key, user.id, machine, web)
        });
        Self {
            rt,
            api,
            path,
            key,
            user_id,
            machine,
            web,
        }
    }

    fn refresh_token(&self, family: &str) -> (RefreshToken, Secret) {
        let t = now();
        let secret = generate(SecretKind::RefreshToken);
        let token = RefreshToken {
            hash: SecretHasher::new(&self.api.settings().pepper).hash(secret.expose()),
            family_id: family.to_owned(),
            client_id: self.web.0.clone(),
            user_id: self.user_id.clone(),
            scopes: netapi_core::Scopes::parse_space_separated("users:read").unwrap(),
            issued_at: t,
            expires_at: t + 3600,
            family_expires_at: t + 7200,
            auth_time: t,
            amr: netapi_core::model::Amr::Password,
            rotated_at: None,
            revoked_at: None,
            successor_key: None,
            resource_id: None,
            resource_scopes: Vec::new(),
            sid: None,
            dpop_jkt: None,
        };
        (token, secret)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

fn service(c: &mut Criterion) {
    let f = Fixture::new();
    let api = f.api.clone();
    let key = f.key.expose().to_owned();
    f.rt.block_on(api.authenticate(&key, "127.0.0.1")).unwrap();
    c.bench_function("NetApi::authenticate (API key, cache hit)", |b| {
        b.iter(|| {
            f.rt.block_on(api.authenticate(black_box(&key), "127.0.0.1"))
                .unwrap()
        })
    });

    let store = api.store().clone();
    let hash = SecretHasher::new(&api.settings().pepper).hash(&key);
    c.bench_function("Store::find_api_key (SQLite, the cache-miss lookup)", |b| {
        b.iter(|| f.rt.block_on(store.find_api_key(&hash)).unwrap())
    });
    c.bench_function("Store::get_user (SQLite)", |b| {
        b.iter(|| f.rt.block_on(store.get_user(&f.user_id)).unwrap())
    });

    let machine_request = ClientRequest {
        params: TokenGrant::ClientCredentials {
            scope: None,
            resource: None,
        },
        client: ClientAuth::Basic {
            id: f.machine.0.clone(),
            secret: f.machine.1.clone(),
        },
    };
    let access_token =
        f.rt.block_on(api.token(&machine_request, "127.0.0.1"))
            .unwrap()
            .access_token;
    c.bench_function("NetApi::authenticate (access token)", |b| {
        b.iter(|| {
            f.rt.block_on(api.authenticate(black_box(&access_token), "127.0.0.1"))
                .unwrap()
        })
    });
    c.bench_function("NetApi::token (client credentials, SQLite)", |b| {
        b.iter(|| {
            f.rt.block_on(api.token(&machine_request, "127.0.0.1"))
                .unwrap()
        })
    });
    let introspect_request = ClientRequest {
        params: TokenTarget {
            token: Secret::new(access_token.clone()),
        },
        client: machine_request.client.clone(),
    };
    c.bench_function("NetApi::introspect (access token, SQLite)", |b| {
        b.iter(|| {
            f.rt.block_on(api.introspect(&introspect_request, "127.0.0.1"))
                .unwrap()
        })
    });

    // Store-level rotation: one family, each successor replacing the last.
    let (first, _) = f.refresh_token("fam_bench_store");
    f.rt.block_on(store.insert_refresh_token(&first)).unwrap();
    let mut current = first.hash;
    c.bench_function("Store::rotate_refresh_token (SQLite)", |b| {
        b.iter(|| {
            let (successor, _) = f.refresh_token("fam_bench_store");
            let outcome =
                f.rt.block_on(store.rotate_refresh_token(&current, now(), 10, &successor))
                    .unwrap();
            assert!(matches!(
                outcome,
                netapi_core::model::RotateOutcome::Rotated(_)
            ));
            current = successor.hash;
        })
    });

    // The whole refresh grant: client authentication, lookup, rotation, signing.
    let (first, secret) = f.refresh_token("fam_bench_grant");
    f.rt.block_on(store.insert_refresh_token(&first)).unwrap();
    let mut presented = secret.expose().to_owned();
    let web = ClientAuth::Basic {
        id: f.web.0.clone(),
        secret: f.web.1.clone(),
    };
    c.bench_function("NetApi::token (refresh with rotation, SQLite)", |b| {
        b.iter(|| {
            let request = ClientRequest {
                params: TokenGrant::RefreshToken {
                    refresh_token: Secret::new(presented.clone()),
                    scope: None,
                    resource: None,
                },
                client: web.clone(),
            };
            let answer = f.rt.block_on(api.token(&request, "127.0.0.1")).unwrap();
            presented = answer.refresh_token.unwrap();
        })
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = hot_path;
    config = config();
    targets = credentials, jwt, service
}
criterion_main!(hot_path);
