//! Client identities: an Ed25519 key pair per device (`fedser keygen`), the server's list of
//! enrolled public keys (one hex key a line; a client's id is its line among the keys), and
//! the signed, timestamped, single-use proof a client attaches to every request. The server
//! refuses a request whose key is not enrolled, whose signature does not cover exactly what
//! was sent, whose timestamp is stale or whose nonce it has seen before (a replay).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::proto::Auth;

/// File names inside an identity folder.
pub const KEY_FILE: &str = "identity.key";
pub const PUB_FILE: &str = "identity.pub";

/// Why an identity or a request's proof was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("the request carries no proof of identity")]
    Missing,
    #[error("malformed proof of identity: {0}")]
    Malformed(String),
    #[error("key {0} is not enrolled")]
    Unknown(String),
    #[error("the signature does not match the request")]
    BadSignature,
    #[error("stale request: its timestamp is {0} s away from the server's clock")]
    Stale(i64),
    #[error("replayed request (nonce seen before)")]
    Replay,
    #[error("the key is enrolled as client {enrolled}, not as client {claimed}")]
    WrongClient { enrolled: usize, claimed: u64 },
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> AuthError {
    AuthError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A device's key pair.
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, AuthError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| AuthError::Malformed(e.to_string()))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key whose secret is `secret` (deterministic: for keys derived elsewhere, such as
    /// a load run's, never for a real device's key).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// The public key as hex (what the server's enrolled file lists).
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Writes `DIR/identity.key` (mode 0600, the secret) and `DIR/identity.pub`; refuses to
    /// overwrite an existing key.
    pub fn save(&self, dir: &Path) -> Result<(), AuthError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let key_path = dir.join(KEY_FILE);
        if key_path.exists() {
            return Err(file_err(
                &key_path,
                "already exists; a key is never overwritten (choose another folder)",
            ));
        }
        write_private(&key_path, hex::encode(self.key.to_bytes()).as_bytes())?;
        let pub_path = dir.join(PUB_FILE);
        std::fs::write(&pub_path, format!("{}\n", self.public_hex()))
            .map_err(|e| file_err(&pub_path, e))
    }

    /// Reads `DIR/identity.key`.
    pub fn load(dir: &Path) -> Result<Self, AuthError> {
        let path = dir.join(KEY_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| file_err(&path, "not a 32-byte hex key"))?;
        Ok(Self {
            key: SigningKey::from_bytes(&bytes),
        })
    }

    /// The proof for one request: `method` and `fields` name what is being asked, `payload`
    /// what is being sent.
    pub fn sign(&self, method: &str, fields: &str, payload: &[u8]) -> Auth {
        let timestamp_ms = now_ms();
        let mut nonce = [0u8; 16];
        // A failed random source leaves a zero nonce, which the server refuses as a replay
        // the second time: never a silent reuse.
        let _ = getrandom::fill(&mut nonce);
        let text = signing_text(method, fields, payload, timestamp_ms, &nonce);
        Auth {
            public_key: self.key.verifying_key().as_bytes().to_vec(),
            timestamp_ms,
            nonce: nonce.to_vec(),
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    f.write_all(bytes).map_err(|e| file_err(path, e))?;
    f.sync_all().map_err(|e| file_err(path, e))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    std::fs::write(path, bytes).map_err(|e| file_err(path, e))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a signature covers: the protocol, the method, its fields, the payload's SHA-256, the
/// time and the nonce.
fn signing_text(method: &str, fields: &str, payload: &[u8], ts: u64, nonce: &[u8]) -> String {
    format!(
        "fedser/1|{method}|{fields}|{}|{ts}|{}",
        hex::encode(Sha256::digest(payload)),
        hex::encode(nonce)
    )
}

/// The server's side: enrolled keys and the nonces seen recently.
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    max_skew: Duration,
    seen: HashMap<Vec<u8>, u64>,
}

impl Verifier {
    /// Reads the enrolled file: one hex public key a line; blank lines and `#` comments are
    /// skipped; a client's id is the position of its key among the keys.
    pub fn from_file(path: &Path, max_skew: Duration) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let key = hex::decode(line)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                .ok_or_else(|| {
                    file_err(path, format!("line {}: not an Ed25519 public key", i + 1))
                })?;
            if keys.contains(&key) {
                return Err(file_err(
                    path,
                    format!("line {}: key enrolled twice", i + 1),
                ));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(file_err(path, "no enrolled key"));
        }
        Ok(Self::new(keys, max_skew))
    }

    pub fn new(keys: Vec<VerifyingKey>, max_skew: Duration) -> Self {
        Self {
            keys,
            max_skew,
            seen: HashMap::new(),
        }
    }

    /// Enrolled clients.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a request's proof and returns the id of the client it proves; `claimed` is the
    /// id the request says it comes from (`None` before the client knows it).
    pub fn verify(
        &mut self,
        auth: Option<&Auth>,
        method: &str,
        fields: &str,
        payload: &[u8],
        claimed: Option<u64>,
    ) -> Result<usize, AuthError> {
        let auth = auth.ok_or(AuthError::Missing)?;
        let key_bytes: [u8; 32] = auth
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| AuthError::Malformed("public key is not 32 bytes".into()))?;
        let id = self
            .keys
            .iter()
            .position(|k| k.as_bytes() == &key_bytes)
            .ok_or_else(|| AuthError::Unknown(hex::encode(key_bytes)))?;
        let signature = Signature::from_slice(&auth.signature)
            .map_err(|_| AuthError::Malformed("signature is not 64 bytes".into()))?;
        if auth.nonce.len() != 16 {
            return Err(AuthError::Malformed("nonce is not 16 bytes".into()));
        }
        let text = signing_text(method, fields, payload, auth.timestamp_ms, &auth.nonce);
        self.keys[id]
            .verify(text.as_bytes(), &signature)
            .map_err(|_| AuthError::BadSignature)?;
        let now = now_ms();
        // In milliseconds: a request is accepted only within max_skew of its timestamp, so a
        // replay can arrive at most 2 × max_skew after the original; nonces are remembered
        // that long, which keeps the memory bounded and leaves no window.
        let skew_ms = auth.timestamp_ms as i64 - now as i64;
        if skew_ms.unsigned_abs() > self.max_skew.as_millis() as u64 {
            return Err(AuthError::Stale(skew_ms / 1000));
        }
        let horizon = 2 * self.max_skew.as_millis() as u64;
        self.seen
            .retain(|_, &mut t| now.saturating_sub(t) <= horizon);
        if self.seen.insert(auth.nonce.clone(), now).is_some() {
            return Err(AuthError::Replay);
        }
        if let Some(c) = claimed
            && c != id as u64
        {
            return Err(AuthError::WrongClient {
                enrolled: id,
                claimed: c,
            });
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(ids: &[&Identity]) -> Verifier {
        let keys = ids.iter().map(|i| i.key.verifying_key()).collect();
        Verifier::new(keys, Duration::from_secs(60))
    }

    #[test]
    fn a_signed_request_proves_its_client_once_and_only_as_sent() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let mut v = verifier(&[&a, &b]);
        let auth = b.sign("submit", "round=3", b"update");
        assert_eq!(
            v.verify(Some(&auth), "submit", "round=3", b"update", Some(1))
                .unwrap(),
            1
        );
        // The same proof again is a replay.
        let again = v.verify(Some(&auth), "submit", "round=3", b"update", Some(1));
        assert!(matches!(again, Err(AuthError::Replay)), "{again:?}");
        // A proof for other content, another round or another method does not verify.
        let auth = b.sign("submit", "round=3", b"update");
        for (m, f, p) in [
            ("submit", "round=3", &b"tampered"[..]),
            ("submit", "round=4", b"update"),
            ("hello", "round=3", b"update"),
        ] {
            assert!(matches!(
                v.verify(Some(&auth), m, f, p, None),
                Err(AuthError::BadSignature)
            ));
        }
        // Claiming another client's id is refused.
        let auth = a.sign("hello", "", b"");
        assert!(matches!(
            v.verify(Some(&auth), "hello", "", b"", Some(1)),
            Err(AuthError::WrongClient {
                enrolled: 0,
                claimed: 1
            })
        ));
        // An unknown key, a missing proof, a stale one.
        let stranger = Identity::generate().unwrap();
        let auth = stranger.sign("hello", "", b"");
        assert!(matches!(
            v.verify(Some(&auth), "hello", "", b"", None),
            Err(AuthError::Unknown(_))
        ));
        assert!(matches!(
            v.verify(None, "hello", "", b"", None),
            Err(AuthError::Missing)
        ));
        let mut old = a.sign("hello", "", b"");
        old.timestamp_ms -= 3_600_000;
        let text = signing_text("hello", "", b"", old.timestamp_ms, &old.nonce);
        old.signature = a.key.sign(text.as_bytes()).to_bytes().to_vec();
        assert!(matches!(
            v.verify(Some(&old), "hello", "", b"", None),
            Err(AuthError::Stale(_))
        ));
    }

    #[test]
    fn keys_round_trip_through_files_and_bad_enrolment_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::generate().unwrap();
        id.save(dir.path()).unwrap();
        assert!(id.save(dir.path()).is_err(), "a key is never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = Identity::load(dir.path()).unwrap();
        assert_eq!(back.public_hex(), id.public_hex());
        let enrolled = dir.path().join("enrolled.txt");
        std::fs::write(&enrolled, format!("# devices\n{}\n", id.public_hex())).unwrap();
        let v = Verifier::from_file(&enrolled, Duration::from_secs(60)).unwrap();
        assert_eq!(v.len(), 1);
        std::fs::write(&enrolled, "not-a-key\n").unwrap();
        let err = Verifier::from_file(&enrolled, Duration::from_secs(60))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("enrolled.txt") && err.contains("line 1"),
            "{err}"
        );
        std::fs::write(&enrolled, format!("{0}\n{0}\n", id.public_hex())).unwrap();
        assert!(Verifier::from_file(&enrolled, Duration::from_secs(60)).is_err());
    }
}
