//! A local JWKS endpoint on 127.0.0.1 whose answer can be changed and which counts requests,
//! plus the settings and URIs the JWKS cache tests share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use url::Url;

use crate::jose::jwks::JwksSettings;

#[derive(Clone, Debug)]
pub enum Answer {
    Json(String),
    Status(u16),
}

struct State {
    hits: AtomicUsize,
    answer: Mutex<Answer>,
    delay: Mutex<Duration>,
    headers: Mutex<Vec<(String, String)>>,
}

pub struct JwksServer {
    state: Arc<State>,
    pub uri: Url,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(answer: Answer) -> Self {
        let state = Arc::new(State {
            hits: AtomicUsize::new(0),
            answer: Mutex::new(answer),
            delay: Mutex::new(Duration::ZERO),
            headers: Mutex::new(Vec::new()),
        });
        let handler_state = Arc::clone(&state);
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let state = Arc::clone(&handler_state);
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    let delay = *state.delay.lock().unwrap();
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let answer = state.answer.lock().unwrap().clone();
                    let extra = state.headers.lock().unwrap().clone();
                    let mut response: Response = match answer {
                        Answer::Json(body) => {
                            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
                        }
                        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
                    };
                    for (name, value) in extra {
                        response.headers_mut().append(
                            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                            header::HeaderValue::from_str(&value).unwrap(),
                        );
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let uri = Url::parse(&format!("http://{addr}/jwks")).unwrap();
        JwksServer { state, uri, task }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Extra response headers (e.g. `Cache-Control`), added to every
    /// answer from now on.
    pub fn set_headers(&self, headers: &[(&str, &str)]) {
        *self.state.headers.lock().unwrap() = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
    }

    /// Stops accepting connections (the listener is dropped).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Never contacted by the pure tests (port 9 = discard, on loopback).
pub fn test_uri() -> Url {
    Url::parse("http://127.0.0.1:9/jwks").unwrap()
}

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// No lower clamp (so `max_age` zero means "refresh on every lookup"), a day of staleness.
pub fn settings(cooldown: Duration, max_age: Duration, max_bytes: usize) -> JwksSettings {
    JwksSettings {
        refetch_cooldown: cooldown,
        refetch_floor: Duration::from_secs(1),
        max_age,
        max_bytes,
        min_refresh: Duration::ZERO,
        max_refresh: DAY,
        max_stale: DAY,
    }
}
