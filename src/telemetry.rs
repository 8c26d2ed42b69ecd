//! Logging. Lines carry the request id and path, never query strings (codes and states travel
//! there), cookies or tokens. Metrics: [`metrics`].

pub mod metrics;

use tracing_subscriber::{fmt, EnvFilter};

use crate::configuration::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    // try_init: tests start many apps in one process.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
