//! The requests of the OAuth endpoints, parsed once where they arrive. The server decodes the
//! form or query into pairs and calls these; what reaches the operations is typed (a
//! [`TokenGrant`], a [`TokenTarget`], [`AuthorizationParams`]), never a map of strings.

use std::borrow::Cow;
use std::collections::HashMap;

use super::MAX_RESOURCE_LEN;
use super::authorize::AuthorizeReason;
use super::oauth_error::{OAuthError, OAuthReason, echoed};
use crate::model::GrantType;
use crate::secret::Secret;

/// Longest `state` and `nonce` accepted.
const MAX_PARAM_LEN: usize = 512;

/// The parameters of a token, revocation or introspection form, each given at most once
/// (RFC 6749 §3.2). An empty value counts as absent. Only the typed requests of this module
/// read its values.
pub struct OAuthForm(HashMap<String, String>);

/// Names the parameters, never their values (codes, tokens and secrets travel in them).
impl std::fmt::Debug for OAuthForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_tuple("OAuthForm").field(&names).finish()
    }
}

/// A form-encoded name or value: `+` is a space, `%XX` a byte, a `%` without two hex digits
/// kept as it is, invalid UTF-8 replaced (`form_urlencoded`'s rules); borrowed when there is
/// nothing to decode.
pub fn form_decoded(text: &[u8]) -> Cow<'_, str> {
    if !text.iter().any(|b| matches!(b, b'+' | b'%')) {
        return match std::str::from_utf8(text) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(text),
        };
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => match tail {
                [high, low, after @ ..] if hex(*high).is_some() && hex(*low).is_some() => {
                    let value = hex(*high).unwrap_or(0) * 16 + hex(*low).unwrap_or(0);
                    bytes.push(u8::try_from(value).unwrap_or(b'%'));
                    rest = after;
                }
                _ => bytes.push(b'%'),
            },
            other => bytes.push(other),
        }
    }
    Cow::Owned(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    })
}

impl OAuthForm {
    /// Decodes an `application/x-www-form-urlencoded` body (or query) into its pairs, in
    /// order, repeats kept: what [`OAuthForm::parse`] and [`AuthorizationParams::parse`] read.
    /// Decoded as `form_urlencoded` does, without its copies of what needs no decoding (a
    /// token or secret is most of a body).
    pub fn decode(body: &[u8]) -> Vec<(String, String)> {
        body.split(|b| *b == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = match pair.iter().position(|b| *b == b'=') {
                    Some(at) => (&pair[..at], &pair[at + 1..]),
                    None => (pair, &[][..]),
                };
                (
                    form_decoded(name).into_owned(),
                    form_decoded(value).into_owned(),
                )
            })
            .collect()
    }

    /// Reads decoded pairs. Several `resource` (or `audience`) are `invalid_target` (RFC 8707
    /// allows them; this server supports one per request), looked at first; any other repeated parameter
    /// is `invalid_request`.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, OAuthError> {
        let count = |wanted: &str| pairs.iter().filter(|(name, _)| name == wanted).count();
        // RFC 8693's `audience` names a target too, so several of them are refused alike.
        if count("resource") > 1 || count("audience") > 1 {
            return Err(OAuthReason::SeveralResources.into());
        }
        let mut params = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.insert(name.clone(), value.clone()).is_some() {
                return Err(OAuthReason::RepeatedParameter(echoed(name)).into());
            }
        }
        Ok(Self(params))
    }

    /// Every parameter, in no particular order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthReason::MissingParameter(name).into())
    }

    fn resource(&self) -> Result<Option<ResourceIndicator>, OAuthError> {
        self.get("resource")
            .map(ResourceIndicator::parse)
            .transpose()
            .map_err(OAuthError::from)
    }
}

/// A `resource` parameter (RFC 8707): an absolute URI without a fragment, at most
/// [`MAX_RESOURCE_LEN`] bytes. Whether a live resource has it is for the operation to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceIndicator(String);

impl ResourceIndicator {
    /// Checks the shape of a `resource` value.
    pub fn parse(value: &str) -> Result<Self, OAuthReason> {
        let well_formed = value.len() <= MAX_RESOURCE_LEN
            && url::Url::parse(value).is_ok_and(|u| u.fragment().is_none());
        if well_formed {
            Ok(Self(value.to_owned()))
        } else {
            Err(OAuthReason::MalformedResource)
        }
    }

