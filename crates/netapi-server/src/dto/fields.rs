//! The rules of single fields, stated once and referenced by the fields that follow them
//! (`#[schema(schema_with = ...)]`): ids, times, names, emails, passwords, scopes, redirect
//! URIs. The patterns are what the server checks, written so that schemathesis generates
//! values the server takes; what a pattern cannot say is said in the description.

use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, Ref, RefOr, SchemaFormat};

fn nullable(types: Type) -> SchemaType {
    SchemaType::from_iter([types, Type::Null])
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `[A-Za-z0-9]` ids with a kind prefix (`usr_...`).
fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-9A-Za-z]{{20}}$")
}

/// Printable text that is not blank (`normalize_name`): 1 to 100 characters, no control
/// characters, at least one that is not white space.
const NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// something@domain.tld (`normalize_email`): no white space or control characters, one `@`,
/// and a domain of dot-separated labels.
const EMAIL_PATTERN: &str =
    r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@.\s\x00-\x1f\x7f-\x9f]+(\.[^@.\s\x00-\x1f\x7f-\x9f]+)+$";
/// The same in printable ASCII.
const ASCII_EMAIL_PATTERN: &str =
    r"^[\x21-\x3f\x41-\x7e]+@[\x21-\x2d\x2f-\x3f\x41-\x7e]+(\.[\x21-\x2d\x2f-\x3f\x41-\x7e]+)+$";

/// The redirect URIs `validate_redirect_uri` takes, or a few more: `https` to a host name
/// (labels of letters, digits, `-` and `_`, the last starting with a letter), an IPv4 or an
/// IPv6 address; `http` to a loopback host; or a private-use scheme containing a dot. The
/// `http(s)` forms are in normal form as the URL standard writes it: an optional port, no
/// `.` or `..` path segment, nothing the standard would percent-encode, a query only after
/// a path, no user information or fragment. What a pattern cannot say (label lengths, which
/// ports, a default port written out, a well-formed IPv6 address) is checked and said in the
/// description; nothing the server takes falls outside the pattern.
fn redirect_uri_pattern() -> String {
    let label = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?";
    let last_label = r"[a-z](?:[a-z0-9_-]*[a-z0-9_])?";
    let host = format!(
        r"(?:(?:{label}\.)*{last_label}|[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|\[[0-9a-f:.]+\])"
    );
    let loopback = r"(?:127\.0\.0\.1|\[::1\]|localhost)";
    // Printable ASCII but for space, `"`, `#`, `<`, `>`, `?`, `` ` ``, `{`, `}`, `/` and `\`.
    let path = r"!$%&'()*+,\-.0-9:;=@A-Z\[\]^_a-z|~";
    let path_no_dot = r"!$%&'()*+,\-0-9:;=@A-Z\[\]^_a-z|~";
    // Printable ASCII but for space, `"`, `#`, `<`, `>` and `'`.
    let query = r"!$%&()*+,\-./0-9:;=?@A-Z\[\\\]^_`a-z{|}~";
    let segment =
        format!("(?:[{path_no_dot}][{path}]*|\\.[{path_no_dot}][{path}]*|\\.\\.[{path}]+)?");
    let web = format!(
        "(?:https://{host}|http://{loopback})(?::[0-9]{{1,5}})?((/{segment})+(\\?[{query}]*)?)?"
    );
    // Printable ASCII but for space and `#`.
    let private_use = r#"[a-z][a-z0-9+.-]*\.[a-z0-9+.-]*:[!"$-~]*"#;
    format!("^(?:{web}|{private_use})$")
}

fn name_field() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(NAME_PATTERN))
}

pub(crate) fn name() -> Schema {
    name_field()
        .description(Some("1 to 100 printable characters."))
        .into()
}

pub(crate) fn name_nullable() -> Schema {
    name_field()
        .schema_type(nullable(Type::String))
        .description(Some(
            "1 to 100 printable characters; `null` or absent: unchanged.",
        ))
        .into()
}

/// The server counts at most 254 bytes of UTF-8, which a schema cannot count: the email is
/// either printable ASCII (up to 254 characters) or up to 63 characters of anything.
fn email_variants() -> [Schema; 2] {
    [
        string()
            .max_length(Some(254))
            .pattern(Some(ASCII_EMAIL_PATTERN))
            .into(),
        string()
            .max_length(Some(63))
            .pattern(Some(EMAIL_PATTERN))
            .into(),
    ]
}

