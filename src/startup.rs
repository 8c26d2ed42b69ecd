//! Building and running the service: settings in, a bound listener and a ready router out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::ServiceExt as _;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::access::{Access, AccessSettings};
use crate::configuration::Settings;
use crate::crypto::SecretBox;
use crate::http::{self, AppState};
use crate::jose::jwks::{JwksRegistry, JwksSettings};
use crate::sso::{Sso, SsoSettings};
use crate::store::events::{EventSink, Sinks};
use crate::store::sessions::DbSessionStore;
use crate::store::{PoolSettings, Store};

pub struct Application {
    listener: TcpListener,
    /// `GET /metrics` alone, when `[metrics] listen` is set.
    metrics: Option<(TcpListener, axum::Router)>,
    events: Option<tokio::task::JoinHandle<()>>,
    router: axum::Router,
    /// The services, as the router has them (tests reach in through here).
    pub state: AppState,
    /// Who hears committed changes; the store only holds it weakly.
    _sink: Arc<dyn EventSink>,
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(
        settings.database_url.expose(),
        &PoolSettings {
            max_connections: settings.database.max_connections,
            acquire_timeout: Duration::from_secs(settings.database.acquire_timeout_secs),
        },
    )
    .await?;
    store.migrate().await?;
    Ok(store)
}

impl Application {
    /// Opens the database (applying migrations), loads the secret key and binds the listener
    /// (port 0 picks a free port, as the tests do).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.listen).await?;
        Self::build_with_listener(settings, listener).await
    }

    /// As `build`, on a listener bound by the caller (tests bind first to learn the port that
    /// the public URL must carry).
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        // Before any service: the handles they register are then live.
        crate::telemetry::metrics::install();
        let metrics_listener = match settings.metrics.listen() {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics listener {addr}"))?,
            ),
            None => None,
        };
        let store = open_store(&settings).await?;
        let (secrets, generated) = SecretBox::load_or_create(
            settings.secret_key.as_ref().map(|s| s.expose()),
            &settings.data_dir,
        )?;
        if generated {
            tracing::warn!(
                path = %settings.data_dir.join("secret.key").display(),
                "ORGSSO_SECRET_KEY is unset: generated a secret key; back it up, and set ORGSSO_SECRET_KEY when running several instances"
            );
        }
        if settings.admin_token.is_none() {
            tracing::warn!("ORGSSO_ADMIN_TOKEN is unset: the admin API answers 401");
        }
        let oidc = &settings.oidc;
        // The operator's client and the org admins' (pinned to public addresses at connection).
        let outbound = crate::outbound::Outbound::new(oidc.http_timeout());
        let jwks = Arc::new(JwksRegistry::new(
            outbound.clone(),
            JwksSettings {
                refetch_cooldown: Duration::from_secs(oidc.jwks_refetch_cooldown_secs),
                refetch_floor: Duration::from_millis(oidc.jwks_refetch_floor_ms),
                max_age: Duration::from_secs(oidc.jwks_max_age_secs),
                max_bytes: 256 * 1024,
                min_refresh: Duration::from_secs(oidc.jwks_min_refresh_secs),
                max_refresh: Duration::from_secs(oidc.jwks_max_refresh_secs),
                max_stale: Duration::from_secs(oidc.jwks_max_stale_secs),
            },
        ));
        let access = Arc::new(Access::new(
            store.clone(),
            secrets.clone(),
            jwks.clone(),
            AccessSettings::from_settings(&settings),
        ));
        access
            .ensure_signing_key(time::OffsetDateTime::now_utc().unix_timestamp())
            .await?;
        let sso = Sso::new(
            store.clone(),
            secrets.clone(),
            outbound,
            jwks,
            SsoSettings::from_settings(&settings),
        );
        // Every cache hears committed changes: this instance's at commit, others' by NOTIFY.
        let sink: Arc<dyn EventSink> = Arc::new(Sinks(vec![access.clone(), sso.event_sink()]));
        let listener_task = match store.db() {
            crate::store::Db::Postgres(pool) => Some(tokio::spawn(crate::store::listen::listen(
                pool.clone(),
                sink.clone(),
            ))),
            crate::store::Db::Sqlite(_) => None,
        };
        store.set_event_sink(&sink);
        let throttle = Arc::new(
            crate::throttle::Throttle::new(&settings.throttle).map_err(anyhow::Error::msg)?,
        );
        let state = AppState::new(http::Services {
            throttle,
            sso,
            access,
            store,
            settings: Arc::new(settings),
            secret_box: secrets,
        });
        let router = app_router(state.clone());
        let metrics = metrics_listener.map(|l| (l, http::metrics::router(state.store.clone())));
        Ok(Application {
            listener,
            metrics,
            events: listener_task,
            router,
            state,
            _sink: sink,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The metrics listener's address, when `[metrics] listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until the process receives Ctrl-C / SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let store = self.state.store.clone();
        let throttle = self.state.throttle.clone();
        let audit = self.state.settings.audit.clone();
        let purge = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                // Addresses back to a fresh state are forgotten: throttle memory stays bounded.
                throttle.retain_recent();
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                if let Err(e) = store.purge_expired(now).await {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
                // At most 20 × 1,000 rows a minute, each batch its own short statement: a
                // backlog (retention first turned on) is worked off over the next runs.
                if let Some(cutoff) = audit.cutoff(now) {
                    match store.purge_audit_before(cutoff, 1_000, 20).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "old audit events purged"),
                        Err(e) => tracing::warn!(error = %e, "purging old audit events failed"),
                    }
                }
            }
        });
        let metrics = self.metrics.map(|(listener, router)| {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            })
        });
        // The peer address (`ConnectInfo`) is what the throttles key on.
        let result = axum::serve(
            self.listener,
            edge_stack(self.router, &self.state)
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await;
        purge.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        if let Some(events) = self.events {
            events.abort();
        }
        result
    }
}

