//! The tower middleware: every request through it is authenticated before the inner service
//! sees it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::guard::Guard;

/// A [`Layer`] that refuses every request without a good credential for the guard's
/// resource (401, or 503 when the issuer cannot be asked) and hands the
/// [`Principal`](crate::Principal) to the inner service in the request's extensions.
///
/// It checks who is calling; what each route needs is the handler's to say, with
/// [`RequireScope`](crate::RequireScope) or [`Principal::require_scope`](crate::Principal::require_scope).
#[derive(Debug, Clone)]
pub struct GuardLayer {
    guard: Guard,
}

impl GuardLayer {
    /// The layer for `guard`.
    pub fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> GuardService<S> {
        GuardService {
            inner,
            guard: self.guard.clone(),
        }
    }
}

/// The service [`GuardLayer`] wraps around an inner one.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // The service that was polled ready is the one called (tower's clone-and-swap).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let guard = self.guard.clone();
        Box::pin(async move {
            let outcome = guard
                .authenticate_request(request.method(), request.uri(), request.headers())
                .await;
            match outcome {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.for_request(request.headers()).into_response()),
            }
        })
    }
}
