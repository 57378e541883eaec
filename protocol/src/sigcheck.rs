//! The one signature rule, and checking many signatures at once under it.
//!
//! Every node must reach the same verdict on every item, whether it checks
//! the item alone (gossip) or in a batch of hundreds (sync, import). Plain
//! Ed25519 does not promise that: RFC 8032 allows two verification
//! equations, and batch verification with the cofactorless one accepts or
//! refuses some crafted signatures at random. So the rule is:
//!
//! 1. the key and the signature's `R` are canonical encodings of curve
//!    points that are not of small order, and `s` is canonical (`s < ℓ`);
//! 2. the cofactored equation `[8][s]B = [8]R + [8][k]A` holds (ZIP 215,
//!    as implemented by `ed25519-zebra`).
//!
//! Rule 1 is a byte comparison (no curve arithmetic) and refuses keys
//! anybody could forge for and the encodings that would give one signature
//! several spellings. Under rule 2 a batch passes exactly when every member
//! passes on its own (but with probability 2⁻¹²⁸), so a batch that fails
//! is split until the bad members are found, and the verdicts are the same
//! as one by one. Every honestly made Ed25519 signature passes both rules.

use ed25519_zebra::batch;
use ed25519_zebra::{VerificationKey, VerificationKeyBytes};
use rand::{CryptoRng, RngCore};

use crate::keys::{PublicKey, Signature};

/// The canonical encodings of the eight points of small order (the
/// identity, the point of order 2, two of order 4 and four of order 8). A
/// key or `R` equal to one of them is refused: signatures "by" such a key
/// can be made without any secret.
const SMALL_ORDER: [[u8; 32]; 8] = [
    // identity (0, 1)
    hex32("0100000000000000000000000000000000000000000000000000000000000000"),
    // (0, -1), order 2
    hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    // order 4
    hex32("0000000000000000000000000000000000000000000000000000000000000000"),
    hex32("0000000000000000000000000000000000000000000000000000000000000080"),
    // order 8
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    hex32("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    hex32("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
];

/// Below this many signatures a batch saves nothing; smaller groups left by
/// splitting a failed batch are checked one by one.
const SPLIT_BELOW: usize = 4;

// Evaluated at compile time only: a bad index fails the build, not a run.
#[allow(clippy::indexing_slicing)]
const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Whether `bytes` is the one canonical encoding of its point: the `y`
/// coordinate is below p = 2²⁵⁵ − 19, and the sign bit of `x` is not set
/// when `x` is 0 (the points with y = ±1).
fn is_canonical(bytes: &[u8; 32]) -> bool {
    let sign = bytes[31] & 0x80 != 0;
    let top = bytes[31] & 0x7f;
    let middle_all_ff = bytes[1..31].iter().all(|&b| b == 0xff);
    let middle_all_00 = bytes[1..31].iter().all(|&b| b == 0);
    // y ≥ p: 0x7f ff … ff (≥ ed).
    if top == 0x7f && middle_all_ff && bytes[0] >= 0xed {
        return false;
    }
    // y = 1 or y = p − 1 have x = 0, whose sign bit must be clear.
    let y_is_one = bytes[0] == 1 && middle_all_00 && top == 0;
    let y_is_minus_one = bytes[0] == 0xec && middle_all_ff && top == 0x7f;
    !(sign && (y_is_one || y_is_minus_one))
}

/// Rule 1: canonical, not of small order.
fn is_acceptable_point(bytes: &[u8; 32]) -> bool {
    is_canonical(bytes) && !SMALL_ORDER.contains(bytes)
}

/// Whether `key` may sign at all (rule 1 for the key): a key that fails it
/// can never have a valid signature.
pub fn is_acceptable_key(key: &PublicKey) -> bool {
    is_acceptable_point(key.as_bytes())
}

fn r_bytes(signature: &Signature) -> [u8; 32] {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature.0[..32]);
    r
}

/// Rule 1 for a key and a signature (`s < ℓ` is checked with rule 2).
fn passes_encoding_rules(key: &PublicKey, signature: &Signature) -> bool {
    is_acceptable_key(key) && is_acceptable_point(&r_bytes(signature))
}

/// Checks one signature under the rule described in the module docs.
pub fn verify_one(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    if !passes_encoding_rules(key, signature) {
        return false;
    }
    let Ok(vk) = VerificationKey::try_from(key.0) else {
        return false;
    };
    let sig = ed25519_zebra::Signature::from_bytes(&signature.0);
    vk.verify(&sig, message).is_ok()
}

/// One signature to check: who signed, the exact signed bytes, the
/// signature.
#[derive(Clone, Copy, Debug)]
pub struct SignatureCheck<'a> {
    /// The key that must have signed.
    pub key: PublicKey,
    /// The signed bytes.
    pub message: &'a [u8],
    /// The signature.
    pub signature: Signature,
}

