//! The primitives of secure aggregation, each from a well-kept crate: X25519 key agreement
//! (`x25519-dalek`), HKDF-SHA-256 (`hkdf`), mask expansion by the ChaCha20 keystream
//! (`chacha20`), authenticated encryption of shares with ChaCha20-Poly1305
//! (`chacha20poly1305`), and Shamir sharing over the Curve25519 scalar field (`vsss-rs`).
//! Secrets are field elements, so the same 32 bytes are a sharable scalar and an X25519
//! secret key.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use vsss_rs::{
    DefaultShare, IdentifierPrimeField, ParticipantIdGeneratorType, ReadableShareSet, shamir,
};
use x25519_dalek::{PublicKey, StaticSecret};

use super::SecAggError;

type Share = DefaultShare<IdentifierPrimeField<Scalar>, IdentifierPrimeField<Scalar>>;

const SALT: &[u8] = b"fedser-secagg-v1";

/// A uniformly random secret (a field element; also an X25519 secret key and a mask seed).
pub fn random_secret(rng: &mut (impl RngCore + CryptoRng)) -> Scalar {
    Scalar::random(rng)
}

/// The X25519 public key of `secret`.
pub fn public_key(secret: &Scalar) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(secret.to_bytes())).to_bytes()
}

/// The X25519 shared secret of `secret` and `peer`; refuses a low-order peer key (an all-zero
/// result), which would make the agreed key public.
pub fn agree(secret: &Scalar, peer: &[u8; 32]) -> Result<[u8; 32], SecAggError> {
    let shared = StaticSecret::from(secret.to_bytes()).diffie_hellman(&PublicKey::from(*peer));
    if !shared.was_contributory() {
        return Err(SecAggError::Crypto(
            "a peer's public key is of low order (the agreed key would be public)".into(),
        ));
    }
    Ok(shared.to_bytes())
}

/// A 32-byte key derived from `ikm` for one purpose (HKDF-SHA-256, `info` names the purpose).
pub fn derive(ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(SALT), ikm)
        .expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    out
}

/// `len` pseudo-random words from `seed`: the ChaCha20 keystream (zero nonce; every seed is
/// used for one mask only), read as little-endian u32.
pub fn expand_mask(seed: &[u8; 32], len: usize) -> Vec<u32> {
    let mut bytes = vec![0u8; len * 4];
    let mut cipher = ChaCha20::new(seed.into(), &[0u8; 12].into());
    cipher.apply_keystream(&mut bytes);
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// SHA-256 of a secret (a commitment that reveals nothing about a uniformly random secret).
pub fn commit(secret: &Scalar) -> [u8; 32] {
    Sha256::digest(secret.to_bytes()).into()
}

/// Encrypts `plaintext` under `key`, bound to `aad`; output: nonce ‖ ciphertext ‖ tag.
pub fn seal(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let cipher = ChaCha20Poly1305::new(key.into());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any message below 256 GiB");
    let mut out = nonce.to_vec();
    out.extend(ct);
    out
}

/// Decrypts what [`seal`] wrote; fails on a wrong key, other associated data or any change.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SecAggError> {
    if sealed.len() < 12 + 16 {
        return Err(SecAggError::Crypto(format!(
            "a ciphertext of {} bytes is too short",
            sealed.len()
        )));
    }
    let cipher = ChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[..12]),
            Payload {
                msg: &sealed[12..],
                aad,
            },
        )
        .map_err(|_| {
            SecAggError::Crypto("a share does not decrypt (wrong key, sender or data)".into())
        })
}

/// The Shamir x-coordinate of a client (never zero).
fn point(client: u64) -> IdentifierPrimeField<Scalar> {
    IdentifierPrimeField(Scalar::from(client) + Scalar::ONE)
}