const EMAIL_DESCRIPTION: &str = "something@domain.tld, at most 254 bytes of UTF-8, without white \
                                 space or control characters; stored lower-cased.";

pub(crate) fn email() -> Schema {
    let mut schema = AnyOfBuilder::new().description(Some(EMAIL_DESCRIPTION));
    for variant in email_variants() {
        schema = schema.item(variant);
    }
    schema.into()
}

pub(crate) fn email_nullable() -> Schema {
    let mut schema = AnyOfBuilder::new().description(Some(format!(
        "{EMAIL_DESCRIPTION} A new, unused one; `null` or absent: unchanged."
    )));
    for variant in email_variants() {
        schema = schema.item(variant);
    }
    schema
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

pub(crate) fn email_link() -> Schema {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(44))
        .max_length(Some(44))
        .description(Some(
            "The `token` of an emailed link (`napel_...`): single use; reset links work 30 minutes, verification links 24 hours.",
        ))
        .into()
}

pub(crate) fn password() -> Schema {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(8))
        .max_length(Some(128))
        .description(Some("8 to 128 characters; not a common password, and not containing the email's local part."))
        .into()
}

pub(crate) fn password_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(8))
        .max_length(Some(128))
        .description(Some("8 to 128 characters; `null` or absent: unchanged."))
        .into()
}

pub(crate) fn current_password() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .max_length(Some(128))
        .description(Some(
            "The user's present password. Required with a new `email` or `password` (missing or \
             wrong: 400 naming `current_password`; wrong ones count as failed sign-ins), except \
             for an administrator changing another user. A successful change ends the user's \
             browser sessions and refresh tokens (and their access tokens).",
        ))
        .into()
}

pub(crate) fn role_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(
            ["admin", "member"].into_iter().map(Some).chain([None]),
        ))
        .description(Some(
            "`admin` or `member`; changing it needs administrator powers.",
        ))
        .into()
}

pub(crate) fn scope_string_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .pattern(Some(
            "^ *([a-z][a-z0-9_.:-]{0,63}( +[a-z][a-z0-9_.:-]{0,63})*)? *$",
        ))
        .description(Some(
            "Space-separated scope names: the most the client's tokens may carry, of Net API's \
             own (`Scope`) and of the client's `resources`. Default: the scopes of the \
             credential making the request, which it cannot exceed (403), and every scope it \
             holds on those resources.",
        ))
        .into()
}

pub(crate) fn future_time_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some(
            "RFC 3339 date-time in the future; `null` or absent: the key never expires.",
        ))
        .into()
}

pub(crate) fn rate_limit_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer))
        .minimum(Some(0))
        .maximum(Some(u32::MAX))
        .description(Some(
            "Requests per minute for this credential; `null`: the server's default. Only \
             administrators may raise it above the default or turn it off (0).",
        ))
        .into()
}

pub(crate) fn grace_period_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer))
        .minimum(Some(0))
        .maximum(Some(2_592_000))
        .description(Some(
            "Seconds the old key keeps working (default 0: it stops at once; at most 30 days).",
        ))
        .into()
}

fn redirect_uri_items() -> ObjectBuilder {
    string()
        .pattern(Some(redirect_uri_pattern()))
        .description(Some(
            "Absolute, in normal form, printable ASCII, without fragment or user information, \
             at most 2000 characters: `https` to a host name (labels of at most 63 characters) \
             or an IP address, `http` on a loopback host, or a private-use scheme containing a \
             dot (RFC 8252). A port, if any, is 1 to 65535 and not the scheme's default.",
        ))
}

pub(crate) fn redirect_uris() -> Schema {
    ArrayBuilder::new()
        .items(redirect_uri_items())
        .max_items(Some(20))
        .description(Some(
            "At most 20; compared exactly at authorization time. `authorization_code` needs at \
             least one.",
        ))
        .into()
}

pub(crate) fn redirect_uris_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(redirect_uri_items())
        .max_items(Some(20))
        .description(Some("At most 20; `null` or absent: unchanged."))
        .into()
}

/// `post_logout_redirect_uris` in an answer or a creation.
pub(crate) fn post_logout_redirect_uris() -> Schema {
    ArrayBuilder::new()
        .items(redirect_uri_items().max_length(Some(2000)))
        .max_items(Some(20))
        .description(Some(
            "Where `/oauth/logout` may send the browser after signing out (OpenID Connect \
             RP-Initiated Logout); at most 20, compared exactly, the rules of `redirect_uris`.",
        ))
        .into()
}

