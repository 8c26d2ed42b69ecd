//! Cost of one RS256 bearer-token check through orgsso's own verification path (parse, signature
//! with the org's rs256 secret, claims), without HTTP and without the verdict cache: what a
//! token never seen before costs the verify endpoint in CPU. Prints µs per verification for a
//! 2048-bit and an 8192-bit key.
//!
//! Run: `cargo bench --bench rs256_verify` (ITERATIONS=n for the 2048-bit key, default
//! 3000; a tenth of that for the 8192-bit key).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orgsso::jwt::ready_secret::ReadySecret;
use orgsso::jwt::secret_input::{parse_secret, SecretInput, SecretKind};
use orgsso::jwt::verify::verify_with_secrets;
use serde_json::json;

const RSA_2048: &str = include_str!("../tests/fixtures/rsa_a.pem");
const RSA_8192: &str = include_str!("../src/test_support/testdata/secrets/rsa_8192_pkcs8.pem");

fn secret_of(pem: &str) -> (Arc<ReadySecret>, EncodingKey) {
    let parsed = parse_secret(
        SecretInput::from_json(json!({"type": "rs256", "name": "rs", "private_key": pem})).unwrap(),
    )
    .unwrap();
    let ready = ReadySecret::rsa_public_pem(
        "rs",
        SecretKind::Rs256,
        parsed.public.as_deref().unwrap(),
        parsed.kid.clone(),
        vec![],
        vec![],
    )
    .unwrap();
    let signing = EncodingKey::from_rsa_pem(
        parsed
            .private_material
            .as_ref()
            .unwrap()
            .expose()
            .as_bytes(),
    )
    .unwrap();
    (Arc::new(ready), signing)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let now = time::OffsetDateTime::now_utc();
    println!("| key | verifications | µs per verification |");
    println!("|---|---|---|");
    for (name, pem, iterations) in [
        ("RSA 2048", RSA_2048, iterations),
        ("RSA 8192", RSA_8192, iterations.div_ceil(10)),
    ] {
        let (secret, signing) = secret_of(pem);
        let claims = json!({"sub": "svc", "role": "developer", "exp": now.unix_timestamp() + 3600});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &signing).unwrap();
        let secrets = [secret];
        // Warm up (first-use initialisation of the backend).
        for _ in 0..50 {
            verify_with_secrets(&token, &secrets, now, Duration::from_secs(60))
                .await
                .unwrap();
        }
        let started = Instant::now();
        for _ in 0..iterations {
            let verified =
                verify_with_secrets(&token, &secrets, now, Duration::from_secs(60)).await;
            assert!(std::hint::black_box(verified).is_ok());
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
        println!("| {name} | {iterations} | {per:.1} |");
    }
}