/// Shares of `secret` for `holders` (client ids), any `threshold` of which reconstruct it.
pub fn split(
    secret: &Scalar,
    threshold: usize,
    holders: &[u64],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<(u64, [u8; 32])>, SecAggError> {
    let ids: Vec<_> = holders.iter().map(|&h| point(h)).collect();
    let gens = [ParticipantIdGeneratorType::list(&ids)];
    let shares = shamir::split_secret_with_participant_generator::<Share>(
        threshold,
        holders.len(),
        &IdentifierPrimeField(*secret),
        rng,
        &gens,
    )
    .map_err(|e| SecAggError::Crypto(format!("Shamir split: {e:?}")))?;
    Ok(holders
        .iter()
        .zip(shares)
        .map(|(&h, s)| (h, s.value.0.to_bytes()))
        .collect())
}

/// The secret from shares `(holder, share)`; the caller ensures there are at least the
/// threshold of them (fewer interpolate a wrong value, which commitments then catch).
pub fn combine(shares: &[(u64, [u8; 32])]) -> Result<Scalar, SecAggError> {
    let set: Vec<Share> = shares
        .iter()
        .map(|(h, bytes)| {
            Option::<Scalar>::from(Scalar::from_canonical_bytes(*bytes))
                .map(|v| Share {
                    identifier: point(*h),
                    value: IdentifierPrimeField(v),
                })
                .ok_or_else(|| {
                    SecAggError::Crypto(format!("share from client {h} is not a field element"))
                })
        })
        .collect::<Result<_, _>>()?;
    set.combine()
        .map(|v| v.0)
        .map_err(|e| SecAggError::Crypto(format!("Shamir combine: {e:?}")))
}

/// Parses 32 bytes as a canonical field element.
pub fn scalar(bytes: &[u8]) -> Option<Scalar> {
    let arr: [u8; 32] = bytes.try_into().ok()?;
    Scalar::from_canonical_bytes(arr).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn shamir_needs_threshold_shares_and_any_threshold_suffice() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let secret = random_secret(&mut rng);
        let holders = [0u64, 4, 7, 9, 20];
        let shares = split(&secret, 3, &holders, &mut rng).unwrap();
        assert_eq!(combine(&shares[..3]).unwrap(), secret);
        assert_eq!(combine(&shares[2..]).unwrap(), secret);
        assert_eq!(combine(&shares).unwrap(), secret);
        assert_ne!(
            combine(&shares[..2]).unwrap(),
            secret,
            "two of a 3-threshold"
        );
    }

    #[test]
    fn agreement_is_symmetric_and_sealed_shares_resist_tampering() {
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let (a, b) = (random_secret(&mut rng), random_secret(&mut rng));
        let ab = agree(&a, &public_key(&b)).unwrap();
        assert_eq!(ab, agree(&b, &public_key(&a)).unwrap());
        assert!(agree(&a, &[0u8; 32]).is_err(), "low-order key refused");
        let key = derive(&ab, b"test");
        let sealed = seal(&key, b"aad", b"share", &mut rng);
        assert_eq!(open(&key, b"aad", &sealed).unwrap(), b"share");
        assert!(open(&key, b"other", &sealed).is_err());
        let mut bad = sealed.clone();
        bad[14] ^= 1;
        assert!(open(&key, b"aad", &bad).is_err());
        assert!(open(&derive(&ab, b"other"), b"aad", &sealed).is_err());
    }

    #[test]
    fn masks_are_deterministic_per_seed_and_look_uniform() {
        let m = expand_mask(&[3; 32], 100_000);
        assert_eq!(m, expand_mask(&[3; 32], 100_000));
        assert_ne!(m[..8], expand_mask(&[4; 32], 8)[..]);
        // Each of the 32 bits is set about half the time.
        for bit in 0..32 {
            let ones = m.iter().filter(|w| *w >> bit & 1 == 1).count() as f64;
            assert!((ones / 1e5 - 0.5).abs() < 0.01, "bit {bit}: {ones}");
        }
    }
}
