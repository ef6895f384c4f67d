//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: the
//! verifier format `pg_authid.rolpassword` stores, and the server side of
//! the exchange.
//!
//! ```text
//!  verifier  SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>   (base64 parts)
//!
//!  client ── client-first  n,,n=,r=<cnonce> ─────────────► start()
//!         ◄─ server-first  r=<cnonce><snonce>,s=<salt>,i=<n>
//!         ── client-final  c=biws,r=<nonce>,p=<proof> ───► Exchange::finish()
//!         ◄─ server-final  v=<ServerSignature>            (proof checked against StoredKey)
//! ```
//!
//! Only the verifier is ever stored: it lets the server check a proof, not
//! log in (the proof needs ClientKey, which StoredKey = H(ClientKey) hides).
//! Channel binding (`-PLUS`) is not offered, so a client's `p=` header is
//! refused and `y`/`n` are accepted. Pure functions: the wire protocol's
//! startup handler keeps the exchange between messages
//! ([`Exchange::encode`]/[`Exchange::decode`]).

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

/// The iteration count `denorm auth hash-password` uses (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// What PostgreSQL keeps of a password: enough to check a SCRAM proof.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier(SCRAM-SHA-256, {} iterations, ***)", self.iterations)
    }
}

/// Why a verifier or a client message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>): {0}")]
    Verifier(String),
    #[error("malformed SCRAM message: {0}")]
    Message(String),
    #[error("channel binding is not supported by this server; connect with channel_binding=disable or prefer")]
    ChannelBinding,
    #[error("password authentication failed")]
    Proof,
}

impl Verifier {
    /// Parses PostgreSQL's `rolpassword` form.
    pub fn parse(text: &str) -> Result<Verifier, ScramError> {
        let bad = |why: &str| ScramError::Verifier(why.to_string());
        let rest = text.trim().strip_prefix("SCRAM-SHA-256$").ok_or_else(|| bad("no SCRAM-SHA-256$ prefix"))?;
        let (params, keys) = rest.split_once('$').ok_or_else(|| bad("no $ before the keys"))?;
        let (iterations, salt) = params.split_once(':').ok_or_else(|| bad("no : between iterations and salt"))?;
        let (stored, server) = keys.split_once(':').ok_or_else(|| bad("no : between StoredKey and ServerKey"))?;
        let iterations: u32 = iterations.parse().map_err(|_| bad("the iteration count is not a number"))?;
        if iterations == 0 {
            return Err(bad("the iteration count is 0"));
        }
        let decode = |part: &str, what: &str| STANDARD.decode(part).map_err(|_| bad(&format!("{what} is not base64")));
        let verifier = Verifier {
            iterations,
            salt: decode(salt, "the salt")?,
            stored_key: decode(stored, "StoredKey")?,
            server_key: decode(server, "ServerKey")?,
        };
        if verifier.stored_key.len() != 32 || verifier.server_key.len() != 32 {
            return Err(bad("StoredKey and ServerKey must be 32 bytes (SHA-256)"));
        }
        Ok(verifier)
    }

    /// The verifier of `password` with a fresh random 16-byte salt.
    pub fn generate(password: &str, iterations: u32) -> Verifier {
        let mut salt = [0u8; 16];
        // The system's random source failing is not recoverable here.
        if ring::rand::SystemRandom::new().fill(&mut salt).is_err() {
            salt.copy_from_slice(&fallback_random()[..16]);
        }
        Verifier::with_salt(password, &salt, iterations)
    }

