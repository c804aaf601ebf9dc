//! What each test made by [`crate::e2e!`] does.

use crate::app::{Backend, TestApp};
use crate::database::drop_database;
use std::future::Future;

/// Starts a server on `backend` with `spawn` and runs `scenario` against it, on a runtime of
/// two worker threads (what `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`
/// gives). Returns at once when `spawn` finds no database (PostgreSQL not configured); drops the
/// database once its scenario has passed (one that failed is kept, to look into).
///
/// `spawn` gives a [`TestApp`] or a test binary's own fixture around one (a server with the
/// resources and clients its scenarios share), so that such binaries need no runner of their own.
pub fn run_scenario<S, Started, App, T, Done>(backend: Backend, spawn: S, scenario: T)
where
    S: FnOnce(Backend) -> Started,
    Started: Future<Output = Option<App>>,
    App: AsRef<TestApp>,
    T: FnOnce(App) -> Done,
    Done: Future<Output = ()>,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime")
        .block_on(async move {
            let Some(app) = spawn(backend).await else {
                return;
            };
            let database = app.as_ref().database_url.clone();
            scenario(app).await;
            drop_database(&database).await;
        });
}
