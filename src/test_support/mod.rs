//! Test support shared by unit tests across modules: throwaway keys and a local JWKS server.
//! Compiled only for tests; production files hold no test servers.

pub mod idp_keys;
pub mod jwks_server;
pub mod secret_keys;
