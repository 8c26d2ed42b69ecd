//! One integration-test binary: orgsso against a real OpenID Provider (npm `oidc-provider`,
//! started by the tests on 127.0.0.1), another written by other people (django-oauth-toolkit,
//! `other_providers.rs`), a hostile in-test IdP, and a real SQLite file.

mod admin_api;
mod audit;
mod backchannel;
mod browser;
mod console;
mod django_op;
mod egress;
mod helpers;
mod hostile;
mod idp;
mod login_flow;
mod logout;
mod metrics;
mod multi_instance;
mod negative;
mod nginx;
mod nul_bytes;
mod openapi;
mod other_providers;
mod pgcluster;
mod props;
mod refusals;
mod roles;
mod rotation;
mod routing;
mod scim;
mod scim_effects;
mod scim_tester;
mod setup_links;
mod store;
mod throttle;
mod token_auth;
mod tokens;
mod userinfo;
mod venv;
