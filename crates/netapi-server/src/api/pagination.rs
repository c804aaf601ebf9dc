//! `?page_size=N&page_token=T`, the one query of every `/v1` list.

use netapi_core::service::PageRequest;
use serde::Deserialize;

use crate::error::ApiResult;

/// `?page_size=N&page_token=T`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// The `next_page_token` of the previous page; leave it out for the first page.
    page_token: Option<String>,
}

impl PageQuery {
    pub(crate) fn request(&self, prefix: &str) -> ApiResult<PageRequest> {
        Ok(PageRequest::parse(
            prefix,
            self.page_size,
            self.page_token.as_deref(),
        )?)
    }
}
