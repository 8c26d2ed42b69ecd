//! `GET /metrics`: the Prometheus text exposition, on its own listener when
//! `[metrics] listen` is set, else on the main one only when `expose_on_main` says so (see
//! `startup`). The scrape first refreshes the gauges read from the database.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::store::Store;
use crate::telemetry::metrics as m;

/// The live-session count is one indexed `COUNT(*)`: taken at most this often, however often
/// (or by how many scrapers) the endpoint is read.
const COUNT_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Scrape {
    store: Store,
    counted_at: Arc<Mutex<Option<Instant>>>,
}

/// The one route, with its own state: merged into the main router or served alone.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Scrape {
            store,
            counted_at: Arc::new(Mutex::new(None)),
        })
}

async fn metrics(State(s): State<Scrape>) -> Response {
    let (in_use, idle) = s.store.pool_connections();
    m::db_pool(in_use, idle);
    let due = {
        let mut at = s.counted_at.lock().unwrap_or_else(PoisonError::into_inner);
        let due = at.is_none_or(|t| t.elapsed() >= COUNT_EVERY);
        if due {
            *at = Some(Instant::now());
        }
        due
    };
    if due {
        match s
            .store
            .count_live_sessions(super::now().unix_timestamp())
            .await
        {
            Ok(n) => m::live_sessions(u64::try_from(n).unwrap_or(0)),
            // Counted as a database error already; the previous value stays.
            Err(e) => tracing::warn!(error = %e, "counting live sessions for the metrics failed"),
        }
    }
    let mut res = m::render().unwrap_or_default().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
