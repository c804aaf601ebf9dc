//! What a browser or an OAuth client does by hand: cookies, hidden form fields, redirects,
//! HTTP Basic credentials, PKCE.

use crate::app::Site;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Response;
use sha2::Digest;
use std::collections::HashMap;

/// A browser's cookie jar, kept by hand over a client that keeps none: every page sends the
/// cookies that earlier answers set, and every cookie the server sets is checked to be
/// `HttpOnly` and `SameSite=Lax`.
#[derive(Debug, Default)]
pub struct Browser {
    /// Name to value, as `Set-Cookie` left them (an emptied cookie is gone).
    pub cookies: HashMap<String, String>,
}

impl Browser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `Cookie` header this browser sends.
    pub fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keeps the cookies that `response` sets or clears.
    pub fn remember(&mut self, response: &Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("ASCII Set-Cookie");
            assert!(
                text.contains("HttpOnly") && text.contains("SameSite=Lax"),
                "cookie flags: {text}"
            );
            let (pair, _) = text.split_once(';').expect("cookie attributes");
            let (name, value) = pair.split_once('=').expect("cookie name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// `GET url` (absolute) with this browser's cookies.
    pub async fn get(&mut self, site: &impl Site, url: &str) -> Response {
        let response = site
            .http()
            .get(url)
            .header("cookie", self.header())
            .send()
            .await
            .expect("GET");
        self.remember(&response);
        response
    }

    /// Posts `form` to `path` of `site` with this browser's cookies.
    pub async fn post(&mut self, site: &impl Site, path: &str, form: &[(&str, &str)]) -> Response {
        let response = site
            .http()
            .post(site.url(path))
            .header("cookie", self.header())
            .form(form)
            .send()
            .await
            .expect("POST");
        self.remember(&response);
        response
    }

    /// Posts `form` as [`Browser::post`] does and, when the answer is a `303` (the portal's
    /// redirect-after-POST), follows it as a browser would: the page it lands on.
    pub async fn submit(
        &mut self,
        site: &impl Site,
        path: &str,
        form: &[(&str, &str)],
    ) -> Response {
        let response = self.post(site, path, form).await;
        if response.status() != reqwest::StatusCode::SEE_OTHER {
            return response;
        }
        let location = location_of(&response);
        let url = if location.starts_with('/') {
            site.url(&location)
        } else {
            location
        };
        self.get(site, &url).await
    }
}

/// The value of the hidden form field `name` on a page, unescaped.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').expect("end of the value") + start;
    unescape(&html[start..end])
}

/// Undoes HTML escaping, named or numeric (`&amp;` last, so `&amp;lt;` stays `&lt;`).
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// The secret the portal shows once, after registering or creating a key.
pub fn shown_secret(html: &str) -> String {
    let marker = "id=\"new-secret\">";
    let start = html.find(marker).expect("a new secret on the page") + marker.len();
    let end = html[start..].find('<').expect("end of the secret") + start;
    html[start..end].to_owned()
}

/// The `Location` of a redirect.
pub fn location_of(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on a {}", response.status()))
        .to_str()
        .expect("ASCII Location")
        .to_owned()
}

/// The query parameters of a URL, absolute or relative (such as a `Location`).
pub fn query_pairs(url: &str) -> HashMap<String, String> {
    url::Url::parse("http://base.invalid")
        .and_then(|base| base.join(url))
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

/// The credentials of an HTTP Basic header: base64 of `id:secret`, as given (not form-encoded).
pub fn basic(id: &str, secret: &str) -> String {
    STANDARD.encode(format!("{id}:{secret}"))
}

/// A whole `Authorization: Basic ...` value for `id:secret`, as given.
pub fn basic_header(id: &str, secret: &str) -> String {
    format!("Basic {}", basic(id, secret))
}

/// A PKCE pair (RFC 7636): a random `code_verifier` and its S256 `code_challenge`.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    /// A new random verifier (64 characters, within RFC 7636's 43 to 128) and its challenge.
    pub fn random() -> Self {
        Self::from_verifier(&netapi_core::secret::random_base62(64))
    }

    /// The pair for a chosen verifier.
    pub fn from_verifier(verifier: &str) -> Self {
        Self {
            verifier: verifier.to_owned(),
            challenge: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, Appendix B.
        let pair = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pair.challenge,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let random = Pkce::random();
        assert_eq!(random.verifier.len(), 64);
        assert_ne!(random.verifier, Pkce::random().verifier);
    }

    #[test]
    fn hidden_fields_are_unescaped_once() {
        let html =
            r#"<input type="hidden" name="return_to" value="/a?b=1&amp;c=&lt;&#39;&amp;lt;">"#;
        assert_eq!(hidden_field(html, "return_to"), "/a?b=1&c=<'&lt;");
    }

    #[test]
    fn query_pairs_reads_relative_and_absolute_urls() {
        assert_eq!(query_pairs("/cb?code=x%2By&state=s")["code"], "x+y");
        assert_eq!(query_pairs("http://127.0.0.1:9/cb?state=s")["state"], "s");
    }

    #[test]
    fn basic_credentials_are_base64_of_id_colon_secret() {
        // RFC 7617, section 2.
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(
            basic_header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