    /// The identifier as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How the client presented itself.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// HTTP Basic (id and secret already form-urldecoded).
    Basic {
        /// `client_id`.
        id: String,
        /// `client_secret`.
        secret: Secret,
    },
    /// `client_id` and `client_secret` in the body.
    Post {
        /// `client_id`.
        id: String,
        /// `client_secret`.
        secret: Secret,
    },
    /// Only `client_id` (public client).
    None {
        /// `client_id`.
        id: String,
    },
    /// `client_assertion` of type `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
    /// (`private_key_jwt`, RFC 7523 §2.2).
    Assertion {
        /// `client_id`, or the assertion's (unverified) `iss` when it is left out.
        id: String,
        /// The JWT.
        assertion: Secret,
    },
}

/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl ClientAuth {
    /// The presented `client_id`.
    pub fn id(&self) -> &str {
        match self {
            Self::Basic { id, .. }
            | Self::Post { id, .. }
            | Self::None { id }
            | Self::Assertion { id, .. } => id,
        }
    }

    /// Whether HTTP Basic was used (then `invalid_client` is a 401 with a challenge).
    pub fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }

    /// Works out the method from the Basic header (if any) and the form; more than one
    /// method at once is `invalid_request`.
    pub fn from_form(
        basic: Option<(String, String)>,
        form: &OAuthForm,
    ) -> Result<Self, OAuthError> {
        let post_id = form.0.get("client_id");
        let post_secret = form.0.get("client_secret");
        let assertion_type = form.0.get("client_assertion_type");
        let assertion = form.0.get("client_assertion");
        if assertion_type.is_some() || assertion.is_some() {
            if basic.is_some() || post_secret.is_some() {
                return Err(OAuthReason::TwoClientAuthMethods.into());
            }
            if assertion_type.map(String::as_str) != Some(JWT_BEARER_ASSERTION) {
                return Err(OAuthReason::UnsupportedAssertionType.into());
            }
            let Some(assertion) = assertion.filter(|a| !a.is_empty()) else {
                return Err(OAuthReason::MissingParameter("client_assertion").into());
            };
            // RFC 7521 §4.2: `client_id` may be left out; the assertion names the client.
            let id = match post_id {
                Some(id) => id.clone(),
                None => crate::jwt::unverified_claims(assertion)
                    .and_then(|claims| claims.get("iss")?.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            };
            return Ok(Self::Assertion {
                id,
                assertion: Secret::new(assertion.clone()),
            });
        }
        match (basic, post_id, post_secret) {
            (Some(_), _, Some(_)) => Err(OAuthReason::TwoClientAuthMethods.into()),
            (Some((id, secret)), post_id, None) => {
                if post_id.is_some_and(|p| *p != id) {
                    return Err(OAuthReason::ClientIdMismatch.into());
                }
                Ok(Self::Basic {
                    id,
                    secret: Secret::new(secret),
                })
            }
            (None, Some(id), Some(secret)) => Ok(Self::Post {
                id: id.clone(),
                secret: Secret::new(secret.clone()),
            }),
            (None, Some(id), None) => Ok(Self::None { id: id.clone() }),
            (None, None, _) => Err(OAuthReason::ClientAuthenticationRequired.into()),
        }
    }
}

/// HTTP Basic client credentials that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedBasic;

/// The client id and secret of an `Authorization` header value in the `Basic` scheme: base64
/// of `id:secret`, each half form-urlencoded first (RFC 6749 §2.3.1). `Ok(None)` for another
/// scheme. Only `+` and `%XX` are decoded, so a client that did not encode (most do not) gets
/// its id and secret back unchanged unless they hold one of those.
pub fn basic_credentials(authorization: &str) -> Result<Option<(String, String)>, MalformedBasic> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    let Some((scheme, encoded)) = authorization.split_once(' ') else {
        return Err(MalformedBasic);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| MalformedBasic)?;
    let text = String::from_utf8(decoded).map_err(|_| MalformedBasic)?;
    let (id, secret) = text.split_once(':').ok_or(MalformedBasic)?;
    // Each half is one form-encoded value (a `&` in it is data, not a separator).
    let decode = |part: &str| form_decoded(part.as_bytes()).into_owned();
    Ok(Some((decode(id), decode(secret))))
}

/// A request of the token, revocation or introspection endpoint: the client's credentials
/// and what it asks for. Its `Debug` shows no secret (they are all [`Secret`]s).
#[derive(Debug, Clone)]
pub struct ClientRequest<T> {
    /// Client authentication.
    pub client: ClientAuth,
    /// The request's own parameters.
    pub params: T,
}

