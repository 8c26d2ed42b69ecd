//! Throwaway RSA and EC keys for the org JWT secret tests, generated once with the `openssl`
//! CLI (see `testdata/secrets/README.md`). They protect nothing.

pub const RSA_A_PKCS1: &str = include_str!("testdata/secrets/rsa_a_pkcs1.pem");
pub const RSA_A_PKCS8: &str = include_str!("testdata/secrets/rsa_a_pkcs8.pem");
pub const RSA_A_SPKI: &str = include_str!("testdata/secrets/rsa_a_spki.pem");
pub const RSA_A_PKCS1_PUBLIC: &str = include_str!("testdata/secrets/rsa_a_pkcs1_public.pem");
pub const RSA_A_ENCRYPTED: &str = include_str!("testdata/secrets/rsa_a_encrypted_pkcs8.pem");
pub const RSA_A_CERT: &str = include_str!("testdata/secrets/rsa_a_cert.pem");
pub const RSA_B_PKCS8: &str = include_str!("testdata/secrets/rsa_b_pkcs8.pem");
pub const RSA_B_SPKI: &str = include_str!("testdata/secrets/rsa_b_spki.pem");
pub const RSA_1024_PKCS8: &str = include_str!("testdata/secrets/rsa_1024_pkcs8.pem");
pub const RSA_1024_SPKI: &str = include_str!("testdata/secrets/rsa_1024_spki.pem");
pub const RSA_8192_PKCS8: &str = include_str!("testdata/secrets/rsa_8192_pkcs8.pem");
pub const EC256_PKCS8: &str = include_str!("testdata/secrets/ec256_pkcs8.pem");
pub const EC256_SPKI: &str = include_str!("testdata/secrets/ec256_spki.pem");