/// `post_logout_redirect_uris` in a change or an RFC 7591 request.
pub(crate) fn post_logout_redirect_uris_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(redirect_uri_items().max_length(Some(2000)))
        .max_items(Some(20))
        .description(Some(
            "Where `/oauth/logout` may send the browser after signing out; at most 20, compared \
             exactly. `null` or absent: unchanged (none at creation).",
        ))
        .into()
}

pub(crate) fn grant_types_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(Ref::from_schema_name("GrantType"))
        .min_items(Some(1))
        .description(Some(
            "Default at creation: `[\"authorization_code\", \"refresh_token\"]` with redirect \
             URIs, else `[\"client_credentials\"]`. A public client cannot use \
             `client_credentials`.",
        ))
        .into()
}

pub(crate) fn response_types_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(string().enum_values(Some(["code"])))
        .description(Some("Only `code` is supported."))
        .into()
}

/// `id_token_signed_response_alg` in a request: the JOSE names Net API knows; which of them
/// the server keeps keys for (RS256 always) is in discovery's
/// `id_token_signing_alg_values_supported`.
pub(crate) fn id_token_alg_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(
            ["RS256", "EdDSA", "ES256"]
                .into_iter()
                .map(Some)
                .chain([None]),
        ))
        .description(Some(
            "The algorithm of its ID tokens; default `RS256`. One of discovery's \
             `id_token_signing_alg_values_supported`.",
        ))
        .into()
}

/// `id_token_signed_response_alg` in an answer.
pub(crate) fn id_token_alg() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(
            ["RS256", "EdDSA", "ES256"]
                .into_iter()
                .map(Some)
                .chain([None]),
        ))
        .description(Some(
            "The algorithm of its ID tokens; `null` for a client registered before this field \
             existed, whose ID tokens use the server's `signing_algorithm`, as they always did.",
        ))
        .into()
}

pub(crate) fn auth_method_nullable() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(
            [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none",
            ]
            .into_iter()
            .map(Some)
            .chain([None]),
        ))
        .description(Some(
            "Default `client_secret_basic`; `none` makes a public client (no secret, PKCE only); \
             `private_key_jwt` (no secret) needs `jwks` or `jwks_uri`.",
        ))
        .into()
}

fn date_time() -> ObjectBuilder {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

pub(crate) fn date_time_utc() -> Schema {
    date_time().description(Some("RFC 3339, UTC.")).into()
}

pub(crate) fn date_time_nullable() -> Schema {
    date_time()
        .schema_type(nullable(Type::String))
        .description(Some("RFC 3339, UTC, or `null`."))
        .into()
}

pub(crate) fn user_id() -> Schema {
    string().pattern(Some(id_pattern("usr"))).into()
}

pub(crate) fn user_id_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .pattern(Some(id_pattern("usr")))
        .into()
}

pub(crate) fn invitation_id() -> Schema {
    string().pattern(Some(id_pattern("inv"))).into()
}

pub(crate) fn invitation_token_nullable() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .max_length(Some(128))
        .description(Some(
            "An invitation's token (`napiv_...`), from `POST /v1/invitations`: needed when \
             registration is `invite`; it gives the invitation's role. Unknown, used or expired: \
             400 naming `invitation`; one bound to another email: 403.",
        ))
        .into()
}

pub(crate) fn invitation_email() -> Schema {
    let mut schema = AnyOfBuilder::new().description(Some(format!(
        "{EMAIL_DESCRIPTION} The only email that may register with the invitation; `null` or \
         absent: any (within `registration_email_domains`)."
    )));
    for variant in email_variants() {
        schema = schema.item(variant);
    }
    schema
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}

pub(crate) fn key_id() -> Schema {
    string().pattern(Some(id_pattern("key"))).into()
}

pub(crate) fn client_id() -> Schema {
    string().pattern(Some(id_pattern("cli"))).into()
}

pub(crate) fn event_id() -> Schema {
    string().pattern(Some(id_pattern("evt"))).into()
}

/// `req_...`: the request id of the envelope and of `X-Request-Id`.
pub(crate) fn request_id() -> ObjectBuilder {
    string().pattern(Some("^req_[0-9A-Za-z]{20}$"))
}

pub(crate) fn scopes() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("Scope"))
        .into()
}

pub(crate) fn grant_types() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("GrantType"))
        .into()
}

pub(crate) fn grant_type() -> RefOr<Schema> {
    Ref::from_schema_name("GrantType").into()
}

