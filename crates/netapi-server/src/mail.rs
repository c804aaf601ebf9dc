//! The [`Mailer`] that sends over SMTP (lettre, rustls): `smtp://` (plain, for a relay on
//! the same host or network), `smtps://` (TLS from the first byte, port 465 by default) and
//! `smtp+starttls://` (STARTTLS required, port 587 by default). Credentials come from the
//! URL's userinfo or from separate settings; neither is ever shown by `Debug` or in errors.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use netapi_core::secret::Secret;
use netapi_core::service::{Email, MailError, Mailer};
use std::fmt;
use std::time::Duration;

/// How long one message may take to send.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// How to reach the mail server.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://`, `smtps://` or `smtp+starttls://` URL, perhaps with `user:password@`.
    pub url: Secret,
    /// User name, when it is not in the URL.
    pub username: Option<String>,
    /// Password, when it is not in the URL.
    pub password: Option<Secret>,
    /// The `From` address of every message (`Name <address>` or an address).
    pub from: String,
}

/// Shows neither the URL (it may hold a password) nor the password.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Sends over SMTP.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `scheme://host:port`, for logs.
    server: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Checks the settings and builds the transport (no connection is made yet). The error
    /// names what is wrong, never a credential.
    pub fn new(settings: &SmtpSettings) -> Result<Self, String> {
        let url = url::Url::parse(settings.url.expose())
            .map_err(|err| format!("smtp_url is not a valid URL ({err})"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("smtp_url has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !url.path().trim_start_matches('/').is_empty() || url.query().is_some() {
            return Err("smtp_url must be scheme://[user:password@]host[:port] only".to_owned());
        }
        let tls_error = |err: lettre::transport::smtp::Error| {
            format!("smtp_url: cannot set up TLS for {host} ({err})")
        };
        let (builder, default_port) = match url.scheme() {
            "smtp" => (
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
                25,
            ),
            "smtps" => (
                AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(tls_error)?,
                465,
            ),
            "smtp+starttls" => (
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(tls_error)?,
                587,
            ),
            other => {
                return Err(format!(
                    "smtp_url must start with smtp://, smtps:// or smtp+starttls://, not {other}://"
                ));
            }
        };
        let port = url.port().unwrap_or(default_port);
        let mut builder = builder.port(port).timeout(Some(SEND_TIMEOUT));
        let decode = |text: &str| {
            percent_decode(text).ok_or("smtp_url has badly percent-encoded credentials")
        };
        let in_url = (!url.username().is_empty()).then(|| {
            (
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            )
        });
        let credentials = match (in_url, &settings.username, &settings.password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(
                    "give the SMTP credentials either in smtp_url or as smtp_username and \
                     smtp_password, not both"
                        .to_owned(),
                );
            }
            (Some((user, password)), None, None) => Some((user?, password?)),
            (None, Some(user), password) => Some((
                user.clone(),
                password
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default(),
            )),
            (None, None, Some(_)) => return Err("smtp_password needs smtp_username".to_owned()),
            (None, None, None) => None,
        };
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|_| format!("email_from is not a valid address: {:?}", settings.from))?;
        Ok(Self {
            transport: builder.build(),
            from,
            server: format!("{}://{host}:{port}", url.scheme()),
        })
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, value)| value.into_owned().into_bytes())?;
    String::from_utf8(bytes).ok()
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError("the recipient is not a valid address".to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|err| MailError(format!("cannot build the message: {err}")))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|err| MailError(format!("SMTP server {}: {err}", self.server)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: Secret::new(url),
            username: None,
            password: None,
            from: "Net API <netapi@example.com>".to_owned(),
        }
    }

    #[test]
    fn schemes_and_bad_urls() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtps://mail.example.com",
            "smtp+starttls://user:p%40ss@mail.example.com:587",
        ] {
            assert!(SmtpMailer::new(&settings(good)).is_ok(), "{good}");
        }
        for bad in [
            "http://mail.example.com",
            "mail.example.com",
            "smtp://",
            "smtp://mail.example.com/path",
        ] {
            assert!(SmtpMailer::new(&settings(bad)).is_err(), "{bad}");
        }
        let mut both = settings("smtp://u:p@mail.example.com");
        both.username = Some("v".to_owned());
        assert!(SmtpMailer::new(&both).is_err());
        let mut bad_from = settings("smtp://mail.example.com");
        bad_from.from = "not an address".to_owned();
        assert!(SmtpMailer::new(&bad_from).is_err());
    }

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let mut with_password = settings("smtp://user:hunter2secret@mail.example.com");
        let mailer = SmtpMailer::new(&with_password).expect("mailer");
        assert!(!format!("{mailer:?}").contains("hunter2secret"));
        assert!(!format!("{with_password:?}").contains("hunter2secret"));
        with_password.url = Secret::new("ftp://user:hunter2secret@mail.example.com");
        let err = SmtpMailer::new(&with_password).expect_err("bad scheme");
        assert!(!err.contains("hunter2secret"));
        let separate = SmtpSettings {
            username: Some("user".to_owned()),
            password: Some(Secret::new("hunter2secret")),
            ..settings("smtps://mail.example.com")
        };
        assert!(!format!("{separate:?}").contains("hunter2secret"));
        assert_eq!(percent_decode("p%40ss+word").as_deref(), Some("p@ss+word"));
    }
}
