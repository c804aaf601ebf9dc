//! `POST /secret-scanning/github`: the receiving end of GitHub's secret scanning partner
//! program. The handler hands the raw body and the signature headers to
//! `NetApi::report_github_leaks`, which checks the signature before it parses anything.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::HeaderMap;
use netapi_core::scanning::ScanError;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::dto::scanning::TokenLabelView;
use crate::dto::{NO_STORE, NoStore};
use crate::error::{ApiError, ApiResult, Code, ServiceErrors};
use crate::extract::{ClientIp, read_body};
use crate::state::AppState;

/// The header naming GitHub's key.
const KEY_IDENTIFIER: &str = "github-public-key-identifier";
/// The header carrying the base64 DER signature over the body.
const KEY_SIGNATURE: &str = "github-public-key-signature";

/// A report as GitHub sends it: the raw body (the signature covers its bytes, so it is parsed
/// only once the signature holds) and the two signature headers. With the endpoint off, the
/// request is refused as an unknown path before its body is read.
pub(crate) struct SignedReport {
    identifier: Option<String>,
    signature: Option<String>,
    body: Bytes,
}

/// The answer while the endpoint is off: a 404 that tells the operator why.
fn endpoint_off() -> ApiError {
    ApiError::new(
        Code::NotFound,
        "Secret scanning is off on this server (secret_scanning_github_keys is not set).",
    )
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl FromRequest<AppState> for SignedReport {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !state.api.secret_scanning_enabled() {
            return Err(endpoint_off());
        }
        let identifier = header_text(request.headers(), KEY_IDENTIFIER);
        let signature = header_text(request.headers(), KEY_SIGNATURE);
        let body = read_body(request, state).await?;
        Ok(Self {
            identifier,
            signature,
            body,
        })
    }
}

/// The body's schema: what GitHub sends, described by hand because it is read by the core
/// (after the signature check), not by a type of this crate.
impl utoipa::PartialSchema for SignedReport {
    fn schema() -> RefOr<Schema> {
        let string = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let token = ObjectBuilder::new()
            .property("token", string("The string found."))
            .required("token")
            .property(
                "type",
                string("The token type the pattern was registered under."),
            )
            .required("type")
            .property("url", string("Where it was found."))
            .property(
                "source",
                string("What kind of place that is: `content`, `commit`, `gist_content`, ..."),
            );
        ArrayBuilder::new()
            .items(token)
            .max_items(Some(netapi_core::scanning::MAX_REPORT_TOKENS))
            .description(Some(
                "The tokens GitHub found, signed as a whole (the raw bytes) by \
                 `Github-Public-Key-Signature`.",
            ))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for SignedReport {
    fn name() -> std::borrow::Cow<'static, str> {
        "SecretScanningReport".into()
    }
}

impl From<ScanError> for ApiError {
    fn from(err: ScanError) -> Self {
        match err {
            ScanError::NotConfigured => endpoint_off(),
            ScanError::SignatureHeaders => ApiError::new(
                Code::Unauthenticated,
                "The Github-Public-Key-Identifier and Github-Public-Key-Signature headers \
                 (the signature in base64) are required.",
            ),
            ScanError::UnknownKeyIdentifier => ApiError::new(
                Code::Unauthenticated,
                "The Github-Public-Key-Identifier names no known GitHub public key.",
            ),
            ScanError::BadSignature => ApiError::new(
                Code::Unauthenticated,
                "The Github-Public-Key-Signature does not verify over the body.",
            ),
            ScanError::InvalidReport(message) => ApiError::new(Code::InvalidArgument, message),
            ScanError::Failed(err) => err.into(),
        }
    }
}

/// Takes a report of GitHub's secret scanning: every real Net API key in it is revoked at once
/// (an `api_key.leaked` event in its owner's audit log), and each token gets its label. A
/// repeated report gets the same answer. Off (404) unless `secret_scanning_github_keys` is set.
#[utoipa::path(
    post,
    path = "/secret-scanning/github",
    tag = "secret-scanning",
    operation_id = "reportLeakedTokens",
    request_body(content = SignedReport, content_type = "application/json"),
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The GitHub key that signed the body."),
        ("Github-Public-Key-Signature" = String, Header, description = "ECDSA P-256 SHA-256 signature (DER, base64) over the raw body."),
    ),
    responses(
        (status = 200, description = "A label per token, in order.", body = [TokenLabelView], headers(("Cache-Control" = String, description = "`no-store`"), ("Pragma" = String, description = "`no-cache`"))),
        (status = 400, description = "INVALID_ARGUMENT: a signed body that is not a report, or one of more than 1000 tokens.", body = crate::dto::ErrorEnvelope),
        (status = 401, description = "UNAUTHENTICATED: signature headers missing or malformed, an unknown key identifier, or a signature that does not verify; nothing is revoked.", body = crate::dto::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: secret scanning is not configured.", body = crate::dto::ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over `body_limit`.", body = crate::dto::ErrorEnvelope),
        ServiceErrors,
    )
)]
pub(crate) async fn github(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    report: SignedReport,
) -> ApiResult<(NoStore, Json<Vec<TokenLabelView>>)> {
    let verdicts = state
        .api
        .report_github_leaks(
            report.identifier.as_deref(),
            report.signature.as_deref(),
            &report.body,
            Some(&ip),
        )
        .await?;
    Ok((
        NO_STORE,
        Json(verdicts.into_iter().map(TokenLabelView::from).collect()),
    ))
}

/// The secret scanning routes with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(github))
}
