//! JSON Web Tokens apps and APIs use to trust orgsso: org JWT secrets (`secrets`), checking
//! tokens against them (`verify`), and the service's own signing keys (`signing`).

pub mod secrets;
pub mod signing;
pub mod verify;
