//! SCIM 2.0 provisioning (issue 13) through the HTTP API, as Okta and Entra ID send it: users
//! and groups created, found by filter, deactivated, reactivated, grouped and deleted; the
//! errors a client meets; the effects (members before their first sign-in, deprovisioning
//! ending sessions and minted tokens, roles following groups); and linking a first sign-in to
//! the provisioned member (those in `scim_effects.rs`). Runs on SQLite, and on PostgreSQL with
//! `ORGSSO_TEST_BACKEND=postgres`; the cross-instance test needs `ORGSSO_TEST_PG_URL`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A SCIM answer: status, selected headers, JSON body (Null when empty).
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub location: Option<String>,
    pub body: Value,
}

/// One SCIM request with `token` (None: no Authorization header).
pub async fn scim(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    scim_raw(app, token, method, path, body.map(|b| b.to_string())).await
}

pub async fn scim_raw(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Answer {
    let mut req = app.api.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/scim+json").body(b);
    }
    let resp = req.send().await.expect("SCIM request");
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, etag, location) =
        (header("content-type"), header("etag"), header("location"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    Answer {
        status,
        content_type,
        etag,
        location,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// A new SCIM token for the org, named `name`.
pub async fn scim_token(app: &TestApp, slug: &str, name: &str) -> String {
    let (s, body) = app
        .admin(
            Method::POST,
            &format!("/api/v1/orgs/{slug}/scim-tokens"),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

pub fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

pub fn member<'a>(members: &'a [Value], email: &str) -> Option<&'a Value> {
    members.iter().find(|m| m["email"] == email)
}

pub fn assert_scim_error(a: &Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(a.status.as_u16(), status, "{}", a.body);
    assert_eq!(
        a.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{}",
        a.body
    );
    assert_eq!(a.body["status"], status.to_string(), "{}", a.body);
    if let Some(t) = scim_type {
        assert_eq!(a.body["scimType"], t, "{}", a.body);
    }
    assert!(
        a.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        a.body
    );
    assert!(
        a.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/scim+json")),
        "{:?}",
        a.content_type
    );
}

#[tokio::test]
async fn okta_sequence_provisions_deactivates_reactivates_groups_and_deletes() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    let token = scim_token(&app, "acme", "Okta").await;
    let t = Some(token.as_str());

    // Okta looks the user up first, then creates them.
    let found = scim(
        &app,
        t,
        Method::GET,
        "/scim/v2/acme/Users?filter=userName%20eq%20%22ada%40acme.test%22&startIndex=1&count=100",
        None,
    )
    .await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.body["totalResults"], 0, "{}", found.body);
    let created = scim(
        &app,
        t,
        Method::POST,
        "/scim/v2/acme/Users",
        Some(json!({
            "schemas": [USER], "userName": "ada@acme.test",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"primary": true, "value": "ada@acme.test", "type": "work"}],
            "displayName": "Ada Lovelace", "locale": "en-US", "externalId": "00u1ada",
            "groups": [], "password": "never-stored-1!", "active": true
        })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(created
        .content_type
        .as_deref()
        .unwrap()
        .starts_with("application/scim+json"));
    assert_eq!(
        created.location.as_deref(),
        Some(format!("{}/scim/v2/acme/Users/{id}", app.public).as_str())
    );
    assert_eq!(
        created.etag.as_deref(),
        created.body["meta"]["version"].as_str()
    );
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert!(created.body.get("password").is_none(), "{}", created.body);

    // A member before their first sign-in.
    let members = app.members("acme").await;
    let m = member(&members, "ada@acme.test").expect("provisioned member listed");
    assert_eq!(
        (&m["source"], &m["role"], &m["name"]),
        (&json!("scim"), &json!("viewer"), &json!("Ada Lovelace"))
    );
    assert!(m["deprovisioned_at"].is_null());

    // Found by filter now, by userName in another case too.
    let found = scim(
        &app,
        t,
        Method::GET,
        "/scim/v2/acme/Users?filter=userName%20eq%20%22ADA%40acme.test%22",
        None,
    )
    .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
    assert_eq!(found.body["Resources"][0]["id"], id.as_str());

    // Okta deactivates with a path-less replace.
    let off = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "value": {"active": false}}]),
        )),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.body["active"], false);
    assert_ne!(off.etag, created.etag, "a change moves the version");
    let m = app.members("acme").await;
    assert!(member(&m, "ada@acme.test").unwrap()["deprovisioned_at"].is_number());
    // …and reactivates.
    let on = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(patch(json!([{"op": "replace", "value": {"active": true}}]))),
    )
    .await;
    assert_eq!(on.body["active"], true, "{}", on.body);
    let m = app.members("acme").await;
    assert!(member(&m, "ada@acme.test").unwrap()["deprovisioned_at"].is_null());

    // Profile update with PUT (Okta's "update user attributes").
    let mut full = on.body.clone();
    full["name"]["familyName"] = json!("Byron");
    full["displayName"] = json!("Ada Byron");
    let put = scim(
        &app,
        t,
        Method::PUT,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(full),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.body["name"]["familyName"], "Byron");
    // A stale If-Match is refused.
    let stale = app
        .api
        .put(app.url(&format!("/scim/v2/acme/Users/{id}")))
        .bearer_auth(&token)
        .header("if-match", created.etag.clone().unwrap())
        .header("content-type", "application/scim+json")
        .body(put.body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    // Groups: push a group with the member, remove them Okta's way, add them back.
    let g = scim(&app, t, Method::POST, "/scim/v2/acme/Groups", Some(json!({
        "schemas": [GROUP], "displayName": "Engineering", "members": [{"value": id, "display": "ada@acme.test"}]
    }))).await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let gid = g.body["id"].as_str().unwrap().to_owned();
    assert_eq!(g.body["members"][0]["value"], id.as_str());
    assert_eq!(g.body["members"][0]["display"], "ada@acme.test");
    let user = scim(
        &app,
        t,
        Method::GET,
        &format!("/scim/v2/acme/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(
        user.body["groups"][0]["display"], "Engineering",
        "{}",
        user.body
    );
    let by_name = scim(&app, t, Method::GET, "/scim/v2/acme/Groups?filter=displayName%20eq%20%22engineering%22&excludedAttributes=members", None).await;
    assert_eq!(by_name.body["totalResults"], 1, "{}", by_name.body);
    assert!(
        by_name.body["Resources"][0].get("members").is_none(),
        "{}",
        by_name.body
    );
    let removed = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Groups/{gid}"),
        Some(patch(
            json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
        )),
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let g2 = scim(
        &app,
        t,
        Method::GET,
        &format!("/scim/v2/acme/Groups/{gid}"),
        None,
    )
    .await;
    assert_eq!(g2.body["members"], json!([]), "{}", g2.body);
    let added = scim(&app, t, Method::PATCH, &format!("/scim/v2/acme/Groups/{gid}"),
        Some(patch(json!([{"op": "add", "path": "members", "value": [{"value": id, "display": "ada@acme.test"}]}])))).await;
    assert_eq!(added.status, StatusCode::NO_CONTENT);
    let g3 = scim(
        &app,
        t,
        Method::GET,
        &format!("/scim/v2/acme/Groups/{gid}"),
        None,
    )
    .await;
    assert_eq!(
        g3.body["members"].as_array().unwrap().len(),
        1,
        "{}",
        g3.body
    );
    // Rename, then delete the group.
    let renamed = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Groups/{gid}"),
        Some(patch(
            json!([{"op": "replace", "value": {"id": gid, "displayName": "Eng"}}]),
        )),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        scim(
            &app,
            t,
            Method::GET,
            &format!("/scim/v2/acme/Groups/{gid}"),
            None
        )
        .await
        .body["displayName"],
        "Eng"
    );
    assert_eq!(
        scim(
            &app,
            t,
            Method::DELETE,
            &format!("/scim/v2/acme/Groups/{gid}"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::GET,
            &format!("/scim/v2/acme/Groups/{gid}"),
            None,
        )
        .await,
        404,
        None,
    );

    // Delete: the resource is gone, the member stays, deprovisioned.
    let del = scim(
        &app,
        t,
        Method::DELETE,
        &format!("/scim/v2/acme/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::GET,
            &format!("/scim/v2/acme/Users/{id}"),
            None,
        )
        .await,
        404,
        None,
    );
    let m = app.members("acme").await;
    assert!(member(&m, "ada@acme.test").unwrap()["deprovisioned_at"].is_number());

    // Every change is audited with the token's name as the actor.
    let (_, audit) = app
        .admin(Method::GET, "/api/v1/orgs/acme/audit?limit=1000", None)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "scim:Okta")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "scim.user.create",
        "scim.user.update",
        "scim.user.deprovision",
        "scim.user.reactivate",
        "scim.group.create",
        "scim.group.members",
        "scim.group.update",
        "scim.group.delete",
        "scim.user.delete",
    ] {
        assert!(
            actions.contains(&want),
            "no {want} by scim:Okta in {actions:?}"
        );
    }
}

