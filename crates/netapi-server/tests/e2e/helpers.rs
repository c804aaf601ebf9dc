//! The shared test support (`netapi-testkit`), under the name the e2e files import it by:
//! `crate::helpers::{TestApp, Browser, json_with, ...}`.

pub use netapi_testkit::*;