    /// The verifier of `password` with `salt` (deterministic: tests, and
    /// checking a cleartext password).
    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Verifier {
        let salted = salted_password(password, salt, iterations.max(1));
        let client_key = hmac_sha256(&salted, b"Client Key");
        Verifier {
            iterations: iterations.max(1),
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this verifier was made from (HTTP
    /// Basic; costs `iterations` HMACs).
    pub fn matches(&self, password: &str) -> bool {
        let candidate = Verifier::with_salt(password, &self.salt, self.iterations);
        same(&candidate.stored_key, &self.stored_key)
    }

    /// PostgreSQL's text form, as `rolpassword` shows it.
    pub fn encode(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.stored_key),
            STANDARD.encode(&self.server_key)
        )
    }
}

/// An exchange between the server-first and the client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The GS2 header the client sent (`n,,` or `y,,`), echoed in `c=`.
    gs2_header: String,
    /// The combined nonce.
    nonce: String,
    /// `client-first-bare,server-first`: the start of the AuthMessage.
    first_messages: String,
}

/// Reads the client-first message and answers with the server-first one.
/// `server_nonce` is random in use (see [`random_nonce`]).
pub fn start(client_first: &str, verifier: &Verifier, server_nonce: &str) -> Result<(String, Exchange), ScramError> {
    let bad = |why: &str| ScramError::Message(why.to_string());
    let (cbind, rest) = client_first.split_once(',').ok_or_else(|| bad("no GS2 header"))?;
    match cbind {
        "n" | "y" => {}
        flag if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(bad("unknown channel-binding flag")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(|| bad("no authorization identity field"))?;
    if !authzid.is_empty() {
        return Err(bad("an authorization identity is not supported"));
    }
    let client_nonce = bare
        .split(',')
        .find_map(|attr| attr.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
        .ok_or_else(|| bad("no client nonce"))?;
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!("r={nonce},s={},i={}", STANDARD.encode(&verifier.salt), verifier.iterations);
    let exchange =
        Exchange { gs2_header: format!("{cbind},{authzid},"), nonce, first_messages: format!("{bare},{server_first}") };
    Ok((server_first, exchange))
}

impl Exchange {
    /// Checks the client-final message's proof; on success the
    /// server-final message (`v=…`) that proves the server knew the verifier.
    pub fn finish(&self, client_final: &str, verifier: &Verifier) -> Result<String, ScramError> {
        let bad = |why: &str| ScramError::Message(why.to_string());
        let (without_proof, proof) = client_final.rsplit_once(",p=").ok_or_else(|| bad("no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or_else(|| bad("no channel binding"))?;
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(|| bad("no nonce"))?;
        if binding != STANDARD.encode(&self.gs2_header) {
            return Err(bad("the channel binding does not match the GS2 header"));
        }
        if nonce != self.nonce {
            return Err(bad("the nonce does not match"));
        }
        let proof = STANDARD.decode(proof).map_err(|_| bad("the proof is not base64"))?;
        if proof.len() != verifier.stored_key.len() {
            return Err(ScramError::Proof);
        }
        let auth_message = format!("{},{without_proof}", self.first_messages);
        let client_signature = hmac_sha256(&verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !same(&sha256(&client_key), &verifier.stored_key) {
            return Err(ScramError::Proof);
        }
        let server_signature = hmac_sha256(&verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)))
    }

    /// One line of text, to keep between messages (a connection's metadata).
    pub fn encode(&self) -> String {
        format!("{}\n{}\n{}", self.gs2_header, self.nonce, self.first_messages)
    }

    pub fn decode(text: &str) -> Option<Exchange> {
        let mut parts = text.splitn(3, '\n');
        Some(Exchange {
            gs2_header: parts.next()?.to_string(),
            nonce: parts.next()?.to_string(),
            first_messages: parts.next()?.to_string(),
        })
    }
}

/// 18 random bytes, base64: the server's part of the nonce.
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 18];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        bytes.copy_from_slice(&fallback_random()[..18]);
    }
    STANDARD.encode(bytes)
}

/// A stand-in verifier for a user that does not exist, so that the exchange
/// looks the same until the proof fails (as PostgreSQL's mock
/// authentication does): its salt is derived from the name and a
/// per-process secret.
pub fn mock_verifier(user: &str) -> Verifier {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(fallback_random);
    let salt = hmac_sha256(secret, user.as_bytes());
    Verifier {
        iterations: DEFAULT_ITERATIONS,
        salt: salt[..16].to_vec(),
        stored_key: hmac_sha256(secret, b"stored"),
        server_key: hmac_sha256(secret, b"server"),
    }
}

/// Random bytes when the system source is unavailable at the call site:
/// a second attempt, then the clock (never used for keys that protect data
/// at rest; only salts and nonces).
fn fallback_random() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = digest::digest(&digest::SHA256, &now.as_nanos().to_le_bytes()).as_ref().try_into().unwrap_or([7; 32]);
    }
    bytes
}

