//! ServiceAccount-style JWTs for the keyless-credential tests: RSA signing keys, RS256 tokens
//! with chosen claims, and the JWKS document kube-apiserver would publish for the keys
//! (`/openid/v1/jwks`), which the simulator's identity providers are configured with.
//!
//! The keys come from aws-lc-rs directly (the crypto provider already in the tree), which also
//! hands out the modulus and exponent a JWK needs without parsing DER.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// An RSA key that signs tokens, as a cluster's service-account signing key.
pub struct SigningKey {
    kid: String,
    key: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key with this key id.
    pub fn generate(kid: &str) -> Self {
        match KeyPair::generate(KeySize::Rsa2048) {
            Ok(key) => Self {
                kid: kid.to_owned(),
                key,
            },
            Err(e) => panic!("cannot generate an RSA key: {e}"),
        }
    }

    /// The key id tokens name in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, as kube-apiserver lists it.
    pub fn jwk(&self) -> Value {
        let public = self.key.public_key();
        json!({
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// A JWKS document with this key alone.
    pub fn jwks(&self) -> Value {
        jwks(&[self])
    }

    /// An RS256 token of `claims`, its header naming this key.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A token with any header (another `alg`, a missing or foreign `kid`), signed RS256 by
    /// this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0_u8; self.key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        if let Err(e) = self
            .key
            .sign(&RSA_PKCS1_SHA256, &rng, message.as_bytes(), &mut signature)
        {
            panic!("cannot sign a JWT: {e}");
        }
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// A JWKS document listing `keys`.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// The subject of a ServiceAccount's tokens.
pub fn service_account_subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Seconds since the epoch.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Claims like a projected ServiceAccount token's: issued now, valid for `lifetime`.
pub fn claims(issuer: &str, audience: &str, subject: &str, lifetime: Duration) -> Value {
    let now = unix_seconds(SystemTime::now());
    json!({
        "iss": issuer,
        "aud": [audience],
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime.as_secs(),
        "kubernetes.io": {
            "namespace": subject.split(':').nth(2).unwrap_or_default(),
            "serviceaccount": {"name": subject.split(':').nth(3).unwrap_or_default()},
        },
    })
}
