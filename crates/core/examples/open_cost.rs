//! Opening cost per value with 1, 10 and 100 keys held (the benchmark in tests/bench/run.py).
//! Prints one JSON object per line:
//! `{"keys_held": N, "median_ns": F, "p10_ns": F, "p90_ns": F, "opens": K}`.
//!
//!     cargo run --release -p sealant-core --example open_cost [OPENS] [KEYS_HELD...]
//!
//! Timings are per-batch means (25 batches); the median batch is robust to the scheduling
//! noise of shared machines. For a repeatable figure, count instructions instead:
//! `valgrind --tool=callgrind --toggle-collect='*measured_open*' … open_cost 100 10`, divided by `calls`.

use std::time::Instant;

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
}

/// One open, kept out of line so callgrind can count exactly its instructions.
#[inline(never)]
fn measured_open(ciphertext: &str, recipients: &[String], target: &Target, ring: &KeyRing) {
    std::hint::black_box(
        open_value(ciphertext, recipients, Scope::Strict, target, ring).expect("opens"),
    );
}