impl<T> ClientRequest<T>
where
    T: for<'a> TryFrom<&'a OAuthForm, Error = OAuthError>,
{
    /// The client's credentials (the decoded HTTP Basic header, if any, and the form), then
    /// the request's parameters.
    pub fn from_form(
        basic: Option<(String, String)>,
        form: &OAuthForm,
    ) -> Result<Self, OAuthError> {
        let client = ClientAuth::from_form(basic, form)?;
        let params = T::try_from(form)?;
        Ok(Self { client, params })
    }
}

/// What a token request asks for (RFC 6749 §4.1.3, §4.4.2, §6), one variant per grant type.
#[derive(Debug, Clone)]
pub enum TokenGrant {
    /// `authorization_code`.
    AuthorizationCode {
        /// The code from the redirect.
        code: Secret,
        /// The `redirect_uri` of the authorization request, when it named one.
        redirect_uri: Option<String>,
        /// The PKCE verifier (RFC 7636).
        code_verifier: Option<Secret>,
        /// The resource the grant was made for, named again (or not).
        resource: Option<ResourceIndicator>,
    },
    /// `client_credentials`.
    ClientCredentials {
        /// Space-separated scopes: Net API's own, or the resource's when there is one.
        scope: Option<String>,
        /// The resource the token is for; none: Net API's own.
        resource: Option<ResourceIndicator>,
    },
    /// `refresh_token`.
    RefreshToken {
        /// The refresh token.
        refresh_token: Secret,
        /// A narrower set of the granted scopes.
        scope: Option<String>,
        /// The resource the grant was made for, named again (or not).
        resource: Option<ResourceIndicator>,
    },
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
    DeviceCode {
        /// The device code of the device authorization response.
        device_code: Secret,
        /// The resource of the device authorization request, named again (or not).
        resource: Option<ResourceIndicator>,
    },
    /// `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693).
    TokenExchange(TokenExchange),
}

/// The token type URI of an access token (RFC 8693 §3), the only type Net API exchanges
/// and issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Longest `subject_token` or `actor_token` looked at; Net API's access tokens are far
/// shorter.
const MAX_EXCHANGED_TOKEN_LEN: usize = 8192;

/// What a token exchange request (RFC 8693 §2.1) asks for, its token types already checked:
/// both tokens are access tokens, and so is the token asked for.
#[derive(Debug, Clone)]
pub struct TokenExchange {
    /// The access token of the user the new token acts for.
    pub subject_token: Secret,
    /// An access token of the exchanging client itself, if it sent one.
    pub actor_token: Option<Secret>,
    /// The target: `resource`, or `audience` (the same identifier if both are sent); none:
    /// the subject token's own audience.
    pub target: Option<ResourceIndicator>,
    /// Space-separated scopes, a narrower set of the subject token's.
    pub scope: Option<String>,
}

impl TokenExchange {
    fn parse(form: &OAuthForm) -> Result<Self, OAuthError> {
        let token = |name: &'static str| -> Result<Option<Secret>, OAuthError> {
            match form.get(name) {
                None => Ok(None),
                Some(value) if value.len() > MAX_EXCHANGED_TOKEN_LEN => {
                    Err(OAuthReason::TokenTooLong(name).into())
                }
                Some(value) => Ok(Some(Secret::new(value))),
            }
        };
        let access_token_type = |name: &'static str| match form.get(name) {
            Some(ACCESS_TOKEN_TYPE) | None => Ok(()),
            Some(other) => Err(OAuthError::from(OAuthReason::UnsupportedTokenType {
                parameter: name,
                value: echoed(other),
            })),
        };
        let subject_token =
            token("subject_token")?.ok_or(OAuthReason::MissingParameter("subject_token"))?;
        form.required("subject_token_type")?;
        access_token_type("subject_token_type")?;
        // RFC 8693 §2.1: actor_token_type is required with actor_token, and only with it.
        let actor_token = token("actor_token")?;
        match (&actor_token, form.get("actor_token_type")) {
            (Some(_), None) => return Err(OAuthReason::MissingParameter("actor_token_type").into()),
            (None, Some(_)) => return Err(OAuthReason::ActorTokenTypeAlone.into()),
            _ => access_token_type("actor_token_type")?,
        }
        access_token_type("requested_token_type")?;
        let resource = form.resource()?;
        let audience = form
            .get("audience")
            .map(ResourceIndicator::parse)
            .transpose()?;
        let target = match (resource, audience) {
            (Some(resource), Some(audience)) if resource != audience => {
                return Err(OAuthReason::SeveralResources.into());
            }
            (resource, audience) => resource.or(audience),
        };
        Ok(Self {
            subject_token,
            actor_token,
            target,
            scope: form.get("scope").map(str::to_owned),
        })
    }
}

