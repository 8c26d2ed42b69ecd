//! orgsso: a self-hosted, multi-tenant OpenID Connect single sign-on login service.

pub mod access;
pub mod cache;
pub mod configuration;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod jose;
pub mod jwt;
pub mod oidc;
pub mod outbound;
#[cfg(test)]
mod props;
pub mod roles;
pub mod scim;
pub mod session;
pub mod sso;
pub mod startup;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod test_support;
pub mod throttle;
