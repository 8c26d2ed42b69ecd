//! Where orgsso may send requests, and the clients that keep to it: kept in `outbound` (a
//! leaf, so the JOSE core's key fetches are pinned too); named here for `sso`, which reaches
//! outbound HTTP only through `oidc`.

pub use crate::outbound::egress::Egress;
pub use crate::outbound::{HostOverrides, Http, Outbound};
