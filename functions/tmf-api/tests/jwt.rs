//! The JWT verifier (`DOME_AUTH=jwt`) against a local JWKS server: RS256 and ES256 tokens,
//! expiry, not-before, issuer, audience (also Cognito's `client_id`), unknown and rotated
//! keys with the refetch rate limit, bad signatures, `alg: none` and algorithm confusion.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use dome_tmf_api::auth::{AuthError, TokenVerifier};
use dome_tmf_api::jwt::{JwtSettings, JwtVerifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TEST";
const AUDIENCE: &str = "catalogue-client";

// TEST KEYS: generated with openssl for tests/jwt.rs only. They protect nothing; never
// use them anywhere else.
/// RSA 2048, PKCS#1 DER, base64.
const TEST_RSA_PRIVATE_DER: &str = concat!(
    "MIIEogIBAAKCAQEAplvB6nSd+HrpEuNR6+omiGvcp7toTFoFvsCCf+OTmojrpJcYRDV2BPSoxtzcwJjboBC2Qp9l1r",
    "alezohGP4KCjva7yY9t1nW2PobbFuxUhbGlatifMPGE6XtbvJa9c6OoLg/tI54znnlNWtsiGyecu6dVkqbKEMpILKi",
    "PuzeKB3GmCv9AIeEwxNNaFBsH7r071Flmm+tU9tIICTvyOG0nZJCDWR5v/B8YPO0R8JTgwh5+N1jlJ9rnKxDLKTnxH",
    "ED2yZQFZ4woXZZxmQQvDRO3zBGHh86I4W4Ej6GhJ4Xw2r85pzWxPa73flR+WGqoJ9norv/6U32pz3+uf+Vs+VANwID",
    "AQABAoIBAEnZb+MJs9rLjU4CNaq5vjNPVpvrOOi0CdrdENF/EFZIs/rTzETzSpn2ljn5b9HbyZtr78zxf77qQ9nJO0",
    "oh9AkI+y6w1jLfod2eYbAfoD7lt3BXrZffPL4aKaXX1oNKF8zHHhikKoLWX+bv8jU5qrkwrg3RfsFH1ykZw6aVdiVu",
    "IyEXsRRs8kWwFux9QO3AmgK4HLg4NgQuzF+JupIztJpNBrPXc0O3dhgKRT2i9P5NPZBg6mxHXpBbmKzkrly4OqXfUf",
    "ceiA2Xcfcc16h87C3/U+9qpxfUzMbbV2JmDlk8nMw1Xc3IpviPgIld/L1RhGd53U6GRHljHEt8MXC4XNkCgYEA1B+k",
    "MgEQt6IZAPdBhtm3KNsgnrPSeOadqpW7ooRz6rtM/J/nbLk2fTdpwnyOFYk5hQiYgsevOgrgLPfLAzTae226neKtN4",
    "pyigUArpWqAuo6R0evHg/qpDoIWpZMNdGNvuzID8aXME+inOJChvpcOF72ZA4tZOnWTRSazE51KcMCgYEAyMTCzMz9",
    "nDmjoNTOZr9ReKY0xtzbL3pe+AoJVcAgwHovprAx9MYUe3dteeB2K5L1mJMvZE4tKDNaKTnznrL90RC4OcIYBejU2C",
    "voACzsZ14b4JiyRsRQy/TuhCfa5BbZKu1F5KDrgFE9k1ZL5pRD9h8nxsaeoQlEn1jROxN29H0CgYBBXk7XKgTg0g8q",
    "gQesasNKz9xJi9i8cTT9MI9WEcM2/ulGoHBMzPbBt6XbzU5rzJHxMSjuhGK3XEqhEOt63XrGtpXfuc7vYrbRWaFQK8",
    "bshwnWlXydowIIAeo5ID/0BdPMlmNAmU5WEPRnrEIcHmL07C65vrS2eGkV79eURklMyQKBgH4Y5ujOz3Lx2M3JGyH5",
    "g+gtK/TC/n+hckiDtT1AgNGjbI5bF+VPC8pIRmBIFLBliw+bUibD2yTmq/g8x8CjVzuaLrtIJuJ/TD/Bw+NoU8rQlt",
    "3HyiEcaErRuYUTqy2bFCccA8wHLiLX477Icr+N2+mXw9nbIgKu2YTjufZK0WnZAoGAS7BJxNXK+mD2yqMQAoy379Xo",
    "t0N6GPpKVPPXISeE/KQhVMsUKRvDaclorgFCTeKsxCqLv95LHCl5jVfbnB0dByf8V9TJjY3VyxnAthi4hDQjaSXRQ/",
    "VNJ4sJEd1PpcrUpYCDUuzWZeDZeG7tOdASd6qXRV0YZ+NBgZFrA+aPO0M=",
);
/// Its public modulus, base64url (the exponent is 65537, `AQAB`).
const TEST_RSA_N: &str = concat!(
    "plvB6nSd-HrpEuNR6-omiGvcp7toTFoFvsCCf-OTmojrpJcYRDV2BPSoxtzcwJjboBC2Qp9l1ralezohGP4KCjva7y",
    "Y9t1nW2PobbFuxUhbGlatifMPGE6XtbvJa9c6OoLg_tI54znnlNWtsiGyecu6dVkqbKEMpILKiPuzeKB3GmCv9AIeE",
    "wxNNaFBsH7r071Flmm-tU9tIICTvyOG0nZJCDWR5v_B8YPO0R8JTgwh5-",
    "N1jlJ9rnKxDLKTnxHED2yZQFZ4woXZZxmQQvDRO3zBGHh86I4W4Ej6GhJ4Xw2r85pzWxPa73flR-",
    "WGqoJ9norv_6U32pz3-uf-Vs-VANw",
);
/// P-256 key 1, PKCS#8 DER, base64.
const TEST_EC1_PRIVATE_DER: &str = concat!(
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgy3iveLJ1GPXF6Llvv/MnQsUptOs3bfITd2iM8NmTIP",
    "ihRANCAARO5r90whxCPbOKbUP6dznaGcdEvXGq2M9yhFYOKrdNI/tqS7zXxxHjZfGfUguQkZbnkMNZolIPgvCs20FL",
    "gpTa",
);
/// Its public point, base64url.
const TEST_EC1_X: &str = "Tua_dMIcQj2zim1D-nc52hnHRL1xqtjPcoRWDiq3TSM";
const TEST_EC1_Y: &str = "-2pLvNfHEeNl8Z9SC5CRlueQw1miUg-C8KzbQUuClNo";
/// P-256 key 2, PKCS#8 DER, base64.
const TEST_EC2_PRIVATE_DER: &str = concat!(
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghxO8NCyzQHdVLY4xSbJF7ND+MpBqy7+QvEiteNmu0w",
    "KhRANCAARVJts5zC5nXAq+Jt+fV7VLjp3za1xKxvyv0bL2TbsK17iXxpcOCuaEgcJwlluYbiP1V+GLx5eml1Bmy/Rm",
    "BCuE",
);
/// Its public point, base64url.
const TEST_EC2_X: &str = "VSbbOcwuZ1wKvibfn1e1S46d82tcSsb8r9Gy9k27Ctc";
const TEST_EC2_Y: &str = "uJfGlw4K5oSBwnCWW5huI_VX4YvHl6aXUGbL9GYEK4Q";

fn der(b64: &str) -> Vec<u8> {
    STANDARD.decode(b64).expect("test key")
}

fn rsa_jwk(kid: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": TEST_RSA_N, "e": "AQAB"})
}

fn ec_jwk(kid: &str, x: &str, y: &str) -> Value {
    json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": x, "y": y})
}

/// A JWKS endpoint whose document the test can change, counting requests.
struct Jwks {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type JwksState = (Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>);

async fn serve_jwks(
    State((keys, hits)): State<JwksState>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    hits.fetch_add(1, Ordering::SeqCst);
    let keys = keys.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (
        [(CONTENT_TYPE, "application/json")],
        json!({ "keys": keys }).to_string(),
    )
}

async fn jwks(keys: Vec<Value>) -> Jwks {
    let keys = Arc::new(Mutex::new(keys));
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/.well-known/jwks.json", get(serve_jwks))
        .with_state((Arc::clone(&keys), Arc::clone(&hits)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Jwks {
        url: format!("http://{addr}/.well-known/jwks.json"),
        keys,
        hits,
        task,
    }
}

fn verifier(url: &str, min_refetch: Duration) -> JwtVerifier {
    let mut settings = JwtSettings::new(ISSUER.into(), AUDIENCE.into(), url.into());
    settings.min_refetch_interval = min_refetch;
    JwtVerifier::new(settings).expect("settings")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn claims() -> Value {
    json!({"sub": "user-1", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "iat": now()})
}

fn with(mut base: Value, changes: Value) -> Value {
    if let (Some(base), Some(changes)) = (base.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            if v.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

fn rs256(kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_der(&der(TEST_RSA_PRIVATE_DER));
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

fn es256(kid: &str, private_der: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_ec_der(&der(private_der));
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// A token with any header, the given claims and signature bytes.
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn standard_keys() -> Vec<Value> {
    vec![rsa_jwk("rsa-1"), ec_jwk("ec-1", TEST_EC1_X, TEST_EC1_Y)]
}

#[tokio::test]
async fn accepts_valid_rs256_and_es256_tokens() {
    let server = jwks(standard_keys()).await;
    let v = verifier(&server.url, Duration::from_secs(60));
    let principal = v.verify(&rs256("rsa-1", &claims())).await.expect("RS256");
    assert_eq!(principal.subject, "user-1");
    let principal = v
        .verify(&es256("ec-1", TEST_EC1_PRIVATE_DER, &claims()))
        .await
        .expect("ES256");
    assert_eq!(principal.subject, "user-1");
    // Audience in a list; Cognito access token (client_id, no aud); expiry within leeway.
    for accepted in [
        with(claims(), json!({"aud": ["other", AUDIENCE]})),
        with(claims(), json!({"aud": null, "client_id": AUDIENCE})),
        with(claims(), json!({"exp": now() - 10})),
        with(claims(), json!({"nbf": now() + 10})),
    ] {
        v.verify(&rs256("rsa-1", &accepted))
            .await
            .unwrap_or_else(|e| panic!("{accepted}: {e}"));
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "key set cached");
}

#[tokio::test]
async fn refuses_bad_claims() {
    let server = jwks(standard_keys()).await;
    let v = verifier(&server.url, Duration::from_secs(60));
    for refused in [
        with(claims(), json!({"exp": now() - 600})),
        with(claims(), json!({"exp": null})),
        with(claims(), json!({"nbf": now() + 600})),
        with(claims(), json!({"iss": "https://evil.example"})),
        with(claims(), json!({"iss": null})),
        with(claims(), json!({"aud": "another-client"})),
        with(claims(), json!({"aud": ["a", "b"]})),
        with(claims(), json!({"aud": null})),
        with(
            claims(),
            json!({"aud": null, "client_id": "another-client"}),
        ),
    ] {
        assert_eq!(
            v.verify(&rs256("rsa-1", &refused)).await,
            Err(AuthError::InvalidToken),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn refuses_bad_signatures_and_algorithms() {
    let server = jwks(standard_keys()).await;
    let v = verifier(&server.url, Duration::from_secs(60));
    let good = rs256("rsa-1", &claims());
    let (head, rest) = good.split_once('.').expect("token");
    let signature = rest.rsplit_once('.').map(|(_, s)| s).unwrap_or_default();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"});

    let refused = [
        // Signed by a key that is not the one `kid` names.
        es256("ec-1", TEST_EC2_PRIVATE_DER, &claims()),
        // The claims changed after signing.
        format!(
            "{head}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(with(claims(), json!({"sub": "admin"})).to_string())
        ),
        // No signature at all.
        raw_token(&json!({"alg": "none", "kid": "rsa-1"}), &claims(), b""),
        raw_token(&json!({"alg": "none"}), &claims(), b""),
        // HMAC with the public key as secret (algorithm confusion).
        jsonwebtoken::encode(
            &Header {
                kid: Some("rsa-1".into()),
                ..Header::new(Algorithm::HS256)
            },
            &claims(),
            &EncodingKey::from_secret(TEST_RSA_N.as_bytes()),
        )
        .expect("sign"),
        // ES256 claimed with the RSA key's kid, RS256 with the EC key's.
        es256("rsa-1", TEST_EC1_PRIVATE_DER, &claims()),
        rs256("ec-1", &claims()),
        // No kid.
        raw_token(&json!({"alg": "RS256"}), &claims(), b"x"),
        raw_token(&header, &claims(), b"garbage"),
        "not.a.jwt".to_string(),
        String::new(),
    ];
    for token in refused {
        assert_eq!(
            v.verify(&token).await,
            Err(AuthError::InvalidToken),
            "{token}"
        );
    }
}

#[tokio::test]
async fn unknown_kids_refetch_within_a_rate_limit() {
    let server = jwks(standard_keys()).await;
    let limited = verifier(&server.url, Duration::from_secs(60));
    limited
        .verify(&rs256("rsa-1", &claims()))
        .await
        .expect("valid");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    // The set was fetched a moment ago: unknown kids wait for the interval.
    for _ in 0..5 {
        assert_eq!(
            limited.verify(&rs256("rsa-unknown", &claims())).await,
            Err(AuthError::InvalidToken)
        );
    }
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "rate-limited refetch"
    );

    // The issuer rotates to a new key: a verifier whose interval has passed picks it up.
    let eager = verifier(&server.url, Duration::ZERO);
    eager
        .verify(&rs256("rsa-1", &claims()))
        .await
        .expect("valid");
    let before = server.hits.load(Ordering::SeqCst);
    server
        .keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(ec_jwk("ec-2", TEST_EC2_X, TEST_EC2_Y));
    let rotated = es256("ec-2", TEST_EC2_PRIVATE_DER, &claims());
    eager.verify(&rotated).await.expect("new key");
    assert_eq!(server.hits.load(Ordering::SeqCst), before + 1, "refetched");
    assert_eq!(
        limited.verify(&rotated).await,
        Err(AuthError::InvalidToken),
        "still within the limit"
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn unreachable_key_set_is_unavailable_not_invalid() {
    let server = jwks(standard_keys()).await;
    let url = server.url.clone();
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v = verifier(&url, Duration::from_secs(60));
    assert!(matches!(
        v.verify(&rs256("rsa-1", &claims())).await,
        Err(AuthError::Unavailable(_))
    ));
    assert!(JwtVerifier::new(JwtSettings::new(
        ISSUER.into(),
        AUDIENCE.into(),
        "http://idp.example/jwks".into()
    ))
    .is_err());
}