pub(crate) fn rate_limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer))
        .minimum(Some(0))
        .description(Some("Requests per minute; `null`: the server's default."))
        .into()
}

pub(crate) fn next_page_token() -> Schema {
    string()
        .schema_type(nullable(Type::String))
        .description(Some(
            "Pass as `page_token` for the next page; `null` on the last page.",
        ))
        .into()
}

pub(crate) fn any_value() -> Schema {
    Schema::Object(ObjectBuilder::new().build())
}

fn constant<T: Into<serde_json::Value>>(kind: Type, value: T) -> Schema {
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some([value]))
        .into()
}

pub(crate) fn const_true() -> Schema {
    constant(Type::Boolean, true)
}

pub(crate) fn const_false() -> Schema {
    constant(Type::Boolean, false)
}

pub(crate) fn const_api_key() -> Schema {
    constant(Type::String, "api_key")
}

/// The pattern of a resource's scope names.
const SCOPE_NAME_PATTERN: &str = "^[a-z][a-z0-9_.:-]{0,63}$";

fn scope_name() -> ObjectBuilder {
    string().pattern(Some(SCOPE_NAME_PATTERN))
}

/// Scope names of a resource: Net API's own (see `Scope`) or an operator's.
pub(crate) fn scope_names() -> Schema {
    ArrayBuilder::new().items(scope_name()).into()
}

/// The `scopes` of a new key: names of its resource's scopes.
pub(crate) fn key_scopes_nullable() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(scope_name())
        .description(Some(
            "Scope names of the key's resource. For Net API's own: default the scopes of the \
             credential making the request, which it cannot exceed (403). For another: \
             default every scope of it the caller holds (its self-service scopes and those \
             granted); one the caller does not hold is 403, one the resource does not have 400.",
        ))
        .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::redirect_uri_pattern;
    use netapi_core::service::validate_redirect_uri;

    /// Every redirect URI the server takes matches the published pattern (a client checking
    /// the schema never refuses one that works), and the server refuses what no host could be.
    #[test]
    fn the_redirect_uri_pattern_holds_every_uri_the_server_takes() {
        let pattern = regex::Regex::new(&redirect_uri_pattern()).unwrap();
        let mut uris: Vec<String> = [
            "https://app.example.com/callback",
            "https://my-app.example.com:8443/cb?tenant=a",
            "https://a_b.example.com/cb",
            "https://xn--bcher-kva.example/cb",
            "https://10.0.0.5/cb",
            "https://[2001:db8::1]:8443/cb",
            "https://example.com",
            "http://127.0.0.1:8000/cb",
            "http://localhost/cb",
            "http://[::1]:9000/cb",
            "com.example.app:/oauth",
            "com.example.app://callback/path?x=1",
        ]
        .map(str::to_owned)
        .to_vec();
        for good in &uris {
            assert!(validate_redirect_uri(good).is_ok(), "{good} refused");
        }
        // Every printable ASCII character (and a few beyond) in each part of each form.
        let odd = (0x20u8..0x7f).map(char::from).chain(['é', '\u{7f}', '\t']);
        for c in odd {
            for form in [
                "https://a{c}b.example/",
                "https://{c}example.com/",
                "https://example{c}/",
                "https://example.com:{c}/",
                "https://example.com/{c}",
                "https://example.com/a?{c}",
                "http://localhost{c}/",
                "http://localhost:80{c}/",
                "com.example{c}app:/cb",
                "com.example.app:{c}",
                "com.example.app:/a{c}b",
            ] {
                uris.push(form.replace("{c}", &c.to_string()));
            }
        }
        let mut taken = 0;
        for uri in &uris {
            if validate_redirect_uri(uri).is_ok() {
                taken += 1;
                assert!(
                    pattern.is_match(uri),
                    "taken but outside the pattern: {uri:?}"
                );
            }
        }
        assert!(
            taken > 100,
            "only {taken} taken: the corpus no longer tests much"
        );
        for bad in [
            "https://a*",
            "https://-app.example.com/cb",
            "https://app-.example.com/cb",
            "https://app.example.com./cb",
            "https://app.123/cb",
            "https://app.example.com/a b",
            "com.example.app:/a b",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad} taken");
            assert!(!pattern.is_match(bad), "{bad} in the pattern");
        }
        let long = format!("https://app.example.com/{}", "a".repeat(2000));
        assert!(
            validate_redirect_uri(&long).is_err(),
            "a 2,024-byte URI taken"
        );
    }
}