/// Checks many signatures at once; `result[i]` is exactly what
/// [`verify_one`] says of `checks[i]`. `rng` draws the batch's random
/// weights (the caller owns randomness: this crate does no I/O).
pub fn verify_many<R: RngCore + CryptoRng>(
    checks: &[SignatureCheck<'_>],
    rng: &mut R,
) -> Vec<bool> {
    let mut verdicts = vec![false; checks.len()];
    let candidates: Vec<(usize, batch::Item)> = checks
        .iter()
        .enumerate()
        .filter(|(_, c)| passes_encoding_rules(&c.key, &c.signature))
        .map(|(i, c)| {
            let item = batch::Item::from((
                VerificationKeyBytes::from(c.key.0),
                ed25519_zebra::Signature::from_bytes(&c.signature.0),
                c.message,
            ));
            (i, item)
        })
        .collect();
    check_group(&candidates, &mut verdicts, rng);
    verdicts
}

/// Marks every member of `group` that passes: the whole group in one batch
/// when it passes, otherwise each half on its own.
fn check_group<R: RngCore + CryptoRng>(
    group: &[(usize, batch::Item)],
    verdicts: &mut [bool],
    rng: &mut R,
) {
    if group.is_empty() {
        return;
    }
    if group.len() < SPLIT_BELOW {
        for (i, item) in group {
            if let Some(v) = verdicts.get_mut(*i) {
                *v = item.clone().verify_single().is_ok();
            }
        }
        return;
    }
    let mut verifier = batch::Verifier::new();
    for (_, item) in group {
        verifier.queue(item.clone());
    }
    if verifier.verify(&mut *rng).is_ok() {
        for (i, _) in group {
            if let Some(v) = verdicts.get_mut(*i) {
                *v = true;
            }
        }
        return;
    }
    let (left, right) = group.split_at(group.len() / 2);
    check_group(left, verdicts, rng);
    check_group(right, verdicts, rng);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use rand::SeedableRng;

    #[test]
    fn small_order_table_is_exactly_the_eight_torsion_points() {
        let mut seen = std::collections::BTreeSet::new();
        for bytes in SMALL_ORDER {
            let p = CompressedEdwardsY(bytes).decompress().expect("a point");
            assert!(p.is_small_order(), "{bytes:02x?}");
            assert_eq!(p.compress().to_bytes(), bytes, "canonical");
            seen.insert(bytes);
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn canonical_encodings() {
        let mut y_is_p = [0xffu8; 32];
        y_is_p[0] = 0xed;
        y_is_p[31] = 0x7f;
        assert!(!is_canonical(&y_is_p));
        let mut y_below_p = y_is_p;
        y_below_p[0] = 0xeb;
        assert!(is_canonical(&y_below_p));
        let mut minus_zero = SMALL_ORDER[0];
        minus_zero[31] |= 0x80;
        assert!(!is_canonical(&minus_zero));
        let key = SecretKey::generate().public();
        assert!(is_acceptable_key(&key));
    }

    fn signed(n: usize) -> (Vec<PublicKey>, Vec<Vec<u8>>, Vec<Signature>) {
        let keys: Vec<SecretKey> = (0..5).map(|_| SecretKey::generate()).collect();
        let mut pubs = Vec::new();
        let mut msgs = Vec::new();
        let mut sigs = Vec::new();
        for i in 0..n {
            let k = &keys[i % keys.len()];
            let m = format!("message {i}").into_bytes();
            sigs.push(k.sign(&m));
            pubs.push(k.public());
            msgs.push(m);
        }
        (pubs, msgs, sigs)
    }

    fn checks<'a>(
        pubs: &[PublicKey],
        msgs: &'a [Vec<u8>],
        sigs: &[Signature],
    ) -> Vec<SignatureCheck<'a>> {
        (0..pubs.len())
            .map(|i| SignatureCheck {
                key: pubs[i],
                message: &msgs[i],
                signature: sigs[i],
            })
            .collect()
    }

    #[test]
    fn batch_verdicts_equal_single_verdicts() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (pubs, mut msgs, mut sigs) = signed(100);
        // Break a few in different ways.
        msgs[3].push(b'!');
        sigs[17].0[40] ^= 1;
        sigs[55].0[63] |= 0xf0; // s ≥ ℓ
        sigs[80].0[..32].copy_from_slice(&SMALL_ORDER[5]);
        let checks = checks(&pubs, &msgs, &sigs);
        let many = verify_many(&checks, &mut rng);
        let one: Vec<bool> = checks
            .iter()
            .map(|c| verify_one(&c.key, c.message, &c.signature))
            .collect();
        assert_eq!(many, one);
        let bad: Vec<usize> = (0..100).filter(|&i| !many[i]).collect();
        assert_eq!(bad, vec![3, 17, 55, 80]);
    }

    #[test]
    fn small_order_key_is_refused_even_with_a_valid_equation() {
        // With A = identity, R = [s]B satisfies the equation for any message.
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use curve25519_dalek::scalar::Scalar;
        let s = Scalar::from(12345u64);
        let r = (B * s).compress().to_bytes();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice(&s.to_bytes());
        let key = PublicKey(SMALL_ORDER[0]);
        let vk = VerificationKey::try_from(key.0).expect("a point");
        assert!(
            vk.verify(&ed25519_zebra::Signature::from_bytes(&sig), b"forged")
                .is_ok(),
            "the bare equation holds: the key rule is what refuses it"
        );
        assert!(!verify_one(&key, b"forged", &Signature(sig)));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let c = SignatureCheck {
            key,
            message: b"forged",
            signature: Signature(sig),
        };
        assert_eq!(verify_many(&[c; 8], &mut rng), vec![false; 8]);
    }
}