impl TokenGrant {
    /// Its grant type.
    pub const fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::TokenExchange(_) => GrantType::TokenExchange,
            Self::DeviceCode { .. } => GrantType::DeviceCode,
        }
    }
}

impl TryFrom<&OAuthForm> for TokenGrant {
    type Error = OAuthError;

    fn try_from(form: &OAuthForm) -> Result<Self, OAuthError> {
        let name = form.required("grant_type")?;
        let grant = GrantType::parse(name)
            .ok_or_else(|| OAuthReason::UnsupportedGrantType(echoed(name)))?;
        let text = |name: &str| form.get(name).map(str::to_owned);
        Ok(match grant {
            GrantType::AuthorizationCode => Self::AuthorizationCode {
                code: Secret::new(form.required("code")?),
                redirect_uri: text("redirect_uri"),
                code_verifier: form.get("code_verifier").map(Secret::new),
                resource: form.resource()?,
            },
            GrantType::ClientCredentials => Self::ClientCredentials {
                scope: text("scope"),
                resource: form.resource()?,
            },
            GrantType::RefreshToken => Self::RefreshToken {
                refresh_token: Secret::new(form.required("refresh_token")?),
                scope: text("scope"),
                resource: form.resource()?,
            },
            GrantType::TokenExchange => Self::TokenExchange(TokenExchange::parse(form)?),
            GrantType::DeviceCode => Self::DeviceCode {
                device_code: Secret::new(form.required("device_code")?),
                resource: form.resource()?,
            },
        })
    }
}

/// What a device authorization request (RFC 8628 §3.1) asks for.
#[derive(Debug, Clone)]
pub struct DeviceAuthorizationParams {
    /// Space-separated scopes: Net API's own, or the resource's when there is one; default:
    /// every scope the client may use.
    pub scope: Option<String>,
    /// The resource the tokens are to be for (RFC 8707); none: Net API's own.
    pub resource: Option<ResourceIndicator>,
}

impl TryFrom<&OAuthForm> for DeviceAuthorizationParams {
    type Error = OAuthError;

    fn try_from(form: &OAuthForm) -> Result<Self, OAuthError> {
        Ok(Self {
            scope: form.get("scope").map(str::to_owned),
            resource: form.resource()?,
        })
    }
}

/// The token a revocation (RFC 7009) or introspection (RFC 7662) request names.
/// `token_type_hint` is only a hint, and not needed: the token's prefix or shape tells.
#[derive(Debug, Clone)]
pub struct TokenTarget {
    /// The access token, refresh token or API key.
    pub token: Secret,
}

impl TryFrom<&OAuthForm> for TokenTarget {
    type Error = OAuthError;

    fn try_from(form: &OAuthForm) -> Result<Self, OAuthError> {
        Ok(Self {
            token: Secret::new(form.required("token")?),
        })
    }
}

/// `prompt` (OpenID Connect Core §3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: authenticate again.
    pub login: bool,
    /// `consent`: ask again.
    pub consent: bool,
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707, OpenID
/// Connect), parsed once. A bad value is kept as the reason it will be refused with: that
/// can be told only once the client and its redirect URI are known to be trustworthy, and
/// the checks answer in a fixed order (see `NetApi::validate_authorization`). An empty value
/// counts as absent.
#[derive(Debug, Clone)]
pub struct AuthorizationParams {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// The first parameter given more than once (RFC 6749 §3.1 forbids it).
    pub repeated: Option<String>,
    /// `state`, returned verbatim; at most 512 bytes.
    pub state: Result<Option<String>, AuthorizeReason>,
    /// Whether `request` is present (request objects are not supported).
    pub request_object: bool,
    /// `request_uri`: a pushed authorization request's (RFC 9126).
    pub request_uri: Option<String>,
    /// `response_type=code` with `response_mode` `query` or absent: the only response
    /// supported.
    pub response: Result<(), AuthorizeReason>,
    /// `scope`, space-separated: Net API's own, or the resource's when there is one.
    pub scope: Option<String>,
    /// `resource` (RFC 8707).
    pub resource: Result<Option<ResourceIndicator>, AuthorizeReason>,
    /// The PKCE S256 challenge (43 characters of base64url).
    pub code_challenge: Result<Option<String>, AuthorizeReason>,
    /// The DPoP key thumbprint to bind the code to (RFC 9449 §10): 43 characters of
    /// base64url (a SHA-256 JWK thumbprint).
    pub dpop_jkt: Result<Option<String>, AuthorizeReason>,
    /// The OpenID Connect nonce; at most 512 bytes.
    pub nonce: Result<Option<String>, AuthorizeReason>,
    /// `prompt`.
    pub prompt: Result<Prompt, AuthorizeReason>,
    /// `max_age`, a non-negative number of seconds.
    pub max_age: Result<Option<i64>, AuthorizeReason>,
}

