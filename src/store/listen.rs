//! Hearing other instances (PostgreSQL `LISTEN`): their revocations, secret changes and key
//! rotations reach this instance's caches as they commit. While the listener is not connected
//! the caches are bypassed, so a missed notification can never let a revoked session through.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

use super::events::{Event, EventSink, CHANNEL};

/// Runs until the process ends: listen, apply, and on any loss reconnect after a pause.
///
/// The sink stops being live when this is called, not when the task first runs, so no request
/// is served from caches before the listener is connected.
pub fn listen(pool: PgPool, sink: Arc<dyn EventSink>) -> impl Future<Output = ()> + Send + 'static {
    sink.set_live(false);
    run(pool, sink)
}

async fn run(pool: PgPool, sink: Arc<dyn EventSink>) {
    // Warn once per outage (at start, or after being connected), not on every retry.
    let mut failing = false;
    loop {
        let error = match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    failing = false;
                    // Anything missed while not listening is covered by starting from empty caches.
                    sink.set_live(true);
                    tracing::info!("listening for other instances' changes");
                    while let Ok(Some(n)) = listener.try_recv().await {
                        match serde_json::from_str::<Event>(n.payload()) {
                            Ok(event) => sink.apply(&event),
                            Err(e) => tracing::warn!(error = %e, "ignored an unreadable event"),
                        }
                    }
                    sink.set_live(false);
                    tracing::warn!("lost the connection that hears other instances; caches bypassed until it is back");
                    None
                }
                Err(e) => Some(format!("could not LISTEN: {e}")),
            },
            Err(e) => Some(format!("could not connect: {e}")),
        };
        if let Some(error) = error {
            if failing {
                tracing::debug!(%error, "the listener for other instances' changes is still down");
            } else {
                failing = true;
                tracing::warn!(%error, "cannot hear other instances' changes; caches bypassed, retrying every second");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