fn app_router(state: AppState) -> axum::Router {
    let s = &state.settings;
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.store.clone()))
        .with_name(s.session.cookie_name.clone())
        .with_secure(s.secure_cookies())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            s.session.idle_timeout_secs as i64,
        )));
    let origin = crate::http::csrf::OwnOrigin(
        state
            .settings
            .public_url
            .origin()
            .ascii_serialization()
            .into(),
    );
    let csrf = axum::middleware::from_fn_with_state(origin, crate::http::csrf::guard);
    // The browser and API routes run behind the session layer and the CSRF guard; the hot
    // read-only routes skip both (see `sessionless_router`). What every route passes is added
    // around the whole router by `edge_stack`.
    let mut router = http::sessionless_router()
        .merge(http::router().layer(csrf).layer(sessions))
        .with_state(state.clone());
    // Never public by accident: only when asked for and no separate listener is set.
    if s.metrics.on_main() {
        router = router.merge(http::metrics::router(state.store.clone()));
    }
    router
}

/// The layers in front of every route, outside in: the request id, the span, the NUL check
/// (`http::edge`). Wrapped once around the router rather than with `Router::layer`, which wraps
/// each route: there every layer cost every request a boxed clone of the route and a boxed
/// future, one pair per layer (three on the verify route). Inside them, `http::hot` answers
/// `GET /auth/{slug}/verify` ahead of the router.
fn edge_stack(
    router: axum::Router,
    state: &AppState,
) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static {
    ServiceBuilder::new()
        .layer(http::request_id::RequestIdLayer)
        .map_response(IntoResponse::into_response)
        .layer(
            // Spans carry the path only: query strings hold codes and states.
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let rid = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %http::request_id::log_path(req.uri().path()), request_id = %rid)
                })
                // Access lines at debug: the verify endpoint is called on every proxied request.
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .layer(http::edge::RefuseNulLayer)
        .service(http::hot::HotRoutes::new(
            router,
            state.access.clone(),
            state.settings.clone(),
        ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// `orgsso keys rotate`: a new ES256 signing key signs from now on; the previous key stays
/// published until the tokens it signed have expired.
pub async fn rotate_signing_key(settings: &Settings) -> anyhow::Result<String> {
    // The service's key must already exist and must open the keys in use: rotating under a
    // new or wrong key would retire the working key for one no instance can read.
    let secrets = SecretBox::load_existing(
        settings.secret_key.as_ref().map(|s| s.expose()),
        &settings.data_dir,
    )
    .context("orgsso keys rotate needs the service's secret key (ORGSSO_SECRET_KEY or data_dir/secret.key)")?;
    let store = open_store(settings).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for key in store.published_signing_keys(now, 0).await? {
        if key.retired_at.is_none() && secrets.decrypt(&key.private_enc, &key.kid).is_err() {
            anyhow::bail!(
                "the signing key {} cannot be read with this secret key: run this with the same ORGSSO_SECRET_KEY (or data_dir) as the service",
                key.kid
            );
        }
    }
    let row =
        crate::access::new_key_row(&secrets, time::OffsetDateTime::now_utc().unix_timestamp());
    store.rotate_signing_key(&row, "cli").await?;
    Ok(row.kid)
}
