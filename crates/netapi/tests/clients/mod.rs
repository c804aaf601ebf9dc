//! Real OAuth 2.0 and OpenID Connect client libraries, unmodified, against the `netapi`
//! binary: what an application built on them meets. The person's part of each flow (signing
//! in, consenting, approving a device) is done here, by the test, through the pages.

mod node;