/// `Hi(Normalize(password), salt, i)`; SASLprep as PostgreSQL applies it
/// (a password it cannot normalize is used as given).
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let normalized = stringprep::saslprep(password).unwrap_or(std::borrow::Cow::Borrowed(password));
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, normalized.as_bytes(), &mut out);
    out
}

/// Equality that takes the same time wherever the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message).as_ref().to_vec()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_verifier() -> Verifier {
        Verifier::with_salt("pencil", &STANDARD.decode(SALT).unwrap(), 4096)
    }

    #[test]
    fn the_rfc_7677_exchange() {
        let verifier = rfc_verifier();
        let (server_first, exchange) = start(CLIENT_FIRST, &verifier, SERVER_NONCE).unwrap();
        assert_eq!(server_first, SERVER_FIRST);
        let kept = Exchange::decode(&exchange.encode()).unwrap();
        assert_eq!(kept, exchange);
        assert_eq!(kept.finish(CLIENT_FINAL, &verifier).unwrap(), SERVER_FINAL);
    }

    #[test]
    fn a_wrong_password_or_a_tampered_message_fails() {
        let wrong = Verifier::with_salt("pencils", &STANDARD.decode(SALT).unwrap(), 4096);
        let (_, exchange) = start(CLIENT_FIRST, &wrong, SERVER_NONCE).unwrap();
        assert_eq!(exchange.finish(CLIENT_FINAL, &wrong), Err(ScramError::Proof));
        let verifier = rfc_verifier();
        let (_, exchange) = start(CLIENT_FIRST, &verifier, "other-nonce").unwrap();
        assert!(matches!(exchange.finish(CLIENT_FINAL, &verifier), Err(ScramError::Message(_))));
        let (_, exchange) = start(CLIENT_FIRST, &verifier, SERVER_NONCE).unwrap();
        let flipped = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        assert_eq!(exchange.finish(&flipped, &verifier), Err(ScramError::Proof));
        assert_eq!(start("p=tls-server-end-point,,n=,r=abc", &verifier, "x"), Err(ScramError::ChannelBinding));
        assert!(start("n,,n=user", &verifier, "x").is_err());
        assert!(start("", &verifier, "x").is_err());
    }

    #[test]
    fn verifiers_round_trip_and_check_passwords() {
        let verifier = rfc_verifier();
        assert_eq!(Verifier::parse(&verifier.encode()).unwrap(), verifier);
        assert!(verifier.matches("pencil"));
        assert!(!verifier.matches("pencil "));
        let fresh = Verifier::generate("s3cret", 4096);
        assert!(fresh.matches("s3cret"));
        assert_ne!(fresh.salt, Verifier::generate("s3cret", 4096).salt, "salts are random");
        assert!(!format!("{fresh:?}").contains(&STANDARD.encode(&fresh.salt)));
        for bad in [
            "",
            "md5abc",
            "SCRAM-SHA-256$x:YQ==$YQ==:YQ==",
            "SCRAM-SHA-256$4096:YQ==$YQ==:YQ==",
            "SCRAM-SHA-256$0:YQ==$",
        ] {
            assert!(Verifier::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_users_get_a_stable_mock() {
        assert_eq!(mock_verifier("eve"), mock_verifier("eve"));
        assert_ne!(mock_verifier("eve").salt, mock_verifier("mallory").salt);
    }
}
