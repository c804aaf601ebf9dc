//! What `POST /secret-scanning/github` answers with: GitHub's label per token.

use netapi_core::scanning::{Label, Verdict};
use serde::Serialize;
use utoipa::ToSchema;

/// The answer for one reported token, in the order of the report.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SecretScanningLabel)]
pub(crate) struct TokenLabelView {
    /// The token as reported (GitHub already has it; the answer is `no-store`).
    token_raw: String,
    /// The `type` as reported.
    token_type: String,
    #[schema(inline)]
    label: LabelName,
}

/// `true_positive`: a key Net API issued, now revoked (or revoked before); `false_positive`:
/// anything else.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum LabelName {
    TruePositive,
    FalsePositive,
}

impl From<Verdict> for TokenLabelView {
    fn from(verdict: Verdict) -> Self {
        Self {
            token_raw: verdict.token.expose().to_owned(),
            token_type: verdict.token_type,
            label: match verdict.label {
                Label::TruePositive => LabelName::TruePositive,
                Label::FalsePositive => LabelName::FalsePositive,
            },
        }
    }
}
