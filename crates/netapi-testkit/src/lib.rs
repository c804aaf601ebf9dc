//! What Net API's integration tests share: an in-process server on a fresh database
//! ([`TestApp`]), the [`e2e!`] macro that runs one scenario on SQLite and PostgreSQL, and the
//! HTTP steps a browser or a client takes (cookies, forms, redirects, PKCE, sign-in, the
//! authorization code flow), so that no test binary writes them again.
//!
//! The person's part of the device grant is in [`device`].
//!
//! The flows take any [`Site`]: the in-process [`TestApp`], or a `netapi` process a test
//! started itself.

mod app;
mod database;
pub mod device;
mod flows;
mod http;
mod json;
mod run;
mod smtp;

pub use app::{Backend, Site, TestApp, plain_client};
pub use database::{SqliteFile, drop_database, free_port, fresh_database, unique_name};
pub use flows::{
    PASSWORD, approve, approved_code, authorize_and_exchange, client_credentials_token,
    client_credentials_token_for, create_client, exchange_code, register, register_in_browser,
    sign_in, sign_in_to_portal,
};
pub use http::{
    Browser, Pkce, basic, basic_header, hidden_field, location_of, query_pairs, shown_secret,
    unescape,
};
pub use json::{expect_error, json_with};
pub use run::run_scenario;
pub use smtp::{Received, SmtpSink};

/// Makes two tests of each scenario, `sqlite` always and `postgres` when
/// `NETAPI_TEST_POSTGRES_URL` is set (otherwise it says it is skipped and passes). A scenario
/// is `async fn name(app: TestApp)`; a PostgreSQL database is dropped when its scenario passes
/// (a failed one's stays, to be looked at).
///
/// - `e2e!(a, b)`: a server with the test settings ([`TestApp::spawn`]);
/// - `e2e!(settings = adjust; a, b)`: those settings changed by `adjust` (a function of this
///   module or a closure over `&mut Settings`) first;
/// - `e2e!(spawn = start; a, b)`: started by `async fn start(Backend) -> Option<App>` of
///   this module (HTTP options, several settings per test), where `App` is a [`TestApp`] or a
///   fixture around one (`AsRef<TestApp>`) that each scenario then takes instead.
///
/// Works from any crate's test binary that depends on this crate; it needs no `tokio` there.
#[macro_export]
macro_rules! e2e {
    (@each $spawn:expr; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    $crate::run_scenario($crate::Backend::Sqlite, $spawn, super::$name);
                }

                #[test]
                fn postgres() {
                    $crate::run_scenario($crate::Backend::Postgres, $spawn, super::$name);
                }
            }
        )*
    };
    (spawn = $spawn:ident; $($name:ident),* $(,)?) => {
        $crate::e2e!(@each super::$spawn; $($name),*);
    };
    (settings = $adjust:ident; $($name:ident),* $(,)?) => {
        $crate::e2e!(
            @each |backend| $crate::TestApp::spawn_with(backend, super::$adjust);
            $($name),*
        );
    };
    (settings = $adjust:expr; $($name:ident),* $(,)?) => {
        $crate::e2e!(
            @each |backend| $crate::TestApp::spawn_with(backend, $adjust);
            $($name),*
        );
    };
    ($($name:ident),* $(,)?) => {
        $crate::e2e!(@each $crate::TestApp::spawn; $($name),*);
    };
}