#[tokio::test]
async fn entra_sequence_with_string_booleans_large_groups_and_roles_from_groups() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    app.set_rules(
        "acme",
        json!({"default_role": "viewer", "rules": [
        {"claim": "/scim/groups", "op": "contains", "value": "Admins", "role": "admin"},
        {"claim": "/scim/department", "op": "equals", "value": "Contractors", "role": "deny"}]}),
    )
    .await;
    let t = scim_token(&app, "acme", "Entra ID").await;
    let t = Some(t.as_str());

    // Entra ID probes with a random filter first.
    let probe = scim(
        &app,
        t,
        Method::GET,
        "/scim/v2/acme/Users?filter=userName%20eq%20%22non-existent%40acme.test%22",
        None,
    )
    .await;
    assert_eq!(probe.body["totalResults"], 0);
    let created = scim(&app, t, Method::POST, "/scim/v2/acme/Users", Some(json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@acme.test", "active": true,
        "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@acme.test"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
        ENTERPRISE: {"department": "R&D", "manager": {"value": "m1"}}
    }))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body[ENTERPRISE]["department"], "R&D",
        "{}",
        created.body
    );
    let by_ext = scim(
        &app,
        t,
        Method::GET,
        "/scim/v2/acme/Users?filter=externalId%20eq%20%220a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef%22",
        None,
    )
    .await;
    assert_eq!(by_ext.body["totalResults"], 1, "{}", by_ext.body);
    // The email filter of the issue (evaluated over the org's users).
    let by_mail = scim(&app, t, Method::GET, "/scim/v2/acme/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22test_user_fd0ea19b%40acme.test%22", None).await;
    assert_eq!(by_mail.body["totalResults"], 1, "{}", by_mail.body);

    // Entra ID's replace with a string boolean, and attribute updates by path.
    let off = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(patch(json!([
        {"op": "Replace", "path": "active", "value": "False"}]))),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.body["active"], false);
    let on = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(patch(json!([
        {"op": "Replace", "path": "active", "value": "True"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@acme.test"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]))),
    )
    .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_eq!(on.body["active"], true);
    assert_eq!(on.body["name"]["familyName"], "updatedFamilyName");
    let m = app.members("acme").await;
    let row = member(&m, "updatedemail@acme.test").expect("the email follows the directory");
    assert_eq!(row["role"], "viewer");
    let user_id = row["user_id"].clone();

    // 600 more users, then one group PATCH adding all 601 (batches of 500 inside).
    let mut ids = vec![id.clone()];
    for i in 0..600 {
        let u = scim(
            &app,
            t,
            Method::POST,
            "/scim/v2/acme/Users",
            Some(json!({
            "schemas": [USER], "userName": format!("user{i}@acme.test"), "active": true})),
        )
        .await;
        assert_eq!(u.status, StatusCode::CREATED, "{}", u.body);
        ids.push(u.body["id"].as_str().unwrap().to_owned());
    }
    let g = scim(&app, t, Method::POST, "/scim/v2/acme/Groups", Some(json!({
        "schemas": [GROUP], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Admins", "members": []}))).await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let gid = g.body["id"].as_str().unwrap().to_owned();
    let members: Vec<Value> = ids.iter().map(|i| json!({"value": i})).collect();
    let add = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Groups/{gid}"),
        Some(patch(json!([
        {"op": "Add", "path": "members", "value": members}]))),
    )
    .await;
    assert_eq!(add.status, StatusCode::NO_CONTENT, "{}", add.body);
    let page = scim(
        &app,
        t,
        Method::GET,
        &format!("/scim/v2/acme/Groups/{gid}"),
        None,
    )
    .await;
    assert_eq!(page.body["members"].as_array().unwrap().len(), 601);
    // The rules saw the group at once: everyone in Admins is admin.
    let m = app.members("acme").await;
    assert_eq!(m.iter().filter(|x| x["role"] == "admin").count(), 601);
    // Entra ID removes one member by value.
    let rm = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Groups/{gid}"),
        Some(patch(json!([
        {"op": "Remove", "path": "members", "value": [{"value": id}]}]))),
    )
    .await;
    assert_eq!(rm.status, StatusCode::NO_CONTENT);
    let m = app.members("acme").await;
    let row = m.iter().find(|x| x["user_id"] == user_id).unwrap();
    assert_eq!(
        row["role"], "viewer",
        "removed from Admins: back to the default"
    );
    // A directory attribute the rules deny: the member is denied (not deprovisioned).
    let deny = scim(
        &app,
        t,
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(patch(json!([
        {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Contractors"}]))),
    )
    .await;
    assert_eq!(deny.status, StatusCode::OK, "{}", deny.body);
    let m = app.members("acme").await;
    let row = m.iter().find(|x| x["user_id"] == user_id).unwrap();
    assert!(
        row["denied_at"].is_number() && row["deprovisioned_at"].is_null(),
        "{row}"
    );

    // Paging through the 601 users.
    let last = scim(
        &app,
        t,
        Method::GET,
        "/scim/v2/acme/Users?startIndex=601&count=100&attributes=userName",
        None,
    )
    .await;
    assert_eq!(last.body["totalResults"], 601);
    assert_eq!(last.body["startIndex"], 601);
    assert_eq!(last.body["itemsPerPage"], 1, "{}", last.body);
    assert!(last.body["Resources"][0].get("emails").is_none());
    // Entra ID deletes the user.
    assert_eq!(
        scim(
            &app,
            t,
            Method::DELETE,
            &format!("/scim/v2/acme/Users/{id}"),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn errors_are_scim_errors() {
    let app = spawn_app().await;
    app.create_org("acme", &[]).await;
    app.create_org("other", &[]).await;
    let t = scim_token(&app, "acme", "Okta").await;
    let other = scim_token(&app, "other", "Okta").await;
    let t = Some(t.as_str());
    let user = json!({"schemas": [USER], "userName": "bob@acme.test"});

    // Tokens: none, unknown, another org's, revoked.
    assert_scim_error(
        &scim(&app, None, Method::GET, "/scim/v2/acme/Users", None).await,
        401,
        None,
    );
    assert_scim_error(
        &scim(
            &app,
            Some("orgsso_scim_forged"),
            Method::GET,
            "/scim/v2/acme/Users",
            None,
        )
        .await,
        401,
        None,
    );
    assert_scim_error(
        &scim(&app, Some(&other), Method::GET, "/scim/v2/acme/Users", None).await,
        401,
        None,
    );
    assert_scim_error(
        &scim(
            &app,
            Some(crate::helpers::ADMIN_TOKEN),
            Method::GET,
            "/scim/v2/acme/Users",
            None,
        )
        .await,
        401,
        None,
    );
    assert_eq!(
        scim(
            &app,
            Some(&other),
            Method::GET,
            "/scim/v2/other/Users",
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let (_, tokens) = app
        .admin(Method::GET, "/api/v1/orgs/other/scim-tokens", None)
        .await;
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert!(
        tokens[0].get("token").is_none() && tokens[0]["last_used_at"].is_number(),
        "{tokens}"
    );
    let tid = tokens[0]["id"].as_str().unwrap();
    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/orgs/other/scim-tokens/{tid}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_scim_error(
        &scim(
            &app,
            Some(&other),
            Method::GET,
            "/scim/v2/other/Users",
            None,
        )
        .await,
        401,
        None,
    );
    let (s, _) = app
        .admin(
            Method::POST,
            "/api/v1/orgs/acme/scim-tokens",
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Filters.
    for bad in [
        "userName%20eq",
        "userName%20xx%20%22a%22",
        "(userName%20eq%20%22a%22",
        "%22a%22",
    ] {
        assert_scim_error(
            &scim(
                &app,
                t,
                Method::GET,
                &format!("/scim/v2/acme/Users?filter={bad}"),
                None,
            )
            .await,
            400,
            Some("invalidFilter"),
        );
    }
    assert_scim_error(
        &scim(&app, t, Method::GET, "/scim/v2/acme/Users?count=many", None).await,
        400,
        Some("invalidValue"),
    );

    // Bodies: malformed JSON, no userName, duplicate userName (any case), unknown attributes.
    assert_scim_error(
        &scim_raw(
            &app,
            t,
            Method::POST,
            "/scim/v2/acme/Users",
            Some("{\"userName\": ".into()),
        )
        .await,
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::POST,
            "/scim/v2/acme/Users",
            Some(json!({"schemas": [USER]})),
        )
        .await,
        400,
        Some("invalidValue"),
    );
    assert_eq!(
        scim(
            &app,
            t,
            Method::POST,
            "/scim/v2/acme/Users",
            Some(user.clone())
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::POST,
            "/scim/v2/acme/Users",
            Some(json!({"schemas": [USER], "userName": "BOB@acme.test"})),
        )
        .await,
        409,
        Some("uniqueness"),
    );
    let odd = scim(&app, t, Method::POST, "/scim/v2/acme/Users", Some(json!({"schemas": [USER], "userName": "carol@acme.test", "favouriteColour": "teal", "urn:example:custom:1.0:User": {"x": 1}}))).await;
    assert_eq!(odd.status, StatusCode::CREATED, "{}", odd.body);
    assert!(
        odd.body.get("favouriteColour").is_none(),
        "unknown core attributes are ignored: {}",
        odd.body
    );
    let nul = scim(
        &app,
        t,
        Method::POST,
        "/scim/v2/acme/Users",
        Some(json!({"schemas": [USER], "userName": "nul\u{0}@acme.test"})),
    )
    .await;
    assert_scim_error(&nul, 400, Some("invalidValue"));
    // PATCH: not a PatchOp, a read-only attribute, an unknown id.
    let list = scim(
        &app,
        t,
        Method::GET,
        "/scim/v2/acme/Users?filter=userName%20eq%20%22bob%40acme.test%22",
        None,
    )
    .await;
    let bob = list.body["Resources"][0]["id"].as_str().unwrap().to_owned();
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::PATCH,
            &format!("/scim/v2/acme/Users/{bob}"),
            Some(json!({"Operations": "no"})),
        )
        .await,
        400,
        None,
    );
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::PATCH,
            &format!("/scim/v2/acme/Users/{bob}"),
            Some(patch(
                json!([{"op": "replace", "path": "id", "value": "x"}]),
            )),
        )
        .await,
        400,
        Some("mutability"),
    );
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::PATCH,
            "/scim/v2/acme/Users/nope",
            Some(patch(
                json!([{"op": "replace", "value": {"active": false}}]),
            )),
        )
        .await,
        404,
        None,
    );
    assert_scim_error(
        &scim(
            &app,
            t,
            Method::PUT,
            &format!("/scim/v2/acme/Users/{bob}"),
            Some(json!({"schemas": [USER], "userName": "carol@acme.test"})),
        )
        .await,
        409,
        Some("uniqueness"),
    );
    assert_scim_error(
        &scim(&app, t, Method::DELETE, "/scim/v2/acme/Groups/nope", None).await,
        404,
        None,
    );
    assert_scim_error(
        &scim(&app, t, Method::GET, "/scim/v2/acme/Nothing", None).await,
        404,
        None,
    );
    // Oversized body.
    let huge = format!("{{\"userName\": \"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let big = scim_raw(&app, t, Method::POST, "/scim/v2/acme/Users", Some(huge)).await;
    assert!(
        big.status == StatusCode::PAYLOAD_TOO_LARGE || big.status == StatusCode::BAD_REQUEST,
        "{}",
        big.status
    );
    // Another org's resource is not found through this org.
    let t_other = scim_token(&app, "other", "Okta 2").await;
    assert_scim_error(
        &scim(
            &app,
            Some(&t_other),
            Method::GET,
            &format!("/scim/v2/other/Users/{bob}"),
            None,
        )
        .await,
        404,
        None,
    );

    // Discovery documents.
    let spc = scim(
        &app,
        t,
        Method::GET,
        "/scim/v2/acme/ServiceProviderConfig",
        None,
    )
    .await;
    assert_eq!(spc.body["patch"]["supported"], true, "{}", spc.body);
    let rt = scim(&app, t, Method::GET, "/scim/v2/acme/ResourceTypes", None).await;
    assert_eq!(rt.body["totalResults"], 2);
    let sc = scim(&app, t, Method::GET, "/scim/v2/acme/Schemas", None).await;
    assert!(sc.body["totalResults"].as_u64().unwrap() >= 2);
}
