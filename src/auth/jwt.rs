use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use super::dev;
use crate::config::Settings;
use crate::domain::UserId;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// The latest `exp` kept: 9999-12-31T23:59:59Z, the last second RFC 3339 can write. A
/// token may name any `exp`; a later one lives as long as this, and every time derived
/// from it (the socket's expiry, `expiresAt`) stays representable.
pub const MAX_EXPIRES_AT: u64 = 253_402_300_799;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("MISSIVE_JWT_SECRET must be at least 32 bytes (got {0})")]
    ShortSecret(usize),
    #[error("set only one of MISSIVE_JWT_SECRET and MISSIVE_JWT_PUBLIC_KEY")]
    Ambiguous,
    #[error("cannot read the JWT public key {0}: {1}")]
    KeyFile(PathBuf, std::io::Error),
    #[error("the JWT public key is not a {0} key in PEM form: {1}")]
    BadKey(String, jsonwebtoken::errors::Error),
    #[error("unsupported MISSIVE_JWT_ALGORITHM {0:?}: use EdDSA, ES256 or RS256")]
    Algorithm(String),
    #[error("the key is none of EdDSA, ES256, RS256; set MISSIVE_JWT_ALGORITHM")]
    UnknownKey,
    #[error("dev auth secret in {0}: {1}")]
    DevSecret(PathBuf, std::io::Error),
    #[error("this server verifies tokens with a public key; mint them with your identity provider")]
    CannotMint,
    #[error("cannot sign a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// How tokens are verified (and, with a shared secret, minted).
pub struct Auth {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    description: String,
    dev: bool,
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: UserId,
    /// `exp`, in seconds since the Unix epoch.
    pub expires_at: u64,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    exp: u64,
}

#[derive(Serialize)]
struct MintClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

impl Auth {
    pub fn from_settings(s: &Settings) -> Result<Self, AuthSetupError> {
        let (decoding, encoding, alg, description, dev) = match (&s.jwt_secret, &s.jwt_public_key) {
            (Some(_), Some(_)) => return Err(AuthSetupError::Ambiguous),
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(AuthSetupError::ShortSecret(secret.len()));
                }
                let (d, e) = hmac_keys(secret.as_bytes());
                (d, Some(e), Algorithm::HS256, "HS256 shared secret".to_owned(), false)
            }
            (None, Some(path)) => {
                let (d, alg) = public_key(path, s.jwt_algorithm.as_deref())?;
                (d, None, alg, format!("{alg:?} public key {}", path.display()), false)
            }
            (None, None) => {
                let path = s.data_dir.join(dev::SECRET_FILE);
                let secret = dev::load_or_create(&path).map_err(|e| AuthSetupError::DevSecret(path.clone(), e))?;
                let (d, e) = hmac_keys(secret.as_bytes());
                (d, Some(e), Algorithm::HS256, format!("dev (HS256, secret in {})", path.display()), true)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not just right when present.
        let mut required = vec!["exp"];
        match &s.jwt_issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &s.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            decoding,
            encoding,
            validation,
            issuer: s.jwt_issuer.clone(),
            audience: s.jwt_audience.clone(),
            description,
            dev,
        })
    }

    /// Checks the header (no `crit`), signature, algorithm, `exp`, `nbf` and the
    /// configured `iss` / `aud`; the user is `sub`, or `userId` when `sub` is absent. The
    /// error is a fixed sentence for the client: the library's own text stays in the logs.
    pub fn verify(&self, token: &str) -> Result<Verified, String> {
        let header = decode_header(token).map_err(|e| rejected(&e))?;
        // RFC 7515 §4.1.11: a recipient that does not understand every listed extension
        // must refuse the token, and we understand none.
        if header.crit.is_some() {
            return Err("invalid token: critical header extensions (crit) are not supported".to_owned());
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| rejected(&e))?;
        let raw = data
            .claims
            .sub
            .or(data.claims.user_id)
            .ok_or_else(|| "invalid token: no sub or userId claim".to_owned())?;
        let user = UserId::parse(&raw)
            .map_err(|_| "invalid token: the subject is not 1-128 characters of [A-Za-z0-9._@:-]".to_owned())?;
        Ok(Verified { user, expires_at: data.claims.exp.min(MAX_EXPIRES_AT) })
    }

    /// Signs a token for `user`, valid for `ttl`. Only with a shared secret.
    pub fn mint(&self, user: &UserId, ttl: Duration) -> Result<String, AuthSetupError> {
        let key = self.encoding.as_ref().ok_or(AuthSetupError::CannotMint)?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = MintClaims {
            sub: user.as_str(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()).min(MAX_EXPIRES_AT),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, key).map_err(AuthSetupError::Sign)
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    pub fn is_dev(&self) -> bool {
        self.dev
    }
}

/// What a client is told about a refused token.
fn rejected(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    tracing::debug!(error = %e, "token refused");
    match e.kind() {
        ErrorKind::ExpiredSignature => "invalid token: expired".into(),
        ErrorKind::ImmatureSignature => "invalid token: not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "invalid token: bad signature".into(),
        ErrorKind::InvalidAlgorithm => "invalid token: algorithm not accepted".into(),
        ErrorKind::InvalidIssuer => "invalid token: issuer not accepted".into(),
        ErrorKind::InvalidAudience => "invalid token: audience not accepted".into(),
        // The name is one of ours (`exp`, `iss`, `aud`), never the client's text.
        ErrorKind::MissingRequiredClaim(claim) if ["exp", "iss", "aud"].contains(&claim.as_str()) => {
            format!("invalid token: no {claim} claim")
        }
        _ => "invalid token: malformed".into(),
    }
}

fn hmac_keys(secret: &[u8]) -> (DecodingKey, EncodingKey) {
    (DecodingKey::from_secret(secret), EncodingKey::from_secret(secret))
}

fn public_key(path: &PathBuf, pinned: Option<&str>) -> Result<(DecodingKey, Algorithm), AuthSetupError> {
    let pem = std::fs::read(path).map_err(|e| AuthSetupError::KeyFile(path.clone(), e))?;
    let load = |alg: Algorithm| {
        let key = match alg {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
            _ => DecodingKey::from_rsa_pem(&pem),
        };
        key.map(|k| (k, alg)).map_err(|e| AuthSetupError::BadKey(format!("{alg:?}"), e))
    };
    match pinned {
        Some("EdDSA") => load(Algorithm::EdDSA),
        Some("ES256") => load(Algorithm::ES256),
        Some("RS256") => load(Algorithm::RS256),
        Some(other) => Err(AuthSetupError::Algorithm(other.to_owned())),
        None => [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
            .into_iter()
            .find_map(|alg| load(alg).ok())
            .ok_or(AuthSetupError::UnknownKey),
    }
}
