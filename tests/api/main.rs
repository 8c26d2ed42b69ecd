//! One integration-test binary: orgsso against a real OpenID Provider (npm `oidc-provider`,
//! started by the tests on 127.0.0.1), a hostile in-test IdP, and a real SQLite file.

mod admin_api;
mod browser;
mod console;
mod helpers;
mod hostile;
mod idp;
mod login_flow;
mod multi_instance;
mod nginx;
mod pgcluster;
mod store;
mod token_auth;
mod tokens;