impl AuthorizationParams {
    /// Reads the decoded pairs of the query (or the consent form's copy of it). Parsing
    /// never fails: see the type's documentation.
    pub fn parse(pairs: &[(String, String)]) -> Self {
        let mut params: HashMap<&str, &str> = HashMap::with_capacity(pairs.len());
        let mut repeated = None;
        for (name, value) in pairs {
            if params.insert(name, value).is_some() && repeated.is_none() {
                repeated = Some(echoed(name));
            }
        }
        let request_object = params.contains_key("request");
        let get = |name: &str| params.get(name).copied().filter(|v| !v.is_empty());
        let owned = |name: &str| get(name).map(str::to_owned);
        let bounded = |name: &str, too_long: AuthorizeReason| match get(name) {
            Some(value) if value.len() > MAX_PARAM_LEN => Err(too_long),
            value => Ok(value.map(str::to_owned)),
        };
        Self {
            client_id: owned("client_id"),
            redirect_uri: owned("redirect_uri"),
            repeated,
            state: bounded("state", AuthorizeReason::StateTooLong),
            request_object,
            request_uri: owned("request_uri"),
            response: response(get("response_type"), get("response_mode")),
            scope: owned("scope"),
            resource: get("resource")
                .map(ResourceIndicator::parse)
                .transpose()
                .map_err(|_| AuthorizeReason::MalformedResource),
            code_challenge: code_challenge(get("code_challenge"), get("code_challenge_method")),
            dpop_jkt: match get("dpop_jkt") {
                None => Ok(None),
                Some(jkt) if is_thumbprint(jkt) => Ok(Some(jkt.to_owned())),
                Some(_) => Err(AuthorizeReason::MalformedDpopJkt),
            },
            nonce: bounded("nonce", AuthorizeReason::NonceTooLong),
            prompt: get("prompt").map_or(Ok(Prompt::default()), prompt),
            max_age: match get("max_age").map(str::parse::<i64>) {
                None => Ok(None),
                Some(Ok(seconds)) if seconds >= 0 => Ok(Some(seconds)),
                Some(_) => Err(AuthorizeReason::MalformedMaxAge),
            },
        }
    }
}

fn response(response_type: Option<&str>, mode: Option<&str>) -> Result<(), AuthorizeReason> {
    match response_type {
        Some("code") => {}
        Some(_) => return Err(AuthorizeReason::UnsupportedResponseType),
        None => return Err(AuthorizeReason::MissingResponseType),
    }
    match mode {
        None | Some("query") => Ok(()),
        Some(_) => Err(AuthorizeReason::UnsupportedResponseMode),
    }
}

/// Whether `text` has the shape of a SHA-256 JWK thumbprint: 43 characters of base64url
/// (32 bytes, unpadded).
pub(crate) fn is_thumbprint(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        // The last character carries 4 bits of the 32 bytes and 2 bits of nothing.
        && text
            .bytes()
            .last()
            .is_some_and(|b| b"AEIMQUYcgkosw048".contains(&b))
}

fn code_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<String>, AuthorizeReason> {
    match (challenge, method) {
        (Some(challenge), Some("S256"))
            if challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(challenge.to_owned()))
        }
        (Some(_), Some("S256")) => Err(AuthorizeReason::MalformedCodeChallenge),
        (Some(_), _) => Err(AuthorizeReason::CodeChallengeMethod),
        (None, _) => Ok(None),
    }
}

