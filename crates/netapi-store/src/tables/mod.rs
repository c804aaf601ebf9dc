//! The SQL of each table, as named constants, with the table's row struct and its
//! conversion into the model type: one file per table, named after it (`resources` also
//! holds `resource_grants`, `signing_keys` also `secret_key_check`,
//! `webhooks` also `webhook_deliveries`). Every function is
//! written once for both backends (see [`crate::backend`] for the dialect).

/// A `DELETE` of at most `$2` rows of `$table` that meet `$condition` (`$1`: the cutoff),
/// picked by their primary key (`$key`; a composite one as `"(a, b)"`, then listed again as
/// `$columns`): one short statement however many rows are over (issue 18).
macro_rules! delete_batch {
    ($table:literal, $key:literal, $condition:literal) => {
        delete_batch!($table, $key, $key, $condition)
    };
    ($table:literal, $key:literal, $columns:literal, $condition:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ",
            $key,
            " IN (SELECT ",
            $columns,
            " FROM ",
            $table,
            " WHERE ",
            $condition,
            " LIMIT $2)"
        )
    };
}

pub(crate) mod api_key_usage;
pub(crate) mod api_keys;
pub(crate) mod audit_events;
pub(crate) mod authorization_codes;
pub(crate) mod consents;
pub(crate) mod device_authorizations;
pub(crate) mod email_tokens;
pub(crate) mod invalidations;
pub(crate) mod invitations;
pub(crate) mod logout_deliveries;
pub(crate) mod mfa;
pub(crate) mod oauth_clients;
pub(crate) mod passkeys;
pub(crate) mod pushed_requests;
pub(crate) mod refresh_tokens;
pub(crate) mod registrations;
pub(crate) mod resources;
pub(crate) mod sessions;
pub(crate) mod signing_keys;
pub(crate) mod users;
pub(crate) mod webhooks;

use netapi_core::StoreError;
use netapi_core::store::StoreResult;

/// The model values of `rows`.
fn models<R, M: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<M>> {
    rows.into_iter().map(M::try_from).collect()
}

/// The model value of `row`, if any.
fn model<R, M: TryFrom<R, Error = StoreError>>(row: Option<R>) -> StoreResult<Option<M>> {
    row.map(M::try_from).transpose()
}
