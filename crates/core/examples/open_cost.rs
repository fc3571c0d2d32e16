//! Opening cost per value with 1, 10 and 100 keys held (the benchmark in tests/bench/run.py).
//! Prints one JSON object per line:
//! `{"keys_held": N, "median_ns": F, "p10_ns": F, "p90_ns": F, "opens": K}`;
//! then, in the same run, a Bitnami Sealed Secrets value (RSA-4096-OAEP + AES-256-GCM, opened
//! by `sealant_core::bitnami`) with 1 key held and with 10 held when none is remembered (every
//! key tried, as on a first open): `{"bitnami_keys_held": N, "median_ns": F, …}`.
//!
//!     cargo run --release -p sealant-core --example open_cost [OPENS] [KEYS_HELD...]
//!
//! Timings are per-batch means (25 batches); the median batch is robust to the scheduling
//! noise of shared machines. For a repeatable figure, count instructions instead:
//! `valgrind --tool=callgrind --toggle-collect='*measured_open*' … open_cost 100 10`, divided by `calls`.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use openssl::encrypt::Encrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::{Padding, Rsa};
use openssl::symm::{Cipher, encrypt_aead};
use sealant_core::bitnami::{self, BitnamiKey, BitnamiKeyRing, oaep_label, parse_key_backup};
use sealant_core::keys::{KeyRing, generate_key};
use sealant_core::scope::{Binding, Scope, Target};
use sealant_core::value::{SealedValue, open_value, seal_value};

const BATCHES: usize = 25;

fn main() {
    let mut args = std::env::args().skip(1);
    let opens: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2500);
    let mut sizes: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1, 10, 100];
    }
    let target = Target::new("prod", "db");
    let binding = Binding::new(Scope::Strict, &target).expect("valid");
    // One ring per size; each value is sealed to the newest key, the others are old keys.
    let cases: Vec<(usize, KeyRing, SealedValue)> = sizes
        .into_iter()
        .map(|keys_held| {
            let mut ring = KeyRing::new();
            let mut newest = None;
            for _ in 0..keys_held {
                let key = generate_key("bench");
                newest = Some(key.recipient.clone());
                ring.insert(key.identity);
            }
            let value = b"a 32-byte database password....";
            let sealed = seal_value(value, &binding, &[newest.expect("a key")]).expect("seals");
            (keys_held, ring, sealed)
        })
        .collect();
    // Batches interleave the sizes round-robin, so a noisy moment hits them all alike.
    let per_batch = (opens / BATCHES).max(1);
    let mut batch_ns = vec![Vec::with_capacity(BATCHES); cases.len()];
    for batch in 0..=BATCHES {
        for (i, (_, ring, sealed)) in cases.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..per_batch {
                measured_open(&sealed.ciphertext, &sealed.recipients, &target, ring);
            }
            if batch > 0 {
                batch_ns[i].push(start.elapsed().as_nanos() as f64 / per_batch as f64);
            }
        }
    }
    for ((keys_held, _, _), mut ns) in cases.iter().zip(batch_ns) {
        ns.sort_by(f64::total_cmp);
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
        println!(
            "{{\"keys_held\": {keys_held}, \"median_ns\": {:.0}, \"p10_ns\": {:.0}, \"p90_ns\": {:.0}, \"opens\": {}, \"calls\": {}}}",
            at(0.5),
            at(0.1),
            at(0.9),
            per_batch * BATCHES,
            per_batch * (BATCHES + 1)
        );
    }
    bitnami_cost(opens, &target);
}

/// The same measurement for a Bitnami value: RSA-4096 keys as Bitnami's controller makes them.
/// An RSA private operation costs ~50× an X25519 one, so fewer opens give the same precision.
fn bitnami_cost(opens: usize, target: &Target) {
    let keys: Vec<BitnamiKey> = (0..10)
        .flat_map(|i| {
            let pem = Rsa::generate(4096)
                .and_then(|k| k.private_key_to_pem())
                .expect("generates");
            parse_key_backup(std::str::from_utf8(&pem).expect("PEM"), &format!("key{i}"))
                .expect("parses")
        })
        .collect();
    let label = oaep_label(Scope::Strict, target);
    let value = kubeseal_value(&keys[9], &label, b"a 32-byte database password....");
    let per_batch = (opens / 50 / BATCHES).max(1);
    for keys_held in [1usize, 10] {
        let mut ns = Vec::with_capacity(BATCHES);
        let held: Vec<BitnamiKey> = keys[10 - keys_held..].to_vec();
        for batch in 0..=BATCHES {
            let start = Instant::now();
            for _ in 0..per_batch {
                // A new ring remembers no key: every key before the right one is tried.
                let ring = BitnamiKeyRing::new(held.clone());
                std::hint::black_box(
                    bitnami::open_value(&value, Scope::Strict, target, &ring).expect("opens"),
                );
            }
            if batch > 0 {
                ns.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
            }
        }
        ns.sort_by(f64::total_cmp);
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
        println!(
            "{{\"bitnami_keys_held\": {keys_held}, \"median_ns\": {:.0}, \"p10_ns\": {:.0}, \"p90_ns\": {:.0}, \"opens\": {}}}",
            at(0.5),
            at(0.1),
            at(0.9),
            per_batch * BATCHES
        );
    }
}

/// A value in kubeseal's format, sealed here with OpenSSL (Sealant never seals with RSA keys).
fn kubeseal_value(key: &BitnamiKey, label: &[u8], value: &[u8]) -> String {
    let public = PKey::public_key_from_pem(&key.public_key_pem()).expect("public key");
    let session = [7u8; 32];
    let mut enc = Encrypter::new(&public).expect("encrypter");
    enc.set_rsa_padding(Padding::PKCS1_OAEP).expect("OAEP");
    enc.set_rsa_oaep_md(MessageDigest::sha256())
        .expect("SHA-256");
    enc.set_rsa_mgf1_md(MessageDigest::sha256()).expect("MGF1");
    enc.set_rsa_oaep_label(label).expect("label");
    let mut wrapped = vec![0; enc.encrypt_len(&session).expect("len")];
    let n = enc.encrypt(&session, &mut wrapped).expect("encrypts");
    wrapped.truncate(n);
    let mut tag = [0u8; 16];
    let body = encrypt_aead(
        Cipher::aes_256_gcm(),
        &session,
        Some(&[0u8; 12]),
        &[],
        value,
        &mut tag,
    )
    .expect("encrypts");
    let mut blob = (wrapped.len() as u16).to_be_bytes().to_vec();
    blob.extend(wrapped);
    blob.extend(body);
    blob.extend(tag);
    BASE64.encode(blob)
}

/// One open, kept out of line so callgrind can count exactly its instructions.
#[inline(never)]
fn measured_open(ciphertext: &str, recipients: &[String], target: &Target, ring: &KeyRing) {
    std::hint::black_box(
        open_value(ciphertext, recipients, Scope::Strict, target, ring).expect("opens"),
    );
}
