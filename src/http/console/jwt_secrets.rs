//! The org's JWT secrets: add the four kinds, list, delete. Key material goes into the form once
//! and is never shown again, not even when the form comes back with an error.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::orgs::split_list;
use super::{CsrfForm, OrgConsole};
use crate::http::error::ApiError;
use crate::http::form::FormData;
use crate::http::now;
use crate::sso::SecretError;

const KINDS: [(&str, &str); 4] = [
    ("hs256", "HS256 shared secret"),
    ("rs256", "RS256 private key (PEM)"),
    ("rs256_public", "RS256 public key (PEM)"),
    ("jwk_url", "JWK URL"),
];

async fn render(
    oc: &OrgConsole,
    status: StatusCode,
    error: Option<String>,
    typed: Value,
) -> Response {
    let rows = match oc.c.store.jwt_secrets(&oc.org.id).await {
        Ok(r) => r,
        Err(e) => return oc.c.store_failed(e),
    };
    // A damaged list reads as such, never as empty ("any").
    let list = |l: Result<Vec<String>, String>| l.map_or_else(|e| e, |v| v.join(", "));
    let secrets: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "kind": KINDS.iter().find(|k| k.0 == r.kind).map_or(r.kind.as_str(), |k| k.1),
                "kid": r.kid,
                "url": (r.kind == "jwk_url").then_some(r.public.as_deref()).flatten(),
                "audiences": list(r.audiences()),
                "issuers": list(r.issuers()),
                "primary": r.is_primary,
                "created": super::when(Some(r.created_at)),
            })
        })
        .collect();
    let kinds: Vec<Value> = KINDS
        .iter()
        .map(|(id, label)| json!({"id": id, "label": label}))
        .collect();
    oc.render(
        status,
        "console_secrets.html",
        "JWT secrets",
        "secrets",
        json!({"secrets": secrets, "kinds": kinds, "error": error, "typed": typed}),
    )
}

/// `GET /admin/orgs/{slug}/secrets`.
pub async fn page(oc: OrgConsole) -> Response {
    render(&oc, StatusCode::OK, None, json!({"type": "hs256"})).await
}

/// The admin API's JSON for a secret, from the form's fields.
fn body_of(form: &FormData) -> Value {
    let kind = form.get("type");
    let mut body = json!({
        "name": form.get("name").trim(),
        "type": kind,
        "audiences": split_list(form.get("audiences")),
        "issuers": split_list(form.get("issuers")),
        "primary": form.get("primary") == "on",
    });
    let material = form.get("material").trim();
    match kind {
        "hs256" => body["secret"] = json!(material),
        "rs256" => body["private_key"] = json!(material),
        "rs256_public" => body["public_key"] = json!(material),
        "jwk_url" => body["url"] = json!(form.get("url").trim()),
        _ => {}
    }
    body
}

/// `POST /admin/orgs/{slug}/secrets`.
pub async fn add(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    let added =
        oc.c.sso
            .add_jwt_secret(
                &oc.org,
                body_of(&form),
                &oc.actor(),
                oc.c.viewer.egress(),
                now().unix_timestamp(),
            )
            .await;
    let (status, error) = match added {
        Ok(row) => return oc.done("/secrets", format!("Added {}.", row.name)).await,
        Err(SecretError::Store(e)) => return oc.c.store_failed(e),
        Err(e) => {
            let e = ApiError::from(e);
            (e.status, e.message)
        }
    };
    // Everything but the key material comes back into the form.
    let typed = json!({
        "name": form.get("name"), "type": form.get("type"), "url": form.get("url"),
        "audiences": form.get("audiences"), "issuers": form.get("issuers"),
        "primary": form.get("primary") == "on",
    });
    render(&oc, status, Some(error), typed).await
}

/// `POST /admin/orgs/{slug}/secrets/delete` with the field `name`.
pub async fn delete(oc: OrgConsole, CsrfForm(form): CsrfForm) -> Response {
    let name = form.get("name");
    let deleted =
        oc.c.sso
            .delete_jwt_secret(&oc.org, name, &oc.actor(), now().unix_timestamp())
            .await;
    match deleted {
        Ok(true) => oc.done("/secrets", format!("Deleted {name}.")).await,
        Ok(false) => {
            oc.done("/secrets", format!("There was no secret named {name}."))
                .await
        }
        Err(e) => oc.c.store_failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_become_the_api_body() {
        let f = FormData::parse(
            b"name=api&type=hs256&material=s3cret&url=&audiences=a%2C+b&issuers=&primary=on",
        );
        assert_eq!(
            body_of(&f),
            json!({"name": "api", "type": "hs256", "secret": "s3cret", "audiences": ["a", "b"],
                   "issuers": [], "primary": true})
        );
        let f = FormData::parse(b"name=idp&type=jwk_url&material=&url=https%3A%2F%2Fx%2Fjwks");
        assert_eq!(body_of(&f)["url"], "https://x/jwks");
        assert!(body_of(&f).get("secret").is_none());
    }
}
