//! `GET /.well-known/oauth-authorization-server` (RFC 8414) and
//! `GET /.well-known/openid-configuration` (OpenID Connect Discovery): one document.

use axum::Json;
use axum::extract::State;
use netapi_core::Scopes;
use netapi_core::model::{GrantType, SigningAlgorithm};

use crate::dto::oauth::ServerMetadata;
use crate::state::AppState;

/// The algorithms of `private_key_jwt` assertions, at every endpoint that takes them.
const ASSERTION_ALGS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

fn metadata(state: &AppState) -> ServerMetadata {
    let issuer = &state.api.settings().issuer;
    let base = issuer.trim_end_matches('/');
    // Every algorithm a client may register for its ID tokens (there are keys of each),
    // RS256, the default, first.
    let mut id_token_algs = state.api.signing_algorithms();
    id_token_algs.sort_by_key(|alg| *alg != SigningAlgorithm::Rs256);
    ServerMetadata {
        issuer: issuer.clone(),
        authorization_endpoint: format!("{base}/oauth/authorize"),
        token_endpoint: format!("{base}/oauth/token"),
        device_authorization_endpoint: format!("{base}/oauth/device_authorization"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        userinfo_endpoint: format!("{base}/oauth/userinfo"),
        jwks_uri: format!("{base}/oauth/jwks.json"),
        registration_endpoint: format!("{base}/oauth/register"),
        scopes_supported: Scopes::all().names(),
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query"],
        grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
        token_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS.to_vec(),
        revocation_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        revocation_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS.to_vec(),
        introspection_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        introspection_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS.to_vec(),
        pushed_authorization_request_endpoint: format!("{base}/oauth/par"),
        require_pushed_authorization_requests: state
            .api
            .settings()
            .require_pushed_authorization_requests,
        code_challenge_methods_supported: vec!["S256"],
        authorization_response_iss_parameter_supported: true,
        subject_types_supported: vec!["public"],
        id_token_signing_alg_values_supported: id_token_algs
            .iter()
            .map(|alg| alg.as_str())
            .collect(),
        claims_supported: vec![
            "sub",
            "iss",
            "aud",
            "azp",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "sid",
            "amr",
            "acr",
            "name",
            "updated_at",
            "email",
            "email_verified",
        ],
        prompt_values_supported: vec!["none", "login", "consent"],
        end_session_endpoint: format!("{base}/oauth/logout"),
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        frontchannel_logout_supported: false,
        dpop_signing_alg_values_supported: netapi_core::dpop::ALGORITHMS.to_vec(),
    }
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414)
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    operation_id = "authorizationServerMetadata",
    responses((status = 200, description = "RFC 8414 metadata.", body = ServerMetadata))
)]
pub async fn authorization_server_metadata(State(state): State<AppState>) -> Json<ServerMetadata> {
    Json(metadata(&state))
}

/// `GET /.well-known/openid-configuration`
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "oauth",
    operation_id = "openidConfiguration",
    responses((status = 200, description = "OpenID Connect discovery.", body = ServerMetadata))
)]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<ServerMetadata> {
    Json(metadata(&state))
}
