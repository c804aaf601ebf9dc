//! End-to-end tests: the real server on 127.0.0.1:0, a fresh database per test, plain HTTP.
//! Every test runs on SQLite, and on PostgreSQL too when `NETAPI_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// One scenario on both backends: `netapi_testkit::e2e!`, as `crate::e2e!`.
use netapi_testkit::e2e;

mod abuse;
mod accounts;
mod admin_console;
mod api;
mod authorize;
mod device;
mod dpop;
mod dpop_client;
mod dynamic_registration;
mod email;
mod flash;
mod forward_auth;
mod helpers;
mod instances;
mod keys_at_rest;
mod limits;
mod logout;
mod mfa;
mod oauth;
mod openapi;
mod openid_client;
mod passkeys;
mod password_rules;
mod pkjwt_par;
mod portal_client_settings;
mod portal_friction;
mod portal_resources;
mod resource_oauth;
mod resources;
mod retention;
mod rs256;
mod secret_scanning;
mod shared_limits;
mod token_exchange;
mod usage;
mod verify;
mod webhooks;
