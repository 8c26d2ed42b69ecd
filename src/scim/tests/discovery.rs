use serde_json::Value;

use super::*;

#[test]
fn documents_say_what_is_supported() {
    let spc = service_provider_config("https://sso.example.com/scim/v2/acme/");
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(spc["changePassword"]["supported"], false);
    assert_eq!(spc["sort"]["supported"], false);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    assert_eq!(
        spc["meta"]["location"],
        "https://sso.example.com/scim/v2/acme/ServiceProviderConfig"
    );

    let rt = resource_types("https://sso.example.com/scim/v2/acme");
    assert_eq!(rt["totalResults"], 2);
    let names: Vec<&str> = rt["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["User", "Group"]);
    assert_eq!(rt["Resources"][0]["endpoint"], "/Users");
    assert_eq!(
        resource_type("https://x", "group").unwrap()["endpoint"],
        "/Groups"
    );
    assert!(resource_type("https://x", "Device").is_none());
}

#[test]
fn schemas_define_every_attribute_fully() {
    let s = schemas_at("https://x/scim/v2/acme");
    assert_eq!(s["totalResults"], 3);
    let all = s["Resources"].as_array().unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_USER_SCHEMA]);
    fn check(a: &Value) {
        for k in [
            "name",
            "type",
            "multiValued",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
        ] {
            assert!(a.get(k).is_some(), "{} lacks {k}", a["name"]);
        }
        if a["type"] == "complex" {
            a["subAttributes"]
                .as_array()
                .unwrap()
                .iter()
                .for_each(check);
        }
    }
    for r in all {
        r["attributes"].as_array().unwrap().iter().for_each(check);
        assert!(r["meta"]["location"]
            .as_str()
            .unwrap()
            .starts_with("https://x/scim/v2/acme/Schemas/urn:"));
    }
    let user = &all[0]["attributes"];
    let find = |n: &str| {
        user.as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(find("userName")["required"], true);
    assert_eq!(find("userName")["uniqueness"], "server");
    assert_eq!(find("externalId")["caseExact"], true);
    assert_eq!(find("groups")["mutability"], "readOnly");
    assert_eq!(find("password")["returned"], "never");
    assert_eq!(schemas()["totalResults"], 3);
    assert!(schema("https://x", ENTERPRISE_USER_SCHEMA).is_some());
    assert!(schema("https://x", "urn:nope").is_none());
}