fn prompt(text: &str) -> Result<Prompt, AuthorizeReason> {
    let mut prompt = Prompt::default();
    for value in text.split(' ').filter(|v| !v.is_empty()) {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            _ => return Err(AuthorizeReason::UnknownPrompt),
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(AuthorizeReason::PromptNoneCombined);
    }
    Ok(prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_as_form_urlencoded_does() {
        let bodies: [&[u8]; 9] = [
            b"grant_type=client_credentials&scope=users%3Aread+keys%3Awrite",
            b"token=eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln&client_id=a&client_secret=b",
            b"a=1&&b=&=c&d&e=f=g",
            b"sc%6Fpe=x%2&y=%zz&z=%&w=%4",
            b"v=%C3%A9%FF&raw=\xc3\xa9\xff",
            b"&&&",
            b"",
            b"plus=a+b%2Bc&space=%20",
            b"\x80=\x80&%80=%80",
        ];
        for body in bodies {
            let theirs: Vec<(String, String)> =
                url::form_urlencoded::parse(body).into_owned().collect();
            assert_eq!(
                OAuthForm::decode(body),
                theirs,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(form_decoded(b"plain"), Cow::Borrowed("plain")));
    }
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn basic(credentials: &str) -> Result<Option<(String, String)>, MalformedBasic> {
        basic_credentials(&format!("Basic {}", STANDARD.encode(credentials)))
    }

    fn pair(id: &str, secret: &str) -> Result<Option<(String, String)>, MalformedBasic> {
        Ok(Some((id.to_owned(), secret.to_owned())))
    }

    #[test]
    fn basic_halves_are_form_urldecoded_whole() {
        assert_eq!(basic("my%20app:a+b%2B%3A"), pair("my app", "a b+:"));
        assert_eq!(basic("cli:s:e:c"), pair("cli", "s:e:c"));
        // Found by fuzzing: a `&` used to end the half, so "secret&anything" read as "secret".
        assert_eq!(basic("cli&x=y:secret&x"), pair("cli&x=y", "secret&x"));
        assert_eq!(basic("cli:%26"), pair("cli", "&"));
        assert_eq!(basic("no colon"), Err(MalformedBasic));
    }

    #[test]
    fn basic_credentials_know_their_scheme() {
        let encoded = STANDARD.encode("cli:secret");
        assert_eq!(
            basic_credentials(&format!("bAsIc {encoded}")),
            pair("cli", "secret")
        );
        assert_eq!(basic_credentials(&format!("Bearer {encoded}")), Ok(None));
        assert_eq!(basic_credentials("Basic"), Err(MalformedBasic));
        assert_eq!(basic_credentials("Basic !!!"), Err(MalformedBasic));
        let not_utf8 = STANDARD.encode([0xff, b':', b'x']);
        assert_eq!(
            basic_credentials(&format!("Basic {not_utf8}")),
            Err(MalformedBasic)
        );
    }

    #[test]
    fn form_bodies_decode_in_order_with_repeats() {
        assert_eq!(
            OAuthForm::decode(b"b=1&a=%20x+y&b=2&&c"),
            pairs(&[("b", "1"), ("a", " x y"), ("b", "2"), ("c", "")])
        );
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn form(list: &[(&str, &str)]) -> OAuthForm {
        OAuthForm::parse(&pairs(list)).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn grant(list: &[(&str, &str)]) -> Result<TokenGrant, OAuthReason> {
        TokenGrant::try_from(&form(list)).map_err(|e| e.reason)
    }

    #[test]
    fn a_repeated_parameter_is_refused_and_several_resources_first() {
        let refused = |list| OAuthForm::parse(&pairs(list)).err().map(|e| e.reason);
        assert_eq!(
            refused(&[
                ("grant_type", "client_credentials"),
                ("scope", "a"),
                ("scope", "b")
            ]),
            Some(OAuthReason::RepeatedParameter("scope".to_owned()))
        );
        // Even an empty repeat is a repeat.
        assert_eq!(
            refused(&[("token", ""), ("token", "x")]),
            Some(OAuthReason::RepeatedParameter("token".to_owned()))
        );
        assert_eq!(
            refused(&[
                ("scope", "a"),
                ("scope", "b"),
                ("resource", "https://a.example"),
                ("resource", "https://b.example"),
            ]),
            Some(OAuthReason::SeveralResources)
        );
        let long = "n".repeat(1000);
        assert_eq!(
            refused(&[(&long, "1"), (&long, "2")]),
            Some(OAuthReason::RepeatedParameter("n".repeat(64)))
        );
    }

    #[test]
    fn a_missing_or_empty_parameter_is_named() {
        assert_eq!(
            grant(&[]).err(),
            Some(OAuthReason::MissingParameter("grant_type"))
        );
        assert_eq!(
            grant(&[("grant_type", "authorization_code"), ("code", "")]).err(),
            Some(OAuthReason::MissingParameter("code"))
        );
        assert_eq!(
            grant(&[("grant_type", "refresh_token")]).err(),
            Some(OAuthReason::MissingParameter("refresh_token"))
        );
        assert_eq!(
            TokenTarget::try_from(&form(&[("token_type_hint", "access_token")]))
                .err()
                .map(|e| e.reason),
            Some(OAuthReason::MissingParameter("token"))
        );
    }

    #[test]
    fn an_unknown_grant_type_is_unsupported_and_echoed_bounded() {
        assert_eq!(
            grant(&[("grant_type", "password")]).err(),
            Some(OAuthReason::UnsupportedGrantType("password".to_owned()))
        );
        let long = "x".repeat(5000);
        assert_eq!(
            grant(&[("grant_type", &long)]).err(),
            Some(OAuthReason::UnsupportedGrantType("x".repeat(64)))
        );
    }

    #[test]
    fn a_bad_resource_is_invalid_target() {
        let long = format!("https://api.example.com/{}", "a".repeat(MAX_RESOURCE_LEN));
        for bad in [
            "orders",
            "/relative",
            "https://api.example.com/#frag",
            &long,
        ] {
            assert_eq!(
                grant(&[("grant_type", "client_credentials"), ("resource", bad)]).err(),
                Some(OAuthReason::MalformedResource),
                "{bad}"
            );
            assert!(
                AuthorizationParams::parse(&pairs(&[("resource", bad)]))
                    .resource
                    .is_err()
            );
        }
        assert_eq!(
            OAuthReason::MalformedResource.kind(),
            crate::service::OAuthErrorKind::InvalidTarget
        );
        let Ok(TokenGrant::ClientCredentials { resource, scope }) = grant(&[
            ("grant_type", "client_credentials"),
            ("resource", "https://api.example.com/orders"),
            ("scope", ""),
        ]) else {
            panic!("a well-formed resource is accepted");
        };
        assert_eq!(
            resource.as_ref().map(ResourceIndicator::as_str),
            Some("https://api.example.com/orders")
        );
        assert_eq!(scope, None, "an empty value is absent");
    }

    #[test]
    fn each_grant_type_reads_its_parameters() {
        let Ok(TokenGrant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
        }) = grant(&[
            ("grant_type", "authorization_code"),
            ("code", "napac_x"),
            ("redirect_uri", "https://app.example/cb"),
            ("code_verifier", "v"),
        ])
        else {
            panic!("an authorization code grant");
        };
        assert_eq!(code.expose(), "napac_x");
        assert_eq!(redirect_uri.as_deref(), Some("https://app.example/cb"));
        assert_eq!(code_verifier.as_ref().map(Secret::expose), Some("v"));
        assert!(resource.is_none());
        let refresh = grant(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "naprt_x"),
        ]);
        assert!(matches!(
            refresh,
            Ok(TokenGrant::RefreshToken { ref refresh_token, .. }) if refresh_token.expose() == "naprt_x"
        ));
        assert_eq!(
            refresh.map(|g| g.grant_type()).ok(),
            Some(GrantType::RefreshToken)
        );
    }

    #[test]
    fn two_client_authentication_methods_are_refused() {
        let id_and_secret = form(&[("client_id", "cli_x"), ("client_secret", "s")]);
        let basic = || Some(("cli_x".to_owned(), "s".to_owned()));
        let reason = |r: Result<ClientAuth, OAuthError>| r.err().map(|e| e.reason);
        assert_eq!(
            reason(ClientAuth::from_form(basic(), &id_and_secret)),
            Some(OAuthReason::TwoClientAuthMethods)
        );
        assert_eq!(
            reason(ClientAuth::from_form(
                basic(),
                &form(&[("client_id", "cli_y")])
            )),
            Some(OAuthReason::ClientIdMismatch)
        );
        assert!(matches!(
            ClientAuth::from_form(None, &id_and_secret),
            Ok(ClientAuth::Post { .. })
        ));
        assert!(matches!(
            ClientAuth::from_form(None, &form(&[("client_id", "cli_x")])),
            Ok(ClientAuth::None { .. })
        ));
        assert_eq!(
            reason(ClientAuth::from_form(None, &form(&[]))),
            Some(OAuthReason::ClientAuthenticationRequired)
        );
    }

    #[test]
    fn debug_output_of_a_request_carries_no_secret() {
        let form = form(&[
            ("grant_type", "authorization_code"),
            ("code", "napac_XYZZYcode"),
            ("code_verifier", "XYZZYverifier"),
            ("client_id", "cli_x"),
            ("client_secret", "napcs_XYZZYclient"),
        ]);
        let request = ClientRequest::<TokenGrant>::from_form(None, &form);
        let printed = format!("{request:?} {form:?}");
        assert!(printed.contains("AuthorizationCode") && printed.contains("cli_x"));
        assert!(
            printed.contains("code_verifier"),
            "the form names its parameters"
        );
        assert!(!printed.contains("XYZZY"), "{printed}");
    }

    #[test]
    fn dpop_jkt_must_be_a_sha256_thumbprint() {
        // The RFC 7638 example's thumbprint, and every base64url character where it may be.
        let good = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        assert!(is_thumbprint(good));
        let parsed = AuthorizationParams::parse(&pairs(&[("dpop_jkt", good)]));
        assert_eq!(parsed.dpop_jkt, Ok(Some(good.to_owned())));
        assert_eq!(
            AuthorizationParams::parse(&pairs(&[("dpop_jkt", "")])).dpop_jkt,
            Ok(None)
        );
        let mut last_bits = good[..42].to_owned();
        last_bits.push('t');
        for bad in [
            &good[..42],
            &format!("{good}A"),
            &format!("{}=", &good[..42]),
            &format!("{}/", &good[..42]),
            &format!("{}\u{e9}", &good[..41]),
            last_bits.as_str(),
            &"A".repeat(10_000),
        ] {
            assert!(!is_thumbprint(bad), "{bad}");
            assert_eq!(
                AuthorizationParams::parse(&pairs(&[("dpop_jkt", bad)])).dpop_jkt,
                Err(AuthorizeReason::MalformedDpopJkt),
                "{bad}"
            );
        }
    }

    #[test]
    fn authorization_params_keep_each_problem_for_later() {
        let parsed = AuthorizationParams::parse(&pairs(&[
            ("client_id", "cli_x"),
            ("state", &"s".repeat(513)),
            ("response_type", "token"),
            ("code_challenge", "short"),
            ("code_challenge_method", "S256"),
            ("prompt", "none login"),
            ("max_age", "-1"),
            ("nonce", ""),
            ("scope", "a"),
            ("scope", "b"),
        ]));
        assert_eq!(parsed.client_id.as_deref(), Some("cli_x"));
        assert_eq!(parsed.redirect_uri, None);
        assert_eq!(parsed.repeated.as_deref(), Some("scope"));
        assert_eq!(parsed.state, Err(AuthorizeReason::StateTooLong));
        assert_eq!(
            parsed.response,
            Err(AuthorizeReason::UnsupportedResponseType)
        );
        assert_eq!(
            parsed.code_challenge,
            Err(AuthorizeReason::MalformedCodeChallenge)
        );
        assert_eq!(parsed.prompt, Err(AuthorizeReason::PromptNoneCombined));
        assert_eq!(parsed.max_age, Err(AuthorizeReason::MalformedMaxAge));
        assert_eq!(parsed.nonce, Ok(None));
        assert!(!parsed.request_object);

        let good = AuthorizationParams::parse(&pairs(&[
            ("response_type", "code"),
            ("response_mode", "query"),
            ("code_challenge", &"E".repeat(43)),
            ("code_challenge_method", "S256"),
            ("prompt", "login consent"),
            ("max_age", "0"),
            ("request", ""),
        ]));
        assert_eq!(good.response, Ok(()));
        assert_eq!(good.code_challenge, Ok(Some("E".repeat(43))));
        assert_eq!(
            good.prompt,
            Ok(Prompt {
                none: false,
                login: true,
                consent: true
            })
        );
        assert_eq!(good.max_age, Ok(Some(0)));
        assert!(good.request_object, "present, even empty");
        assert_eq!(
            AuthorizationParams::parse(&pairs(&[("code_challenge", "x")])).code_challenge,
            Err(AuthorizeReason::CodeChallengeMethod)
        );
        assert_eq!(
            AuthorizationParams::parse(&[]).response,
            Err(AuthorizeReason::MissingResponseType)
        );
    }
}
