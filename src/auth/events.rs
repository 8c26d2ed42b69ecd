//! Hearing other instances (PostgreSQL `LISTEN`): their revocations, secret changes and key
//! rotations reach this instance's caches as they commit. While the listener is not connected
//! the caches are bypassed, so a missed notification can never let a revoked session through.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};

use super::Gate;
use crate::store::events::{Event, EventSink, CHANNEL};

/// Runs until the process ends: listen, apply, and on any loss reconnect after a pause.
pub async fn listen(pool: PgPool, gate: Arc<Gate>) {
    gate.set_live(false);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "could not LISTEN for other instances' changes; caches bypassed");
                } else {
                    // Anything missed while not listening is covered by starting from empty caches.
                    gate.set_live(true);
                    tracing::info!("listening for other instances' changes");
                    while let Ok(Some(n)) = listener.try_recv().await {
                        match serde_json::from_str::<Event>(n.payload()) {
                            Ok(event) => gate.apply(&event),
                            Err(e) => tracing::warn!(error = %e, "ignored an unreadable event"),
                        }
                    }
                    tracing::warn!("lost the connection that hears other instances; caches bypassed until it is back");
                }
            }
            Err(e) => tracing::debug!(error = %e, "listener cannot connect yet"),
        }
        gate.set_live(false);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
